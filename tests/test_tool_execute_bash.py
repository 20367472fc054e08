"""execute_bash with real processes: output handling, timeouts and stops kill everything."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent import sandbox
from agent.config import Config
from agent.errors import ToolError
from agent.procs import ProcessGroups, group_alive
from agent.tools import execute_bash
from agent.tools.base import ToolContext


def make_ctx(root: Path, *, approve: bool = True) -> ToolContext:
    async def emit(type_: str, **payload: Any) -> None:
        pass

    async def ask(kind: str, summary: str, detail: dict[str, Any]) -> bool:
        return approve

    config = Config()
    config.data_dir = root.parent / "data"
    return ToolContext(
        root=root, task_id="t-1", config=config, emit=emit, procs=ProcessGroups(), ask=ask
    )


def live_with(marker: str) -> list[int]:
    """Host pids of non-zombie processes whose command line contains `marker`."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        if marker.encode() in cmdline and stat[stat.rfind(")") + 2] != "Z":
            pids.append(int(entry.name))
    return pids


def sleeper() -> str:
    """A unique `sleep` duration, so the test can find exactly its own processes."""
    return f"{900000 + uuid.uuid4().int % 99999}"


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    root = tmp_path / "wt"
    root.mkdir()
    return make_ctx(root)


async def test_exit_code_and_streams(ctx: ToolContext) -> None:
    result = await execute_bash.tool.run({"command": "echo out; echo err >&2; exit 3"}, ctx)
    assert result.is_error
    assert result.data["exit_code"] == 3
    assert result.output.splitlines()[0] == "exit code: 3"
    assert "--- stdout ---\nout" in result.output and "--- stderr ---\nerr" in result.output
    ok = await execute_bash.tool.run({"command": "pwd"}, ctx)
    assert not ok.is_error and str(ctx.root.resolve()) in ok.output


async def test_long_output_is_capped_with_a_note(ctx: ToolContext) -> None:
    result = await execute_bash.tool.run({"command": "head -c 300000 /dev/zero | tr '\\0' x"}, ctx)
    assert "characters truncated" in result.output
    assert len(result.output) < 20_000


async def test_binary_and_non_utf8_output(ctx: ToolContext) -> None:
    result = await execute_bash.tool.run({"command": "printf 'a\\000b\\377'"}, ctx)
    assert "[binary data, 4 bytes, not shown]" in result.output
    result = await execute_bash.tool.run({"command": "printf 'caf\\351 ok'"}, ctx)
    assert "caf\ufffd ok" in result.output


async def test_bad_input_is_a_tool_error(ctx: ToolContext) -> None:
    with pytest.raises(ToolError):
        await execute_bash.tool.run({"command": "  "}, ctx)


async def test_timeout_kills_the_whole_process_group(ctx: ToolContext) -> None:
    a, b = sleeper(), sleeper()
    started = time.monotonic()
    result = await execute_bash.tool.run(
        # A detached, output-redirected child too: pipes closing is not what reaps it.
        {
            "command": f"sleep {a} & sleep {b} & setsid sleep {a} >/dev/null 2>&1 & wait",
            "timeout_s": 1,
        },
        ctx,
    )
    assert time.monotonic() - started < 5
    assert result.is_error and result.data["timed_out"] is True
    assert result.output.startswith("timed out after 1s")
    assert live_with(a) == [] and live_with(b) == []


async def test_timeout_is_capped_by_config(ctx: ToolContext) -> None:
    ctx.config.engine.command_timeout_s = 1
    started = time.monotonic()
    result = await execute_bash.tool.run({"command": "sleep 30", "timeout_s": 600}, ctx)
    assert result.data["timed_out"] and time.monotonic() - started < 5


async def test_stop_kills_a_running_command(ctx: ToolContext) -> None:
    a = sleeper()
    task = asyncio.create_task(
        execute_bash.tool.run({"command": f"sleep {a} & sleep {a} & wait"}, ctx)
    )
    for _ in range(200):  # wait until the sleeps exist
        if len(live_with(a)) >= 2:
            break
        await asyncio.sleep(0.01)
    assert len(live_with(a)) >= 2
    pgids = ctx.procs.pgids
    await ctx.procs.kill_all()
    result = await asyncio.wait_for(task, 5)
    assert result.is_error and result.output.startswith("killed")
    assert live_with(a) == []
    assert not any(group_alive(p) for p in pgids)


async def test_unsandboxed_timeout_also_kills_the_group(ctx: ToolContext, monkeypatch) -> None:
    monkeypatch.setattr(sandbox, "_probe", lambda: (False, "", "bwrap missing (test)"))
    a = sleeper()
    result = await execute_bash.tool.run(
        {"command": f"sleep {a} & sleep {a} & wait", "timeout_s": 1}, ctx
    )
    assert result.data["timed_out"] and result.data["sandboxed"] is False
    assert live_with(a) == []


async def test_stop_during_spawn_still_kills(ctx: ToolContext) -> None:
    # The stop lands while the child is being spawned (not yet registered): it must not run on.
    a = sleeper()
    started = time.monotonic()
    task = asyncio.create_task(
        execute_bash.tool.run({"command": f"sleep {a}", "timeout_s": 30}, ctx)
    )
    await asyncio.sleep(0)
    await ctx.procs.kill_all()
    result = await asyncio.wait_for(task, 10)
    assert time.monotonic() - started < 5 and result.is_error
    assert live_with(a) == []


async def test_a_flood_of_output_is_kept_to_its_head_and_tail(ctx: ToolContext) -> None:
    """A command printing 60 MB (or `yes` until its time-out) must not fill the engine's
    memory: the head and the tail are kept, the middle is counted."""
    flood = "head -c 60000000 /dev/zero | tr '\\0' a; echo; echo THE-END"
    done = await ctx.procs.run(["bash", "-c", flood], cwd=ctx.root, timeout_s=120)
    assert done.returncode == 0
    assert len(done.stdout) < 5_000_000 and done.stdout.endswith(b"THE-END\n")
    assert b"bytes of output dropped ...]" in done.stdout
    result = await execute_bash.tool.run({"command": flood}, ctx)
    assert result.output.rstrip().endswith("THE-END") and "exit code: 0" in result.output


async def test_a_timed_out_command_keeps_what_it_printed(ctx: ToolContext) -> None:
    ctx.config.engine.command_timeout_s = 2
    result = await execute_bash.tool.run(
        {"command": f"echo started-{sleeper()}; sleep {sleeper()}"}, ctx
    )
    assert result.data["timed_out"] and "started-" in result.output
