"""An engine is dead when it provably is (its lock can be taken), never because its
heartbeat is late: a paused process keeps its task, a killed one loses it at the next
start, two engines recovering at once interrupt a task once, and an engine whose task was
taken anyway stops it without writing a word more. Real processes, real SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent import events as ev
from agent.engine import Engine
from agent.store import Store
from tests.conftest import ROOT, cli, git, until, write_script
from tests.test_stop import live_processes, marker, running_sleepers, sleep_script

pytestmark = pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="needs bubblewrap")

QUICK = [{"tool_calls": [{"name": "write_file", "input": {"path": "q.txt", "content": "q\n"}}]}]


def _script(tmp_path: Path, command: str) -> str:
    slow = [{"tool_calls": [{"name": "execute_bash", "input": {"command": command}}]}]
    return write_script(
        tmp_path / "model.json",
        [{"match": "slow task", "turns": slow}, {"match": "quick task", "turns": QUICK}],
    )


def _db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "livhana.db", timeout=30)


def _rows(data: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    if not (data / "livhana.db").exists():
        return []
    with contextlib.closing(_db(data)) as db:
        return db.execute(sql, params).fetchall()


def _start_run(repo: Path, model: str, data: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "cockpit", "run", "slow task", "--workspace", str(repo),
            "--approve", "auto", "--json", "--model", model]  # fmt: skip
    env = {**os.environ, "LIVHANA_DATA_DIR": str(data)}
    return subprocess.Popen(argv, cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


async def _until_command_runs(proc: subprocess.Popen[str], data: Path, mark: str) -> str:
    """The run's command is up and its step is stored: the engine now only waits for it
    (no write in flight, with a heartbeat too slow to come up during the test)."""

    def sleeping() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"run exited {proc.returncode}: {proc.communicate()}")
        return any(p[2].startswith("sleep ") for p in live_processes(mark))

    await until(sleeping, timeout=60)
    await until(lambda: _rows(data, "SELECT 1 FROM events WHERE type = 'step'"), timeout=30)
    return str(_rows(data, "SELECT id FROM tasks")[0][0])


def _assert_whole_stream(data: Path, task_id: str) -> list[str]:
    rows = _rows(data, "SELECT seq, type FROM events WHERE task_id = ? ORDER BY id", task_id)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), "a repeated or missing seq"
    assert [r[1] for r in rows].count("complete") == 1 and rows[-1][1] == "complete"
    return [r[1] for r in rows]


async def test_a_paused_engine_keeps_its_task_whatever_its_heartbeat_says(
    repo: Path, tmp_path: Path
) -> None:
    """`kill -STOP` on a running `run`; meanwhile its heartbeat goes an hour stale (the
    old rule called that dead after 10 s) and two other commands start an engine's worth
    of work on the store. On `kill -CONT` the task finishes as if nothing happened."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.toml").write_text("[engine]\nheartbeat_s = 60\n")
    mark = marker().replace("1000.", "3.")  # a ~3 s sleep only this test runs
    model = _script(tmp_path, f"sleep {mark}; echo done > out.txt")
    proc = _start_run(repo, model, data)
    try:
        task_id = await _until_command_runs(proc, data, mark)
        os.kill(proc.pid, signal.SIGSTOP)
        with contextlib.closing(_db(data)) as db:  # as late as a heartbeat can be
            db.execute("UPDATE engines SET heartbeat = heartbeat - 3600")
            db.commit()
        shown = cli("tasks", "--json")
        assert shown.returncode == 0, shown.stderr
        (listed,) = json.loads(shown.stdout)
        assert listed["id"] == task_id and listed["state"] == ev.RUNNING
        assert listed["engine_alive"] is True
        other = cli("run", "quick task", "--workspace", str(repo), "--model", model,
                    "--approve", "auto", "--no-apply")  # fmt: skip
        assert other.returncode == 0, other.stderr
        assert _rows(data, "SELECT state FROM tasks WHERE id = ?", task_id) == [(ev.RUNNING,)]
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    out, err = await asyncio.to_thread(proc.communicate, timeout=120)
    assert proc.returncode == 0, err
    printed = [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in printed] == list(range(1, len(printed) + 1))
    assert printed[-1]["type"] == "complete" and printed[-1]["success"] is True
    assert _rows(data, "SELECT state FROM tasks WHERE id = ?", task_id) == [(ev.SUCCEEDED,)]
    _assert_whole_stream(data, task_id)
    assert (repo / "out.txt").read_text() == "done\n"


