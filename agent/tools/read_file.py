"""read_file: a text file of the worktree, optionally a window of lines."""

from __future__ import annotations

from typing import Any

from ..errors import ToolError
from .base import MAX_READ_BYTES, ToolContext, ToolResult, decode, resolve_path, truncate


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
        path = resolve_path(ctx.root, args.get("path"), must_exist=True)
        if path.is_dir():
            names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
            return ToolResult(f"{args['path']} is a directory containing:\n" + "\n".join(names))
        size = path.stat().st_size
        offset, limit = args.get("offset"), args.get("limit")
        if size > MAX_READ_BYTES and not (offset or limit):
            raise ToolError(
                f"{args['path']} is {size:,} bytes; read it in parts with offset and limit"
            )
        with path.open("rb") as fh:
            data = fh.read(MAX_READ_BYTES * 4 if (offset or limit) else MAX_READ_BYTES)
        text = decode(data)
        if text.startswith("[binary data"):
            return ToolResult(f"{args['path']}: {text}")
        if offset or limit:
            lines = text.splitlines(keepends=True)
            start = max(int(offset or 1), 1) - 1
            end = start + int(limit) if limit else len(lines)
            text = "".join(lines[start:end])
            header = f"{args['path']} lines {start + 1}-{min(end, len(lines))} of {len(lines)}:\n"
            return ToolResult(header + truncate(text))
        return ToolResult(truncate(text))


tool = ReadFile()
