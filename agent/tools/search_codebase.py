"""search_codebase: regex search over the worktree's text files.

The search runs in a killable child (agent/tools/isolate.py): the pattern is the model's,
and Python's `re` can backtrack for hours on a crafted one. Files are reached only through
agent/tools/confine.py; links are never followed, and those leaving the tree are named."""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Any

from ..errors import ToolError
from ..text import marked
from . import confine, isolate
from .base import ToolContext, ToolResult, string_arg

MAX_MATCHES = 200
MAX_FILE_BYTES = 1_000_000
MAX_PATTERN_CHARS = 10_000
SKIP_DIRS = frozenset(
    {".git", "node_modules", "__pycache__", ".venv", "venv", ".mypy_cache", "dist", "build"}
)


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
        pattern = string_arg(args, "pattern", limit=MAX_PATTERN_CHARS)
        path = string_arg(args, "path", required=False) or "."
        glob = string_arg(args, "glob", required=False, limit=1000) or "*"
        confine.parse(path)  # a bad path is named before a process starts
        job = {
            "kind": "search",
            "root": confine.Root(ctx.root).real,
            "path": path,
            "pattern": pattern,
            "glob": glob,
        }
        limit = isolate.time_limit(ctx)
        out = await isolate.run_job(ctx, job, limit)
        matches = [str(r["m"]) for r in out.records if "m" in r]
        done = out.last("done")
        if out.killed:
            return ToolResult("search stopped: the task was stopped", is_error=True)
        if out.timed_out or out.error:
            at = out.last("at")
            where = f" while searching {marked(str(at))}" if at else ""
            why = (
                f"stopped after {limit:g}s{where}: the pattern may backtrack catastrophically "
                "(nested quantifiers like (a+)+); simplify it, or narrow path or glob"
                if out.timed_out
                else f"failed{where}: {out.error}"
            )
            found = "\n".join(matches + [""]) if matches else ""
            return ToolResult(
                f"{found}[search {why}]", is_error=True, data={"matches": len(matches)}
            )
        notes = [f"[{n}]" for n in (done or {}).get("notes", [])]
        if not matches:
            files = (done or {}).get("files", 0)
            return ToolResult(
                "\n".join([f"no matches in {files} files", *notes]), data={"matches": 0}
            )
        return ToolResult("\n".join(matches + notes), data={"matches": len(matches)})


def scan(job: dict[str, Any], emit: isolate.Emit) -> None:
    """In the child: walk, read and match; one record per match, one per file begun."""
    try:
        regex = re.compile(job["pattern"])
    except (re.error, OverflowError) as exc:
        raise ToolError(f"invalid regular expression: {exc}") from None
    root = confine.Root(Path(job["root"]))
    report = confine.WalkReport()
    files = big = found = 0
    with confine.locate(root, job["path"]) as place:
        if place.is_dir:
            items = confine.walk_files(root, place, report, skip_dirs=SKIP_DIRS)
        elif place.st is None:
            raise ToolError(f"{confine.shown(job['path'])}: no such file or folder")
        else:
            os.close(confine.open_entry(place, job["path"]))  # a FIFO or a device named: say so
            items = iter([(place.rel, place.fd, place.name or "", place.st)])
        for rel, fd, name, st in items:
            if not fnmatch.fnmatch(name, job["glob"]):
                continue
            if st.st_size > MAX_FILE_BYTES:
                big += 1
                continue
            try:
                handle = confine.open_regular(fd, name, st, rel)
            except ToolError:
                continue
            try:
                data = confine.read_fd(handle, MAX_FILE_BYTES + 1)
            finally:
                os.close(handle)
            if b"\x00" in data[:4096]:
                continue  # binary
            files += 1
            shown = marked(rel)
            emit({"at": shown})
            for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                if regex.search(line):
                    emit({"m": f"{shown}:{number}: {line.strip()[:200]}"})
                    found += 1
                    if found >= MAX_MATCHES:
                        notes = [f"stopped at {MAX_MATCHES} matches; narrow the pattern or path"]
                        emit({"done": {"files": files, "notes": notes}})
                        return
    notes = report.notes()
    if big:
        notes.append(f"skipped {big} file(s) over {MAX_FILE_BYTES:,} bytes")
    emit({"done": {"files": files, "notes": notes}})


tool = SearchCodebase()
