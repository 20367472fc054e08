"""generate_reports: Markdown with a header into the reports folder, never overwriting
(nor following a link planted there); update_plan's bound."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from agent.config import Config
from agent.errors import ToolError
from agent.procs import ProcessGroups
from agent.tools import generate_reports
from agent.tools.base import ToolContext
from agent.tools.generate_reports import slugify


def make_ctx(tmp_path: Path) -> ToolContext:
    async def emit(type_: str, **payload: Any) -> None:
        pass

    async def ask(kind: str, summary: str, detail: dict[str, Any]) -> bool:
        return True

    config = Config()
    config.data_dir = tmp_path / "data"
    root = tmp_path / "wt"
    root.mkdir(exist_ok=True)
    return ToolContext(
        root=root, task_id="tk-42", config=config, emit=emit, procs=ProcessGroups(), ask=ask
    )


async def test_report_written_with_header(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    args = {
        "title": "Error spike: checkout\n service",
        "content": "## Findings\n\n- 41 timeouts\n",
        "kind": "incident",
    }
    result = await generate_reports.tool.run(args, ctx)
    path = Path(result.data["path"])
    assert path == tmp_path / "data" / "reports" / "tk-42-error-spike-checkout-service.md"
    text = path.read_text()
    assert text.startswith("# Error spike: checkout service\n\n- Task: `tk-42`\n- Generated: ")
    assert "- Kind: incident\n\n## Findings\n\n- 41 timeouts\n" in text
    assert str(path) in result.output and not result.is_error
    assert not any(ctx.root.iterdir())  # reports live outside the worktree


async def test_same_title_does_not_overwrite(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    first = await generate_reports.tool.run({"title": "Weekly"}, ctx)
    second = await generate_reports.tool.run({"title": "Weekly", "content": "v2"}, ctx)
    assert first.data["path"] != second.data["path"]
    assert second.data["path"].endswith("tk-42-weekly-2.md")
    assert "- Kind: report" in Path(first.data["path"]).read_text()


async def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ToolError):
        await generate_reports.tool.run({"title": "  "}, make_ctx(tmp_path))
    with pytest.raises(ToolError):
        await generate_reports.tool.run({"title": "x", "content": 5}, make_ctx(tmp_path))


def test_slugify() -> None:
    assert slugify("Ünïcode / ../../etc/passwd") == "unicode-etc-passwd"
    assert slugify("!!!") == "report"
    assert len(slugify("a" * 200)) == 60


async def test_a_link_planted_at_the_report_name_is_never_written_through(
    tmp_path: Path,
) -> None:
    ctx = make_ctx(tmp_path)
    folder = tmp_path / "data" / "reports"
    folder.mkdir(parents=True)
    target = tmp_path / "elsewhere.txt"
    os.symlink(target, folder / "tk-42-weekly.md")  # dangling: exists() said "free"
    result = await generate_reports.tool.run({"title": "Weekly", "content": "body"}, ctx)
    assert result.data["path"].endswith("tk-42-weekly-2.md")
    assert not target.exists() and os.path.islink(folder / "tk-42-weekly.md")


async def test_a_plan_is_bounded(tmp_path: Path) -> None:
    from agent.tools import update_plan

    steps = [{"title": f"step {i}", "status": "pending"} for i in range(101)]
    with pytest.raises(ToolError, match="at most 100 steps"):
        await update_plan.tool.run({"steps": steps}, make_ctx(tmp_path))
