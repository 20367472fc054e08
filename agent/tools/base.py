"""The Tool protocol, the context a tool runs in, and worktree path confinement."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ToolError

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
class ToolContext:
    root: Path  # the task's worktree; every path is relative to it
    task_id: str
    config: Config
    emit: Emit  # emit(type, **payload) -> event in the task's stream
    procs: ProcessGroups  # every child process goes through here so stop can kill it
    ask: AskApproval  # ask(kind, summary, detail) -> approved?
    state: dict[str, Any] = field(default_factory=dict)  # per-task scratch (plan, ...)
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


def resolve_path(root: Path, raw: object, *, must_exist: bool = False) -> Path:
    """Map a model-supplied path to a real path inside `root`, or raise ToolError.

    Refuses absolute paths, `..` components, NUL bytes, and symlinks that lead outside.
    Unicode is NFC-normalised first, so look-alike dot sequences cannot sneak past.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ToolError("path must be a non-empty string")
    text = unicodedata.normalize("NFKC", raw)
    if "\x00" in text:
        raise ToolError(f"path {raw!r} contains a NUL byte")
    if text.startswith(("/", "\\", "~")) or (len(text) > 1 and text[1] == ":"):
        raise ToolError(f"path {raw!r} is absolute; use a path relative to the workspace")
    parts = Path(text.replace("\\", "/")).parts
    if any(p == ".." for p in parts):
        raise ToolError(f"path {raw!r} leaves the workspace ('..' is not allowed)")
    root_real = Path(os.path.realpath(root))
    candidate = Path(os.path.realpath(root_real.joinpath(*parts)))
    if candidate != root_real and root_real not in candidate.parents:
        raise ToolError(f"path {raw!r} resolves outside the workspace (symlink?)")
    if must_exist and not candidate.exists():
        raise ToolError(f"{raw}: no such file")
    return candidate


def rel(root: Path, path: Path) -> str:
    return str(path.relative_to(os.path.realpath(root)))
