"""Plain (non-git) workspaces: the operator's edits made during a task are never overwritten
by its apply, and tasks on one plain folder run one at a time across processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent import events as ev
from agent.wslock import lock_path
from tests.conftest import pending_for, until, write_script


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain"
    path.mkdir()
    (path / "app.py").write_text("print('v1')\n")
    (path / "notes.txt").write_text("keep\n")
    return path


def writer(tmp_path: Path, content: str = "print('task')\n") -> str:
    turn = {"tool_calls": [{"name": "write_file", "input": {"path": "app.py", "content": content}}]}
    return write_script(tmp_path / "w.json", [{"match": ".", "turns": [turn]}])


async def test_apply_refuses_to_overwrite_an_operator_edit_made_during_the_task(
    plain: Path, tmp_path: Path, engine_factory: Any
) -> None:
    engine = await engine_factory()
    task_id = await engine.submit("rewrite app", plain, model=writer(tmp_path))
    await until(lambda: pending_for(engine, task_id))
    (plain / "app.py").write_text("print('operator')\n")  # the operator edits meanwhile

    await engine.decide_task(task_id, True)
    task = await engine.wait(task_id)
    assert task["state"] == ev.FAILED
    assert "app.py changed since the task started" in task["error"]
    assert (plain / "app.py").read_text() == "print('operator')\n"  # their edit survives


async def test_apply_of_an_untouched_plain_workspace_lands(
    plain: Path, tmp_path: Path, engine_factory: Any
) -> None:
    engine = await engine_factory()
    task_id = await engine.submit("rewrite app", plain, model=writer(tmp_path), approve="auto")
    task = await engine.wait(task_id)
    assert task["state"] == ev.SUCCEEDED, task["error"]
    assert (plain / "app.py").read_text() == "print('task')\n"
    assert (plain / "notes.txt").read_text() == "keep\n"


HOLD = """
import fcntl, sys, time
fh = open(sys.argv[1], "w")
fcntl.flock(fh, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


async def test_a_plain_folder_locked_by_another_process_waits(
    plain: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    """Another process (a daemon, a second cockpit) holds the folder: our task waits,
    without blocking this engine, and starts once the other lets go."""
    path = lock_path(config.data_dir, str(plain))
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        engine = await engine_factory()
        task_id = await engine.submit(
            "rewrite app", plain, model=writer(tmp_path), approve="auto"
        )
        await asyncio.sleep(0.6)
        task = await engine.get(task_id)
        assert task["state"] == ev.QUEUED and not task["worktree"]  # waiting for the lock
        assert (plain / "app.py").read_text() == "print('v1')\n"
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        other = await engine.submit("another", elsewhere, model=writer(tmp_path), apply=False)
        assert (await asyncio.wait_for(engine.wait(other), 10))["state"] == ev.SUCCEEDED
    finally:
        holder.kill()
        holder.wait()
    task = await asyncio.wait_for(engine.wait(task_id), 10)
    assert task["state"] == ev.SUCCEEDED, task["error"]
    assert (plain / "app.py").read_text() == "print('task')\n"
