"""The regex runner (agent/tools/isolate.py): a model's catastrophic regex runs in a child
that a time limit, a cancel or a stop ends, while the engine's event loop keeps running."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from agent.config import Config
from agent.procs import ProcessGroups
from agent.tools import analyze_logs, search_codebase
from agent.tools.base import ToolContext
from tests.conftest import until

CATASTROPHIC = "(a+)+$"
EVIL_LINE = "a" * 40 + "!"  # (a+)+$ backtracks 2^40 times on it


def make_ctx(root: Path, timeout_s: int = 600) -> ToolContext:
    async def emit(type_: str, **payload: Any) -> None:
        pass

    async def ask(kind: str, summary: str, detail: dict[str, Any]) -> bool:
        return True

    config = Config()
    config.data_dir = root.parent / "data"
    config.engine.command_timeout_s = timeout_s
    return ToolContext(
        root=root, task_id="t-1", config=config, emit=emit, procs=ProcessGroups(), ask=ask
    )


def scan_children() -> list[int]:
    """Pids of this process's children that run the isolated job."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                argv = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"isolate_main" in argv:
            found.append(int(entry.name))
    return found


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "wt"
    path.mkdir()
    (path / "a_quick.txt").write_text("aaaa\n")  # matches at once
    (path / "b_evil.txt").write_text(EVIL_LINE + "\n")
    return path


async def test_a_catastrophic_regex_ends_at_the_time_limit_keeping_what_it_found(
    root: Path,
) -> None:
    ctx = make_ctx(root, timeout_s=2)
    result = await search_codebase.tool.run({"pattern": CATASTROPHIC}, ctx)
    assert result.is_error
    assert result.output.startswith("a_quick.txt:1: aaaa\n")  # found before the time-out
    assert "[search stopped after 2s while searching b_evil.txt" in result.output
    assert "backtrack catastrophically" in result.output
    assert scan_children() == []


async def test_cancel_ends_the_search_at_once_and_the_loop_kept_running(root: Path) -> None:
    ctx = make_ctx(root)  # a 120 s limit: only the cancel can end it within the test
    search = asyncio.ensure_future(search_codebase.tool.run({"pattern": CATASTROPHIC}, ctx))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.ensure_future(ticker())
    try:
        await until(lambda: scan_children(), timeout=30)
        seen = ticks
        # The event loop runs while the regex spins in the child (in a thread it held the GIL).
        await until(lambda: ticks >= seen + 20 and scan_children(), timeout=30)
        search.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(search, 30)
        await until(lambda: scan_children() == [], timeout=10)
    finally:
        beat.cancel()


async def test_a_stop_kills_the_search_and_later_work_is_refused(root: Path) -> None:
    ctx = make_ctx(root)
    search = asyncio.ensure_future(
        analyze_logs.tool.run({"path": ".", "pattern": CATASTROPHIC}, ctx)
    )
    (root / "x.log").write_text(f"2024-05-01 10:00:00 ERROR {EVIL_LINE}\n")
    await until(lambda: scan_children(), timeout=30)
    assert await ctx.procs.kill_all() == []
    result = await asyncio.wait_for(search, 30)
    assert result.is_error and "stopped: the task was stopped" in result.output
    assert scan_children() == []


async def test_the_child_gets_no_secret_and_no_worktree_on_its_path(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child is ours, started isolated: a worktree `agent/` package cannot hijack it,
    and the operator's environment (the API key) does not reach it."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-value")
    (root / "agent" / "tools").mkdir(parents=True)
    (root / "agent" / "__init__.py").write_text("raise SystemExit('hijacked')\n")
    ctx = make_ctx(root)
    result = await search_codebase.tool.run({"pattern": "^aaaa$"}, ctx)
    assert result.output.startswith("a_quick.txt:1: aaaa"), result.output
    search = asyncio.ensure_future(search_codebase.tool.run({"pattern": CATASTROPHIC}, ctx))
    try:
        (pid,) = await until(lambda: scan_children(), timeout=30)
        with open(f"/proc/{pid}/environ", "rb") as fh:
            environ = fh.read()
        assert b"sk-ant" not in environ and b"ANTHROPIC" not in environ
    finally:
        search.cancel()
        with pytest.raises(asyncio.CancelledError):
            await search


async def test_a_bad_pattern_is_one_line(root: Path) -> None:
    from agent.errors import ToolError

    with pytest.raises(ToolError, match="invalid regular expression") as exc:
        await search_codebase.tool.run({"pattern": "(unclosed"}, make_ctx(root))
    assert "\n" not in str(exc.value)
