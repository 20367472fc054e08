"""The Model protocol: one call in, one assistant turn out.

Conversations use the Anthropic Messages format as the lingua franca: a list of
{"role": "user"|"assistant", "content": [blocks]} where blocks are thinking (with
signature), text, tool_use and tool_result dicts. Assistant turns are stored exactly as
returned so they can be sent back unchanged (thinking signatures must survive).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cost_usd": round(self.cost_usd, 6),
        }


@dataclass
class ModelResponse:
    content: list[dict[str, Any]]
    stop_reason: str  # "end_turn" | "tool_use" | "max_tokens" | "refusal" ...
    usage: Usage = field(default_factory=Usage)
    model: str = ""

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.content if b.get("type") == "tool_use"]

    @property
    def text(self) -> str:
        return "".join(b.get("text", "") for b in self.content if b.get("type") == "text")


# Called with ("thinking"|"text", delta) while a turn streams; lets the UI show live text.
# ("restart", "") means a retry starts the turn over: what streamed so far is void.
DeltaCallback = Callable[[str, str], Awaitable[None] | None]


class Model(Protocol):
    name: str
    context_window: int

    async def complete(
        self,
        *,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        on_delta: DeltaCallback | None = None,
    ) -> ModelResponse:
        """One assistant turn. `tools=None` means answer without tools (learnings)."""
        ...

    async def aclose(self) -> None: ...
