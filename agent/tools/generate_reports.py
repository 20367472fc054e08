"""generate_reports: a Markdown report into the reports folder (outside the worktree, so
reports survive the task and never show up in its diff)."""

from __future__ import annotations

import contextlib
import os
import re
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ToolError
from .base import ToolContext, ToolResult, string_arg

MAX_CONTENT_CHARS = 1_000_000


def slugify(title: str, limit: int = 60) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:limit].rstrip("-") or "report"


class GenerateReports:
    name = "generate_reports"
    kind = "report"
    description = (
        "Write a Markdown report (title, optional content and kind such as 'analysis', "
        "'incident', 'summary') to the operator's reports folder. Returns the file path."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "content": {"type": "string", "description": "Markdown body"},
            "kind": {"type": "string", "description": "report kind, e.g. analysis, incident"},
        },
        "required": ["title"],
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        title = string_arg(args, "title", limit=1_000) or ""
        content = string_arg(args, "content", required=False, limit=MAX_CONTENT_CHARS) or ""
        kind = " ".join((string_arg(args, "kind", required=False, limit=100) or "report").split())
        title = " ".join(title.split())  # one line: it is a Markdown heading
        folder = ctx.config.reports_dir
        folder.mkdir(parents=True, exist_ok=True)
        # task_id comes from the engine, but keep it to file-name-safe characters anyway.
        task = re.sub(r"[^\w.-]", "_", ctx.task_id) or "task"
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        header = f"# {title}\n\n- Task: `{ctx.task_id}`\n- Generated: {now}\n- Kind: {kind}\n"
        body = content.strip("\n")
        text = (f"{header}\n{body}\n" if body else header).encode("utf-8")
        path = _create(folder, f"{task}-{slugify(title)}", text)
        return ToolResult(
            f"report written: {path}",
            data={"path": str(path), "kind": kind, "title": title, "bytes": len(text)},
        )


def _create(folder: Path, stem: str, data: bytes) -> Path:
    """A new file `stem.md` (or `stem-2.md`, ...): a second report with the same title must
    not overwrite the first, and nothing already there (a link included) is followed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for n in range(1, 10_000):
        path = folder / (f"{stem}.md" if n == 1 else f"{stem}-{n}.md")
        try:
            fd = os.open(path, flags, 0o644)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ToolError(f"report not written: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                path.unlink()
            raise ToolError(f"report not written: {exc.strerror}") from None
        return path
    raise ToolError(f"too many reports named {stem}")


tool = GenerateReports()
