"""A deterministic model that replays turns from a JSON file (tests and the demo).

File format:
{
  "scripts": [
    {"match": "regex on the task text",          # first script whose regex matches wins
     "turns": [                                   # one assistant turn per model call
        {"thinking": "...", "text": "...", "delay_s": 0.2,
         "tool_calls": [{"name": "read_file", "input": {"path": "app.py"}}],
         "usage": {"input_tokens": 1200, "output_tokens": 300}}
     ],
     "learnings": {"patterns": [...], "improvements": [...], "nextSteps": [...]}}
  ]
}
A call with tools=None (the learnings question) answers with the script's `learnings`.
When turns run out the model ends its turn with a short summary.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import DeltaCallback, ModelResponse, Usage

# Priced like the default model so demo cost numbers look like real ones.
_PRICE_IN, _PRICE_OUT = 3.0 / 1e6, 15.0 / 1e6


class ScriptedModel:
    context_window = 200_000

    def __init__(self, scripts: list[dict[str, Any]], name: str = "scripted") -> None:
        self.name = name
        self._scripts = scripts

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedModel:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"scripted model: cannot load {path}: {exc}") from None
        scripts = data.get("scripts") if isinstance(data, dict) else None
        if not isinstance(scripts, list):
            raise ConfigError(f"scripted model: {path} has no 'scripts' list")
        return cls(scripts, name=f"scripted:{Path(path).name}")

    def _script_for(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        task = _first_text(messages)
        for script in self._scripts:
            if re.search(script.get("match", ""), task, re.IGNORECASE):
                return script
        return {"turns": []}

    async def complete(
        self,
        *,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        on_delta: DeltaCallback | None = None,
    ) -> ModelResponse:
        script = self._script_for(messages)
        if tools is None:
            learnings = script.get(
                "learnings", {"patterns": [], "improvements": [], "nextSteps": []}
            )
            return ModelResponse(
                [{"type": "text", "text": json.dumps(learnings)}], "end_turn", _usage({}), self.name
            )
        index = sum(1 for m in messages if m["role"] == "assistant" and _has_tool_use(m))
        turns = script.get("turns", [])
        if index >= len(turns):
            text = script.get("summary", "Done.")
            return ModelResponse(
                [{"type": "text", "text": text}], "end_turn", _usage({}), self.name
            )
        turn = turns[index]
        delay = float(turn.get("delay_s") or 0)
        # Streamed like a real model: word by word over the turn's delay (or all at once).
        pieces = _pieces(turn) if on_delta else []
        if delay and not pieces:
            await asyncio.sleep(delay)
        for kind, piece in pieces:
            if delay:
                await asyncio.sleep(delay / len(pieces))
            result = on_delta(kind, piece)  # type: ignore[misc]
            if asyncio.iscoroutine(result):
                await result
        if turn.get("error"):
            from ..errors import ModelError

            raise ModelError(str(turn["error"]))
        content: list[dict[str, Any]] = []
        if turn.get("thinking"):
            content.append(
                {"type": "thinking", "thinking": turn["thinking"], "signature": "scripted"}
            )
        if turn.get("text"):
            content.append({"type": "text", "text": turn["text"]})
        for n, call in enumerate(turn.get("tool_calls", [])):
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_s{index}_{n}",
                    "name": call["name"],
                    "input": call.get("input", {}),
                }
            )
        stop = "tool_use" if turn.get("tool_calls") else "end_turn"
        return ModelResponse(content, stop, _usage(turn.get("usage", {})), self.name)

    async def aclose(self) -> None:
        return None


def _usage(raw: dict[str, Any]) -> Usage:
    u = Usage(
        input_tokens=int(raw.get("input_tokens", 0)),
        output_tokens=int(raw.get("output_tokens", 0)),
        cache_read_input_tokens=int(raw.get("cache_read_input_tokens", 0)),
        cache_creation_input_tokens=int(raw.get("cache_creation_input_tokens", 0)),
    )
    u.cost_usd = u.input_tokens * _PRICE_IN + u.output_tokens * _PRICE_OUT
    return u


def _first_text(messages: list[dict[str, Any]]) -> str:
    for m in messages:
        if m["role"] != "user":
            continue
        content = m["content"]
        if isinstance(content, str):
            return content
        return " ".join(b.get("text", "") for b in content if b.get("type") == "text")
    return ""


def _has_tool_use(message: dict[str, Any]) -> bool:
    content = message["content"]
    return isinstance(content, list) and any(b.get("type") == "tool_use" for b in content)


def _pieces(turn: dict[str, Any]) -> list[tuple[str, str]]:
    """The turn's thinking and text as word-sized stream pieces, in order."""
    return [
        (kind, word)
        for kind in ("thinking", "text")
        for word in re.findall(r"\S+\s*", str(turn.get(kind) or ""))
    ]
