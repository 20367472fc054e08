"""The Tool protocol, the context a tool runs in, and output helpers.
Paths of the worktree go through `confine` (agent/tools/confine.py), nothing else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ToolError
from ..text import lone_surrogate

if TYPE_CHECKING:
    from ..config import Config
    from ..procs import ProcessGroups

# Tool outputs beyond this many characters are cut with a note (context stays bounded).
MAX_OUTPUT_CHARS = 20_000
# Files larger than this are not read whole.
MAX_READ_BYTES = 2_000_000

Emit = Callable[..., Awaitable[None]]
AskApproval = Callable[[str, str, dict[str, Any]], Awaitable[bool]]


@dataclass
class ToolResult:
    output: str
    is_error: bool = False
    changed: list[str] = field(default_factory=list)  # worktree-relative paths written
    data: dict[str, Any] = field(default_factory=dict)  # structured extras (test counts, ...)


@dataclass
class Grant:
    """An approval that covers one tool call: `tool` at step `step`, once (agent/sandbox.py
    takes it, so it never covers a later command)."""

    step: int
    tool: str
    by: str  # who said yes: an operator, or a rule (approve=auto)
    network: bool  # an operator's yes to a request asked because of network use


@dataclass
class RunState:
    """What a run and its tools share while a task runs. Typed fields, not a dict of
    strings: a misspelt name is an error at once, not a silent miss."""

    step: int = 0  # the current step's number (agent/run.py)
    # Who decided the latest approval request: tools word their own refusal from it
    # (never a blanket "denied by operator"; it may be the timeout, or nobody).
    decided_by: str = ""
    grant: Grant | None = None  # set by the run after a yes to this step's call
    plan: list[dict[str, str]] = field(default_factory=list)  # update_plan's latest plan
    plan_done: int = -1  # how many of its steps were done
    progress_at_step: int | None = None  # the step at which the plan last moved on
    # The test suite's result on the task's starting commit (agent/verify.py), once run.
    baseline: ToolResult | None = None
    baseline_run: bool = False


@dataclass
class ToolContext:
    root: Path  # the task's worktree; every path is relative to it
    task_id: str
    config: Config
    emit: Emit  # emit(type, **payload) -> event in the task's stream
    procs: ProcessGroups  # every child process goes through here so stop can kill it
    ask: AskApproval  # ask(kind, summary, detail) -> approved?
    state: RunState = field(default_factory=RunState)  # shared with the run (agent/run.py)
    # The operator's project the worktree was made from, as the engine knows it: the sandbox
    # finds the git dir to show from it (the worktree's own `.git` file is model-writable).
    workspace: Path | None = None


class Tool(Protocol):
    name: str
    description: str
    input_schema: dict[str, Any]
    # read | write | exec | deploy | db | report | plan — drives the default approval policy.
    kind: str

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult: ...


def spec(tool: Tool) -> dict[str, Any]:
    """The JSON the model is offered."""
    return {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}


def truncate(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit * 3 // 4]
    tail = text[-limit // 4 :]
    cut = len(text) - len(head) - len(tail)
    return f"{head}\n\n[... {cut} characters truncated ...]\n\n{tail}"


def decode(data: bytes) -> str:
    """Bytes from a file or a process as text; binary gets a note instead of garbage."""
    if b"\x00" in data[:8192]:
        return f"[binary data, {len(data)} bytes, not shown]"
    return data.decode("utf-8", errors="replace")


def string_arg(
    args: dict[str, Any],
    key: str,
    *,
    required: bool = True,
    blank_ok: bool = False,
    limit: int | None = None,
) -> str | None:
    """A string input: present (and non-blank unless `blank_ok`) when `required`, valid
    Unicode, bounded. An absent optional one (None or "") is None."""
    value = args.get(key)
    if not required and value in (None, ""):
        return None
    if not isinstance(value, str) or (required and not blank_ok and not value.strip()):
        raise ToolError(f"{key} must be a {'' if blank_ok else 'non-empty '}string")
    if bad := lone_surrogate(value):
        at = next(i for i, ch in enumerate(value) if "\ud800" <= ch <= "\udfff")
        raise ToolError(
            f"{key} is not valid Unicode (a lone surrogate {bad} at character {at}): "
            "send UTF-8 text"
        )
    if limit is not None and len(value) > limit:
        raise ToolError(f"{key} is {len(value):,} characters; the limit is {limit:,}")
    return value


def int_arg(args: dict[str, Any], key: str, low: int = 1, high: int = 10**9) -> int | None:
    """An optional whole-number input within [low, high] (JSON's 5.0 counts as 5)."""
    value = args.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ToolError(f"{key} must be a whole number from {low:,} to {high:,}, got {value!r}")
    return value
