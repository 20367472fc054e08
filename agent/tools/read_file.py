"""read_file: a text file of the worktree, optionally a window of lines."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ..errors import ToolError
from ..text import marked
from . import confine
from .base import MAX_READ_BYTES, ToolContext, ToolResult, decode, int_arg, truncate

MAX_LISTED = 5_000  # a folder's entries listed at most
WINDOW_BYTES = MAX_READ_BYTES * 4  # what a windowed (offset/limit) read looks at


class ReadFile:
    name = "read_file"
    kind = "read"
    description = (
        "Read a file of the workspace. Paths are relative to the workspace root. "
        "Use offset/limit (1-based line numbers) for large files."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "file path relative to the workspace"},
            "offset": {"type": "integer", "minimum": 1, "description": "first line (1-based)"},
            "limit": {"type": "integer", "minimum": 1, "description": "number of lines"},
        },
        "required": ["path"],
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        raw = args.get("path")
        confine.parse(raw)  # a bad path is refused before anything is opened
        offset, limit = int_arg(args, "offset"), int_arg(args, "limit")
        # Bounded blocking I/O (at most WINDOW_BYTES), so a thread is fine here.
        return await asyncio.to_thread(_read, confine.Root(ctx.root), str(raw), offset, limit)


def _read(root: confine.Root, raw: str, offset: int | None, limit: int | None) -> ToolResult:
    with confine.locate(root, raw) as place:
        if place.is_dir:
            return ToolResult(_listing(place.fd, raw))
        if place.st is None:
            raise ToolError(f"{confine.shown(raw)}: no such file")
        fd = confine.open_entry(place, raw)
    try:
        size = os.fstat(fd).st_size
        windowed = bool(offset or limit)
        if size > MAX_READ_BYTES and not windowed:
            raise ToolError(f"{raw} is {size:,} bytes; read it in parts with offset and limit")
        data = confine.read_fd(fd, WINDOW_BYTES if windowed else MAX_READ_BYTES)
    finally:
        os.close(fd)
    text = decode(data)
    if text.startswith("[binary data"):
        return ToolResult(f"{raw}: {text}")
    if not windowed:
        return ToolResult(truncate(text))
    lines = text.splitlines(keepends=True)
    start = (offset or 1) - 1
    end = start + limit if limit else len(lines)
    cut = len(data) < size
    total = f"{len(lines)}+ (only the first {WINDOW_BYTES:,} bytes are read)" if cut else len(lines)
    header = f"{raw} lines {start + 1}-{min(end, len(lines))} of {total}:\n"
    return ToolResult(header + truncate("".join(lines[start:end])))


def _listing(fd: int, raw: str) -> str:
    names, more = [], False
    with os.scandir(fd) as it:
        for entry in it:
            if len(names) >= MAX_LISTED:
                more = True
                break
            slash = "/" if entry.is_dir(follow_symlinks=False) else ""
            link = "@" if entry.is_symlink() else ""
            names.append(marked(entry.name) + slash + link)
    names.sort()
    tail = f"\n[... more entries not listed: over {MAX_LISTED:,}]" if more else ""
    return f"{raw} is a directory containing:\n" + "\n".join(names) + tail


tool = ReadFile()
