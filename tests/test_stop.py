"""Cancel and emergency stop against real processes under real bubblewrap.

Every command sleeps for a unique duration (e.g. `sleep 1000.48213`), so /proc can be
scanned for exactly this test's processes: nothing a task started may survive a stop.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent import events as ev
from agent.engine import Engine
from agent.errors import StopActive, UsageError
from agent.procs import group_alive
from tests.conftest import cli, until, write_script

pytestmark = pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="needs bubblewrap")


# -- helpers (processes) -------------------------------------------------------------------
def marker() -> str:
    """A sleep duration no other process on the machine uses."""
    return f"1000.{uuid.uuid4().int % 10**8:08d}"


def live_processes(mark: str) -> list[tuple[int, int, str]]:
    """(pid, pgid, argv) of every non-zombie process whose argv mentions `mark`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                argv = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if mark in argv and fields[0] != "Z":
            found.append((int(entry.name), int(fields[2]), argv))
    return found


def sleepers(mark: str) -> list[tuple[int, int, str]]:
    return [p for p in live_processes(mark) if p[2].startswith("sleep ")]


def sleep_script(tmp_path: Path, mark: str, count: int = 2, name: str = "s.json") -> str:
    command = " ".join(f"sleep {mark} &" for _ in range(count)) + " wait"
    turn = {"tool_calls": [{"name": "execute_bash", "input": {"command": command}}]}
    return write_script(tmp_path / name, [{"match": ".", "turns": [turn]}])


async def running_sleepers(engine: Engine, task_id: str, mark: str, count: int = 2) -> list[int]:
    """Wait until the task's command is up; return every process group it owns."""
    await until(lambda: len(sleepers(mark)) >= count)
    held = engine.live(task_id)
    assert held is not None
    return sorted(set(held.process_groups) | {p[1] for p in live_processes(mark)})


def assert_all_gone(mark: str, pgids: list[int]) -> None:
    assert live_processes(mark) == [], "a process of the stopped task survived"
    assert not [g for g in pgids if group_alive(g)], "a process group survived"


async def status_events(engine: Engine, task_id: str) -> list[dict[str, Any]]:
    return [e for e in await engine.events(task_id) if e["type"] == ev.STATUS]


