"""generate_reports: a Markdown report into the reports folder (outside the worktree, so
reports survive the task and never show up in its diff)."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

from ..errors import ToolError
from .base import ToolContext, ToolResult

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
        title = args.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ToolError("title must be a non-empty string")
        content = args.get("content") or ""
        kind = args.get("kind") or "report"
        if not isinstance(content, str) or not isinstance(kind, str):
            raise ToolError("content and kind must be strings")
        if len(content) > MAX_CONTENT_CHARS:
            raise ToolError(f"content is {len(content):,} characters; limit {MAX_CONTENT_CHARS:,}")
        title = " ".join(title.split())  # one line: it is a Markdown heading
        folder = ctx.config.reports_dir
        folder.mkdir(parents=True, exist_ok=True)
        # task_id comes from the engine, but keep it to file-name-safe characters anyway.
        task = re.sub(r"[^\w.-]", "_", ctx.task_id) or "task"
        path = folder / f"{task}-{slugify(title)}.md"
        n = 2
        while path.exists():  # a second report with the same title must not overwrite the first
            path = folder / f"{task}-{slugify(title)}-{n}.md"
            n += 1
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        header = f"# {title}\n\n- Task: `{ctx.task_id}`\n- Generated: {now}\n- Kind: {kind}\n"
        body = content.strip("\n")
        path.write_text(f"{header}\n{body}\n" if body else header, encoding="utf-8")
        return ToolResult(
            f"report written: {path}",
            data={"path": str(path), "kind": kind, "title": title, "bytes": path.stat().st_size},
        )


tool = GenerateReports()
