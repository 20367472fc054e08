"""write_file: whole-file write inside the worktree; creates parent folders."""

from __future__ import annotations

from typing import Any

from ..errors import ToolError
from .base import ToolContext, ToolResult, rel, resolve_path

MAX_WRITE_CHARS = 5_000_000


class WriteFile:
    name = "write_file"
    kind = "write"
    description = (
        "Write a whole file of the workspace (created or replaced). Parent folders are created. "
        "Paths are relative to the workspace root."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "file path relative to the workspace"},
            "content": {"type": "string", "description": "the complete new file content"},
        },
        "required": ["path", "content"],
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        content = args.get("content")
        if not isinstance(content, str):
            raise ToolError("content must be a string")
        if len(content) > MAX_WRITE_CHARS:
            raise ToolError(
                f"content is {len(content):,} characters; the limit is {MAX_WRITE_CHARS:,}"
            )
        path = resolve_path(ctx.root, args.get("path"))
        if path.is_dir():
            raise ToolError(f"{args['path']} is a directory")
        if ".git" in path.relative_to(ctx.root.resolve()).parts:
            raise ToolError("writing inside .git is not allowed")
        existed = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        lines = content.count("\n") + (0 if content.endswith("\n") or not content else 1)
        verb = "updated" if existed else "created"
        return ToolResult(f"{verb} {args['path']} ({lines} lines)", changed=[rel(ctx.root, path)])


tool = WriteFile()