async def test_a_killed_engine_is_found_dead_at_the_next_command(
    repo: Path, tmp_path: Path
) -> None:
    """SIGKILL: the next command (even one that only shows the store) settles its task
    at once, as interrupted, and clears the dead engine's row and lock file."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.toml").write_text("[engine]\nheartbeat_s = 60\n")
    mark = marker()
    proc = _start_run(repo, _script(tmp_path, f"sleep {mark}"), data)
    try:
        task_id = await _until_command_runs(proc, data, mark)
        proc.kill()
        await asyncio.to_thread(proc.communicate, timeout=30)
        shown = cli("tasks", "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout) == []
        (task,) = json.loads(cli("history", "--json").stdout)
        assert task["id"] == task_id and task["state"] == ev.INTERRUPTED
        assert task["error"] == "the process running it stopped"
        _assert_whole_stream(data, task_id)
        assert _rows(data, "SELECT id FROM engines") == []  # nothing of the dead one left
        assert not list((data / ".livhana.db.engines").iterdir())
    finally:
        for pid, _pgid, _argv in live_processes(mark):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def test_a_look_at_a_store_with_nothing_to_settle_writes_nothing(
    repo: Path, tmp_path: Path
) -> None:
    """The commands that show the store open it read-only: with nothing a stopped process
    left behind, they start no engine and write nothing (and make no store at all)."""
    data = tmp_path / "data"
    views = ("tasks", "history", "metrics", "learnings", "approvals", "capabilities")
    for view in views:
        assert cli(view).returncode == 0
    assert not data.exists() or not any(data.glob("livhana.db*"))
    model = _script(tmp_path, "true")
    done = cli("run", "quick task", "--workspace", str(repo), "--model", model,
               "--approve", "auto", "--no-apply")  # fmt: skip
    assert done.returncode == 0, done.stderr
    before = (data / "livhana.db").read_bytes()
    assert not (data / "livhana.db-wal").exists()  # checkpointed when the run closed
    for view in (*views, "audit"):
        assert cli(*((view, "verify") if view == "audit" else (view,))).returncode == 0
    # The same bytes, and nothing written ahead (SQLite's -shm index is not data).
    assert (data / "livhana.db").read_bytes() == before
    wal = data / "livhana.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


async def test_a_live_engine_with_a_stale_heartbeat_is_left_alone(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    """In one process: an engine whose loop has not beaten for an hour (busy, or the
    machine slept) is alive; a second engine starting on the store does not touch it."""
    mark = marker()
    first = await engine_factory()
    task_id = await first.submit("sleep", repo, model=sleep_script(tmp_path, mark))
    await running_sleepers(first, task_id, mark)
    await first.store.execute("UPDATE engines SET heartbeat = heartbeat - 3600")
    second = await engine_factory()
    assert (await second.get(task_id))["state"] == ev.RUNNING
    await first.cancel(task_id)
    assert (await first.wait(task_id))["state"] == ev.CANCELLED
    types = [e["type"] for e in await first.events(task_id)]
    assert types.count("complete") == 1


async def test_two_engines_recovering_at_once_interrupt_a_task_once(config: Any) -> None:
    store = await Store.open(config.store_path)
    await store.register_engine("tui-dead", 999_999, socket.gethostname(), "tui")
    for i in range(5):
        await store.create_task({"id": f"orphan{i}", "title": "half done", "workspace": "/w",
                                 "state": "running", "engine_id": "tui-dead"})  # fmt: skip
    await store.close()
    engines = await asyncio.gather(*(Engine.open(config, role=f"r{i}") for i in range(3)))
    try:
        for i in range(5):
            events = await engines[0].events(f"orphan{i}")
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            assert [e["type"] for e in events].count("complete") == 1
            assert (await engines[0].get(f"orphan{i}"))["state"] == ev.INTERRUPTED
    finally:
        for engine in engines:
            await engine.close()


async def test_an_engine_whose_task_was_taken_stops_it_and_writes_nothing_more(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    """Defence in depth: if another engine took a task over anyway (it judged this one
    dead), this one kills the task's processes and writes no event or state for it."""
    mark = marker()
    engine = await engine_factory()
    task_id = await engine.submit("sleep", repo, model=sleep_script(tmp_path, mark))
    await running_sleepers(engine, task_id, mark)
    await engine.bus.flush()
    # What a recovering engine writes: the row, then its own events after the last one.
    with contextlib.closing(sqlite3.connect(engine.config.store_path, timeout=30)) as db:
        db.execute("UPDATE tasks SET engine_id = 'rescuer', state = 'interrupted', "
                   "error = 'taken' WHERE id = ?", [task_id])  # fmt: skip
        last = db.execute("SELECT MAX(seq) FROM events WHERE task_id = ?", [task_id]).fetchone()
        for n, type_ in enumerate(("status", "complete"), 1):
            db.execute("INSERT INTO events (task_id, seq, ts, type, data) VALUES (?, ?, 0, ?, "
                       "'{}')", [task_id, last[0] + n, type_])  # fmt: skip
        db.commit()
    await until(lambda: not live_processes(mark), timeout=15)
    await until(lambda: not engine.live(task_id).running, timeout=15)
    await engine.bus.flush()
    events = await engine.store.task_events(task_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "complete" and [e["type"] for e in events].count("complete") == 1
    task = await engine.get(task_id)
    assert (task["state"], task["error"], task["engine_id"]) == ("interrupted", "taken", "rescuer")
    assert git(repo, "status", "--porcelain") == ""
