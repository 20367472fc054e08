"""search_codebase: regex search over the worktree's text files."""

from __future__ import annotations

import asyncio
import fnmatch
import os
import re
from pathlib import Path
from typing import Any

from ..errors import ToolError
from .base import ToolContext, ToolResult, resolve_path

MAX_MATCHES = 200
MAX_FILE_BYTES = 1_000_000
SKIP_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv", ".mypy_cache", "dist", "build"}


class SearchCodebase:
    name = "search_codebase"
    kind = "read"
    description = (
        "Search the workspace's text files with a regular expression. Returns path:line: text "
        "for each match. Optional `path` (a folder or file) and `glob` (e.g. '*.py') narrow it."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "Python regular expression"},
            "path": {"type": "string", "description": "folder or file to search, default all"},
            "glob": {"type": "string", "description": "file name pattern, e.g. *.py"},
        },
        "required": ["pattern"],
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        pattern = args.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise ToolError("pattern must be a non-empty string")
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ToolError(f"invalid regular expression: {exc}") from None
        base = resolve_path(ctx.root, args.get("path") or ".", must_exist=True)
        glob = args.get("glob") or "*"
        # Scanning is blocking file I/O: keep it off the event loop.
        return await asyncio.to_thread(_search, ctx.root.resolve(), base, regex, glob)


def _search(root: Path, base: Path, regex: re.Pattern[str], glob: str) -> ToolResult:
    matches: list[str] = []
    files = 0
    for path in _walk(base):
        if not fnmatch.fnmatch(path.name, glob):
            continue
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if b"\x00" in data[:4096]:
            continue
        files += 1
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if regex.search(line):
                matches.append(f"{path.relative_to(root)}:{number}: {line.strip()[:200]}")
                if len(matches) >= MAX_MATCHES:
                    note = f"\n[stopped at {MAX_MATCHES} matches; narrow the pattern or path]"
                    return ToolResult("\n".join(matches) + note, data={"matches": len(matches)})
    if not matches:
        return ToolResult(f"no matches in {files} files", data={"matches": 0})
    return ToolResult("\n".join(matches), data={"matches": len(matches)})


def _walk(base: Path):  # type: ignore[no-untyped-def]
    if base.is_file():
        yield base
        return
    for folder, dirs, names in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(names):
            path = Path(folder, name)
            if not path.is_symlink():
                yield path


tool = SearchCodebase()
