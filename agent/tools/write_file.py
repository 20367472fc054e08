"""write_file: whole-file write inside the worktree; creates parent folders."""

from __future__ import annotations

import asyncio
from typing import Any

from . import confine
from .base import ToolContext, ToolResult, string_arg

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
        raw = args.get("path")
        confine.parse(raw)
        content = string_arg(args, "content", blank_ok=True, limit=MAX_WRITE_CHARS) or ""
        data = content.encode("utf-8")
        # At most MAX_WRITE_CHARS*4 bytes: bounded, so a thread is fine here.
        rel, existed = await asyncio.to_thread(
            confine.write_bytes, confine.Root(ctx.root), str(raw), data
        )
        lines = content.count("\n") + (0 if content.endswith("\n") or not content else 1)
        verb = "updated" if existed else "created"
        return ToolResult(f"{verb} {raw} ({lines} lines)", changed=[rel])


tool = WriteFile()