# -- emergency stop ------------------------------------------------------------------------
async def test_emergency_stop_kills_every_process_and_refuses_new_work(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    mark = marker()
    model = sleep_script(tmp_path, mark)
    engine = await engine_factory()
    task_id = await engine.submit("sleep twice", repo, model=model)
    pgids = await running_sleepers(engine, task_id, mark)

    await engine.emergency_stop(by="tester")
    # emergency_stop() returns once every group is reaped: nothing may be left, not even briefly.
    assert_all_gone(mark, pgids)
    task = await engine.wait(task_id)
    assert task["state"] == ev.CANCELLED
    assert "emergency stop by tester" in task["error"]
    last = (await status_events(engine, task_id))[-1]
    assert last["state"] == ev.CANCELLED and "emergency stop" in last["reason"]
    assert engine.stopped

    with pytest.raises(StopActive, match="re-arm"):
        await engine.submit("more work", repo, model=model)
    await engine.rearm(by="tester")
    done = write_script(tmp_path / "done.json", [{"match": ".", "turns": []}])
    again = await engine.submit("harmless", repo, model=done, apply=False)
    assert (await engine.wait(again))["state"] == ev.SUCCEEDED
    actions = [r["action"] for r in await engine.store.fetch("SELECT action FROM audit")]
    assert "emergency_stop" in actions and "rearm" in actions


async def test_stop_holds_queued_tasks_and_survives_a_restart(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    config.engine.max_concurrent = 1
    mark = marker()
    model = sleep_script(tmp_path, mark)
    engine = await engine_factory()
    first = await engine.submit("sleep first", repo, model=model)
    second = await engine.submit("queued behind", repo, model=model)
    pgids = await running_sleepers(engine, first, mark)

    await engine.emergency_stop()
    assert_all_gone(mark, pgids)
    assert (await engine.wait(first))["state"] == ev.CANCELLED
    # The queued task is held, not lost and not started.
    await asyncio.sleep(0.3)
    assert (await engine.get(second))["state"] == ev.QUEUED
    warnings = [e for e in await engine.events(second) if e["type"] == ev.WARNING]
    assert any("emergency stop" in w["message"] for w in warnings)
    assert sleepers(mark) == []
    await engine.close()

    # A new engine on the same store comes up stopped.
    reopened = await engine_factory()
    assert reopened.stopped
    with pytest.raises(StopActive):
        await reopened.submit("after restart", repo, model=model)
    await reopened.rearm()
    done = write_script(tmp_path / "done.json", [{"match": ".", "turns": []}])
    task_id = await reopened.submit("after re-arm", repo, model=done, apply=False)
    assert (await reopened.wait(task_id))["state"] == ev.SUCCEEDED


async def test_stop_right_after_submit_still_stops_the_task(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    """A stop that lands while the task is still being set up (worktree, model) must not
    be lost: the task must not go on to run its command."""
    mark = marker()
    model = sleep_script(tmp_path, mark)
    engine = await engine_factory()
    task_id = await engine.submit("sleep", repo, model=model)
    await until(lambda: (engine.live(task_id) or None) and engine.live(task_id).running)  # dispatched, not yet running a step
    await engine.emergency_stop()
    task = await asyncio.wait_for(engine.wait(task_id), 5)
    assert task["state"] == ev.CANCELLED
    await asyncio.sleep(0.3)
    assert live_processes(mark) == []


async def test_cancel_right_after_dispatch_is_not_lost(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    mark = marker()
    model = sleep_script(tmp_path, mark)
    engine = await engine_factory()
    task_id = await engine.submit("sleep", repo, model=model)
    await until(lambda: (engine.live(task_id) or None) and engine.live(task_id).running)
    await engine.cancel(task_id)
    task = await asyncio.wait_for(engine.wait(task_id), 5)
    assert task["state"] == ev.CANCELLED
    await asyncio.sleep(0.3)
    assert live_processes(mark) == []


async def test_stop_then_quick_rearm_does_not_stop_new_work(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    """The engine's own stop command row must not be replayed against work started after
    the operator re-armed."""
    mark = marker()
    model = sleep_script(tmp_path, mark, count=1)
    engine = await engine_factory()
    await engine.emergency_stop()
    await engine.rearm()
    task_id = await engine.submit("sleep after re-arm", repo, model=model)
    pgids = await running_sleepers(engine, task_id, mark, count=1)
    await asyncio.sleep(0.4)  # several control-loop polls
    assert (await engine.get(task_id))["state"] == ev.RUNNING
    assert not engine.stopped
    await engine.cancel(task_id)
    await engine.wait(task_id)
    assert_all_gone(mark, pgids)


async def test_cli_stop_from_another_process_stops_this_engine_fast(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    mark = marker()
    model = sleep_script(tmp_path, mark)
    engine = await engine_factory()
    task_id = await engine.submit("sleep", repo, model=model)
    pgids = await running_sleepers(engine, task_id, mark)

    result = await asyncio.to_thread(cli, "stop")
    exited = time.time()
    assert result.returncode == 0, result.stderr
    assert "emergency stop engaged" in result.stdout

    task = await asyncio.wait_for(engine.wait(task_id), 5)
    assert task["state"] == ev.CANCELLED and "emergency stop by cli" in task["error"]
    assert_all_gone(mark, pgids)
    assert engine.stopped
    cancelled = next(e for e in await status_events(engine, task_id) if e["state"] == "cancelled")
    row = (await engine.store.fetch("SELECT created_at FROM commands WHERE kind = 'stop'"))[0]
    # Noticed within 300 ms of the command row landing (the CLI exits after writing it,
    # so measured from its exit the delay is shorter still).
    assert cancelled["ts"] - row["created_at"] <= 0.3
    assert cancelled["ts"] - exited <= 0.3
    with pytest.raises(StopActive):
        await engine.submit("more", repo, model=model)
    rearm = await asyncio.to_thread(cli, "rearm")
    assert rearm.returncode == 0
    await until(lambda: not engine.stopped, timeout=2)


# -- cancel --------------------------------------------------------------------------------
async def test_cancel_of_a_running_task_kills_its_command(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    mark = marker()
    model = sleep_script(tmp_path, mark)
    engine = await engine_factory()
    task_id = await engine.submit("sleep", repo, model=model)
    pgids = await running_sleepers(engine, task_id, mark)
    started = time.monotonic()
    await engine.cancel(task_id, by="tester")
    task = await engine.wait(task_id)
    assert time.monotonic() - started < 2
    assert task["state"] == ev.CANCELLED and task["error"] == "cancelled by tester"
    assert_all_gone(mark, pgids)
    assert not engine.stopped  # a cancel is not a stop: new work is still accepted
    with pytest.raises(UsageError, match="already ended"):
        await engine.cancel(task_id)


async def test_cancel_of_a_queued_task(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    config.engine.max_concurrent = 1
    mark = marker()
    model = sleep_script(tmp_path, mark)
    engine = await engine_factory()
    first = await engine.submit("sleep first", repo, model=model)
    second = await engine.submit("queued behind", repo, model=model)
    pgids = await running_sleepers(engine, first, mark)
    assert (await engine.get(second))["state"] == ev.QUEUED

    await engine.cancel(second)
    task = await engine.wait(second)
    assert task["state"] == ev.CANCELLED and task["started_at"] is None
    assert [e["state"] for e in await status_events(engine, second)] == ["queued", "cancelled"]
    assert (await engine.get(first))["state"] == ev.RUNNING  # the other task is untouched
    assert len(sleepers(mark)) == 2

    await engine.cancel(first)
    await engine.wait(first)
    assert_all_gone(mark, pgids)
    await asyncio.sleep(0.3)  # the cancelled task never starts once the slot frees
    assert (await engine.get(second))["state"] == ev.CANCELLED and sleepers(mark) == []


async def test_cancel_from_another_process(repo: Path, tmp_path: Path, engine_factory: Any) -> None:
    mark = marker()
    model = sleep_script(tmp_path, mark)
    engine = await engine_factory()
    task_id = await engine.submit("sleep", repo, model=model)
    pgids = await running_sleepers(engine, task_id, mark)
    result = await asyncio.to_thread(cli, "cancel", task_id)
    assert result.returncode == 0, result.stderr
    task = await asyncio.wait_for(engine.wait(task_id), 5)
    assert task["state"] == ev.CANCELLED and task["error"] == "cancelled by cli"
    assert_all_gone(mark, pgids)
    assert not engine.stopped


async def test_cancel_while_awaiting_approval_clears_the_request(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    """A cancelled task leaves nothing in the approval queue for the operator to answer."""
    from agent.config import DeployTarget

    config.deploy = {"prod": DeployTarget(command="true")}
    turn = {"tool_calls": [{"name": "deploy_code", "input": {"target": "prod"}}]}
    model = write_script(tmp_path / "d.json", [{"match": ".", "turns": [turn]}])
    engine = await engine_factory()
    task_id = await engine.submit("deploy", repo, model=model)
    await until(lambda: engine.state_of(task_id) == ev.AWAITING_APPROVAL)
    (request,) = await engine.pending_approvals()
    await engine.cancel(task_id, by="tester")
    assert (await engine.wait(task_id))["state"] == ev.CANCELLED
    assert await engine.pending_approvals() == []
    row = await engine.store.get_approval(request["id"])
    assert row["state"] == "denied" and row["decided_by"] == "cancelled by tester"
    # The stream says so too: followers (the cockpit's pending count) see it leave the queue.
    decided = [e for e in await engine.events(task_id) if e["type"] == ev.APPROVAL_DECIDED]
    assert [(e["approval_id"], e["approved"], e["by"]) for e in decided] == [
        (request["id"], False, "cancelled by tester")
    ]


async def test_waiting_on_a_task_can_itself_be_cancelled(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    """A caller giving up on `wait` (a timeout, Ctrl-C) is not held until the task ends."""
    mark = marker()
    model = sleep_script(tmp_path, mark)
    engine = await engine_factory()
    task_id = await engine.submit("sleep", repo, model=model)
    await running_sleepers(engine, task_id, mark)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(engine.wait(task_id), 0.3)
    assert time.monotonic() - started < 2
    assert (await engine.get(task_id))["state"] == ev.RUNNING  # giving up did not cancel it
    await engine.cancel(task_id)
    assert (await engine.wait(task_id))["state"] == ev.CANCELLED


async def test_cli_rearm_releases_tasks_held_in_this_engine(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    config.engine.max_concurrent = 1
    mark = marker()
    model = sleep_script(tmp_path, mark)
    engine = await engine_factory()
    first = await engine.submit("sleep first", repo, model=model)
    second = await engine.submit("queued behind", repo, model=model)
    await running_sleepers(engine, first, mark)

    assert (await asyncio.to_thread(cli, "stop")).returncode == 0
    assert (await asyncio.wait_for(engine.wait(first), 5))["state"] == ev.CANCELLED
    await asyncio.sleep(0.3)
    assert (await engine.get(second))["state"] == ev.QUEUED and sleepers(mark) == []

    assert (await asyncio.to_thread(cli, "rearm")).returncode == 0
    pgids = await running_sleepers(engine, second, mark)  # the held task starts now
    await engine.cancel(second)
    await engine.wait(second)
    assert_all_gone(mark, pgids)


async def test_stop_reaches_processes_that_left_the_process_group(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    """setsid, nohup and double forks leave the command's process group; the sandbox's
    PID namespace still takes them down with it."""
    mark = marker()
    command = (
        f"setsid sleep {mark} & nohup sleep {mark} >/dev/null 2>&1 & "
        f"(sleep {mark} &) ; sleep {mark} & wait"
    )
    turn = {"tool_calls": [{"name": "execute_bash", "input": {"command": command}}]}
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": [turn]}])
    engine = await engine_factory()
    task_id = await engine.submit("escape the group", repo, model=model)
    pgids = await running_sleepers(engine, task_id, mark, count=4)
    assert len({pgid for _, pgid, argv in sleepers(mark)}) >= 2  # really in other groups
    await engine.emergency_stop()
    await until(lambda: not live_processes(mark), timeout=1)
    assert_all_gone(mark, pgids)
    assert (await engine.wait(task_id))["state"] == ev.CANCELLED


# -- the stop switch works whatever else is broken -----------------------------------------
@pytest.mark.parametrize("broken", ["policy.toml", "config.toml"])
async def test_cli_stop_works_with_a_broken_policy_or_config(
    broken: str, repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    mark = marker()
    engine = await engine_factory()
    task_id = await engine.submit("sleep", repo, model=sleep_script(tmp_path, mark))
    pgids = await running_sleepers(engine, task_id, mark)
    (config.data_dir / broken).write_text("mode = [this is not toml\n")  # a hand edit gone wrong

    result = await asyncio.to_thread(cli, "stop")
    assert result.returncode == 0, result.stderr
    assert "emergency stop engaged: 1 running task(s) stopped" in result.stdout
    if broken == "config.toml":  # said, not hidden; and the stop went ahead anyway
        assert "warning" in result.stderr and "config.toml" in result.stderr
    task = await asyncio.wait_for(engine.wait(task_id), 5)
    assert task["state"] == ev.CANCELLED and "emergency stop by cli" in task["error"]
    assert_all_gone(mark, pgids)
    assert engine.stopped

    verify = await asyncio.to_thread(cli, "audit", "verify")
    assert verify.returncode == 0, verify.stderr
    rearm = await asyncio.to_thread(cli, "rearm")
    assert rearm.returncode == 0, rearm.stderr
    await until(lambda: not engine.stopped, timeout=2)
    actions = [r["action"] for r in await engine.store.fetch("SELECT action FROM audit")]
    assert actions[-1] == "rearm" and "emergency_stop" in actions


async def test_cli_stop_with_no_engine_running_still_holds(repo: Path, tmp_path: Path) -> None:
    result = cli("stop")
    assert result.returncode == 0, result.stderr
    assert "no engine is running" in result.stdout
    refused = cli("run", "x", "--workspace", str(repo), "--model", sleep_script(tmp_path, "1"))
    assert refused.returncode == 6 and "emergency stop is engaged" in refused.stderr


async def test_cli_stop_says_when_an_engine_does_not_confirm(
    repo: Path, tmp_path: Path, config: Any
) -> None:
    """An engine that is alive (its process runs, its heartbeat is fresh) but never stops
    its task: the stop is still engaged, and the operator is told, not reassured."""
    import socket

    from agent.store import Store

    store = await Store.open(config.store_path)
    try:
        await store.register_engine("ghost-1", os.getpid(), socket.gethostname(), "test")
        await store.create_task({"id": "t-ghost", "title": "stuck", "workspace": str(repo),
                                 "state": ev.RUNNING, "engine_id": "ghost-1"})  # fmt: skip
        result = await asyncio.to_thread(cli, "stop")
        assert result.returncode == 1
        assert "emergency stop engaged: 0 running task(s) stopped" in result.stdout
        assert "engine ghost-1 did not confirm" in result.stderr and "1 of its task" in result.stderr
        assert (await store.get_setting("emergency_stop"))["engaged"] is True
    finally:
        await store.close()


async def test_a_process_that_survives_the_kill_is_reported_loudly(
    repo: Path, tmp_path: Path, engine_factory: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """SIGKILL cannot fail for our own children, except in the kernel's corner cases (a
    process stuck in uninterruptible I/O): simulated here, since no test can make one."""
    from agent import procs

    mark = marker()
    engine = await engine_factory()
    task_id = await engine.submit("sleep", repo, model=sleep_script(tmp_path, mark))
    await running_sleepers(engine, task_id, mark)

    async def stuck(pids: set[int], timeout_s: float = 2.0) -> list[int]:
        return [4242]

    monkeypatch.setattr(procs, "_wait_pids_gone", stuck)
    await engine.cancel(task_id)
    assert (await engine.wait(task_id))["state"] == ev.CANCELLED
    errors = [e["message"] for e in await engine.events(task_id) if e["type"] == ev.ERROR]
    assert any("survived the kill (pids 4242)" in m for m in errors), errors
    audited = await engine.store.fetch("SELECT detail FROM audit WHERE action = 'kill_failed'")
    assert audited and "4242" in audited[0]["detail"]
    assert "survived" in caplog.text
