"""The daemon as a subprocess: it runs a `* * * * *` schedule, a second daemon on the same
store does not run it twice, a run missed while no daemon was up is caught up once, and
SIGTERM mid-task leaves the task `interrupted`, checkpointed, and the store intact."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.store import Store
from tests import improve_world
from tests.conftest import ROOT, cli

pytestmark = pytest.mark.slow


def start_daemon(world: Any, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        # No HTTP API: two daemons would want its one port (tests/test_api_daemon.py has it).
        [sys.executable, "-m", "cockpit", "--daemon", "--workspace", str(world.workspace),
         "--no-api", *extra],
        cwd=ROOT, env={**os.environ, **world.env()}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def stop(proc: subprocess.Popen[str], timeout: float = 10) -> tuple[int, float, str]:
    """SIGTERM; (exit code, seconds it took, stderr)."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"the daemon did not stop within {timeout} s: {err}") from None
    return proc.returncode, time.monotonic() - started, err


def rows(world: Any, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    db = world.data_dir / "livhana.db"
    with sqlite3.connect(db, timeout=10) as conn:
        return conn.execute(sql, params).fetchall()


def wait(check: Any, timeout: float, what: str, procs: tuple[Any, ...] = ()) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, f"a daemon died: {p.communicate()}"
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def daemons_up(world: Any, n: int) -> bool:
    try:
        return len(rows(world, "SELECT id FROM engines WHERE role = 'daemon'")) >= n
    except sqlite3.OperationalError:
        return False


def schedule(world: Any, **crons: str) -> None:
    lines = [f'{job} = "{crons.get(job, "")}"' for job in ("daily", "weekly", "monthly")]
    (world.data_dir / "config.toml").write_text(
        f'[engine]\nmodel = "scripted:{world.script}"\n[schedules]\n' + "\n".join(lines) + "\n"
    )


@pytest.fixture
async def world(tmp_path: Path) -> improve_world.World:
    return await improve_world.build(tmp_path)


def test_every_minute_one_run_per_due_time_with_two_daemons(world: Any) -> None:
    schedule(world, daily="* * * * *")
    a, b = start_daemon(world), start_daemon(world)
    try:
        wait(lambda: daemons_up(world, 2), 60, "both daemons", (a, b))
        up = time.time()
        # The first due time after both were up: each daemon wants it, one runs it.
        done = wait(lambda: rows(world, "SELECT scheduled_for, engine_id, report FROM "
                                        "improve_runs WHERE job = 'daily' AND outcome = "
                                        "'succeeded' AND scheduled_for > ?", (up,)),
                    150, "a scheduled daily run", (a, b))
        due = done[0][0]
        assert datetime.fromtimestamp(due).second == 0
        time.sleep(3)  # the other daemon had its chance at the same due time
        same = rows(world, "SELECT engine_id, outcome FROM improve_runs WHERE job = 'daily' "
                           "AND scheduled_for = ?", (due,))
        assert len(same) == 1
        reports = [p for p in (world.data_dir / "reports").glob("*-daily*.md")
                   if p.stat().st_mtime >= due]
        assert len(reports) == 1 and str(reports[0]) == done[0][2]
        listed = json.loads(cli("schedules", "--runs", "--json", env=world.env()).stdout)
        assert any(r["scheduled_for"] == due and r["outcome"] == "succeeded" for r in listed)
        assert {"job", "scheduled_for", "started_at", "finished_at", "outcome"} <= set(listed[0])
        table = json.loads(cli("schedules", "--json", env=world.env()).stdout)
        daily = next(r for r in table if r["job"] == "daily")
        assert daily["cron"] == "* * * * *" and daily["last_outcome"] in ("succeeded", "running")
        assert daily["next_run"] > due
        assert [r["cron"] for r in table if r["job"] != "daily"] == ["", ""]
    finally:
        codes = [stop(p) for p in (a, b)]
    assert [c[0] for c in codes] == [0, 0], codes
    log = (world.data_dir / "logs" / "daemon.log").read_text().splitlines()
    started = [json.loads(line) for line in log if _hm(due) in line]
    assert len([e for e in started if "started" in e["msg"]]) == 1
    assert any("already claimed" in e["msg"] for e in started)


def _hm(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def test_a_run_missed_while_down_is_caught_up_once(world: Any) -> None:
    async def since(ts: float) -> None:
        store = await Store.open(world.data_dir / "livhana.db")
        try:
            await store.set_setting("schedule_since", ts)  # a daemon ran here before
        finally:
            await store.close()

    asyncio.run(since(time.time() - 7200))
    missed = datetime.now().replace(second=0, microsecond=0) - timedelta(minutes=3)
    schedule(world, daily=f"{missed.minute} {missed.hour} * * *")
    a, b = start_daemon(world), start_daemon(world)
    try:
        caught = wait(lambda: rows(world, "SELECT scheduled_for, trigger, outcome FROM "
                                          "improve_runs WHERE outcome IS NOT NULL"),
                      60, "the catch-up", (a, b))
        wait(lambda: daemons_up(world, 2), 30, "both daemons", (a, b))
    finally:
        [stop(p) for p in (a, b)]
    assert caught == [(missed.timestamp(), "catch_up", "succeeded")]
    again = start_daemon(world)
    try:
        wait(lambda: (world.data_dir / "logs" / "daemon.log").read_text().count(
            "daemon started") >= 3, 30, "the restart", (again,))
        time.sleep(3)
    finally:
        stop(again)
    assert len(rows(world, "SELECT id FROM improve_runs")) == 1  # not caught up again


def test_sigterm_mid_task_interrupts_it_checkpointed_and_loses_nothing(world: Any) -> None:
    schedule(world)  # no schedule: the daemon runs the accepted proposal
    world.script.write_text(json.dumps({"scripts": [{"match": "slow fix", "turns": [
        {"tool_calls": [{"name": "write_file", "input": {"path": "fix.txt", "content": "x\n"}}]},
        {"tool_calls": [{"name": "execute_bash", "input": {"command": "sleep 60"}}]},
    ]}]}))

    async def accepted() -> None:
        from agent.improve import records

        store = await Store.open(world.data_dir / "livhana.db")
        try:
            run_id, _ = await records.claim_run(store, "weekly", "manual", "t", "x")
            await records.save_proposals(store, run_id, [{
                "id": "pslow001", "source": "weekly", "title": "slow fix", "task": "a slow fix",
                "rationale": "", "impact": "low", "effort": "low", "evidence": [],
                "workspace": str(world.workspace)}])
            await records.finish_run(store, run_id, "succeeded")
            await records.decide_proposal(store, "pslow001", True, "test")
        finally:
            await store.close()

    asyncio.run(accepted())
    (world.data_dir / "policy.toml").write_text('[tools]\nexecute_bash = "allow"\n')
    daemon = start_daemon(world)
    try:
        task_id = wait(lambda: rows(world, "SELECT task_id FROM proposals WHERE task_id IS "
                                           "NOT NULL"), 60, "the proposal's task",
                       (daemon,))[0][0]
        wait(lambda: rows(world, "SELECT 1 FROM events WHERE task_id = ? AND type = 'step' "
                                 "AND data LIKE '%sleep 60%'", (task_id,)),
             60, "the long command", (daemon,))
        time.sleep(0.5)
    finally:
        code, took, err = stop(daemon)
    assert code == 0, err
    assert took < 10
    (state, error, worktree), = rows(world, "SELECT state, error, worktree FROM tasks "
                                           "WHERE id = ?", (task_id,))
    assert state == "interrupted" and "daemon shut down" in error
    kinds = [r[0] for r in rows(world, "SELECT type FROM events WHERE task_id = ? ORDER BY seq",
                                (task_id,))]
    assert "checkpoint" in kinds and kinds[-1] == "complete"
    assert (Path(worktree) / "fix.txt").read_text() == "x\n"  # its work is kept, for review
    assert rows(world, "PRAGMA integrity_check") == [("ok",)]
    verify = cli("audit", "verify", env=world.env())
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert rows(world, "SELECT state FROM proposals") == [("started",)]
    assert rows(world, "SELECT COUNT(*) FROM engines") == [(0,)]  # it left no engine behind


def test_install_service_writes_a_unit_and_enables_nothing(world: Any, tmp_path: Path) -> None:
    home = tmp_path / "xdg"
    env = {**world.env(), "XDG_CONFIG_HOME": str(home), "PATH": "/nonexistent"}
    done = subprocess.run(
        [sys.executable, "-m", "cockpit", "--daemon", "--workspace", str(world.workspace),
         "--install-service"], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
        text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    unit = home / "systemd" / "user" / "livhana-cockpit.service"
    text = unit.read_text()
    assert f"--daemon --workspace {world.workspace}" in text
    assert f"--data-dir {world.data_dir}" in text and "KillSignal=SIGTERM" in text
    assert "not enabled" in done.stdout and "systemctl --user enable --now" in done.stdout
    # An edited unit is kept beside the new one, never lost.
    unit.write_text(text + "# mine\n")
    again = subprocess.run(done.args, cwd=ROOT, env={**os.environ, **env},
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "kept as" in again.stdout
    assert unit.with_name(unit.name + ".bak").read_text().endswith("# mine\n")
    assert not rows(world, "SELECT id FROM engines")  # it did not start a daemon either
