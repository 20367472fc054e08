"""Stopping things: cancel, the emergency stop, the control rows other processes write
(stop, re-arm, cancel, secrets, picked up every CONTROL_INTERVAL_S), and, on start,
interrupting the tasks of engines that died.

Death is proven, never guessed: an engine is dead when the lock it holds while alive can
be taken (agent/store/liveness.py). A paused process or a busy event loop keeps it; the
heartbeat is only for display. A task is taken from a dead engine by one atomic update
(two recovering engines: one wins), and an engine that finds its task taken anyway stops
it without writing more (`task_lost`). A full disk fails the tasks in progress
(`watch_store`), using the room the store kept aside to record why.

`engage_stop` / `lift_stop` work on a bare Store (no Engine, no policy, no config needed), so
`livhana-cockpit stop` works even when policy.toml or config.toml is broken:

    async with open_store(data_dir) as store:
        await engage_stop(store, by="cli")
        report = await await_stop(store)       # {"stopped": n, "unconfirmed": {...}, ...}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import approvals, pausing
from . import audit as audit_log
from . import events as ev
from .errors import CockpitError

if TYPE_CHECKING:
    from .engine import Engine
    from .store import Store

log = logging.getLogger(__name__)
CONTROL_INTERVAL_S = 0.1  # cross-process stop must be noticed within 300 ms
STOP_ACK_S = 2.0  # how long `stop` waits for every engine to confirm its tasks stopped
WORKING = tuple(s for s in ev.LIVE_STATES if s != ev.QUEUED)  # queued ones are held, not stopped


# -- the stop switch, on the store alone ------------------------------------------------------
async def engage_stop(store: Store, by: str, engine_id: str | None = None) -> None:
    """Engage the emergency stop: the persistent setting (survives restarts, refuses new
    work), the control row every engine picks up, and the audit record."""
    await store.set_setting("emergency_stop", {"engaged": True, "by": by, "ts": time.time()})
    # "engine" marks the row as that engine's own: it must not replay it later (after a
    # quick re-arm, a replayed stop would cancel work started since).
    payload = {"by": by, **({"engine": engine_id} if engine_id else {})}
    await store.add_command("stop", None, payload)
    await audit_log.append(store, by, "emergency_stop", None, {"engine": engine_id})


async def lift_stop(store: Store, by: str, engine_id: str | None = None) -> None:
    await store.set_setting("emergency_stop", {"engaged": False, "by": by, "ts": time.time()})
    payload = {"by": by, **({"engine": engine_id} if engine_id else {})}
    await store.add_command("rearm", None, payload)
    await audit_log.append(store, by, "rearm", None, {"engine": engine_id})


async def await_stop(store: Store, timeout_s: float = STOP_ACK_S) -> dict[str, Any]:
    """Wait (bounded) until no task of a live engine is still working. Returns how many
    were working when the stop was written and stopped since, and per engine that did not
    confirm in time, how many of its tasks still work."""
    alive = {e["id"] for e in await store.engines() if store.engine_alive(e)}
    working = [t for t in await _working(store) if t["engine_id"] in alive]
    deadline = time.monotonic() + timeout_s
    left = working
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        ids = {t["id"] for t in await _working(store)}
        left = [t for t in working if t["id"] in ids]
    unconfirmed: dict[str, int] = {}
    for task in left:
        unconfirmed[task["engine_id"]] = unconfirmed.get(task["engine_id"], 0) + 1
    return {"engines": len(alive), "stopped": len(working) - len(left), "unconfirmed": unconfirmed}


async def _working(store: Store) -> list[dict[str, Any]]:
    return await store.list_tasks(states=WORKING, limit=10_000)


@contextlib.asynccontextmanager
async def open_store(data_dir: Path, readonly: bool = False) -> AsyncIterator[Store]:
    from .store import Store

    store = await Store.open(Path(data_dir) / "livhana.db", readonly=readonly)
    try:
        yield store
    finally:
        await store.close()


async def secrets_changed(data_dir: Path, name: str) -> None:
    """Tell running engines a keyring secret changed (the value never goes in the row):
    each re-reads the keyring so its redactor knows the new value."""
    if not (Path(data_dir) / "livhana.db").exists():  # no store yet: no engine to tell
        return
    async with open_store(Path(data_dir)) as store:
        await store.add_command("secrets", None, {"name": name})


async def halt_task(engine: Engine, task_id: str, reason: tuple[str, str]) -> None:
    if task_id in engine._queue:
        engine._queue.remove(task_id)
        await engine.transition(task_id, reason[0], reason[1])
        await engine._complete(task_id, False, reason[1])
        return
    # Remembered by task, not only on its run: a task still preparing its worktree has
    # no run yet, and its worker must still end with this reason.
    engine.stop_reasons[task_id] = reason
    run = engine._runs.get(task_id)
    if run is not None:
        run.stop_reason = reason
        pending = list(run.pending_approvals)
        engine.desk.cancel_for(pending)
        survivors = await run.procs.kill_all()
        if survivors:
            await report_survivors(engine, task_id, survivors)
    worker = engine._workers.get(task_id)
    if worker and task_id not in engine.finishing:
        worker.cancel()
    if run is not None:
        # Close the task's open requests too: left "pending" they would sit in the
        # approval queue forever, asking the operator about a task that is gone.
        for approval_id in pending:
            await _close_request(engine, task_id, approval_id, reason[1], "task stopped")


async def _close_request(
    engine: Engine, task_id: str, approval_id: int, by: str, reason: str, kind: str = ""
) -> None:
    """Deny a request its task can no longer act on, if still pending: audited, and its
    decision in the stream too, so every follower (the cockpit's pending count, `run
    --approve ask`) sees it leave the queue."""
    if not await engine.store.decide_approval(approval_id, False, by, reason):
        await approvals.announce_winner(engine, task_id, approval_id)  # decided just before
        return
    detail = {"approval_id": approval_id, **({"kind": kind} if kind else {}), "reason": reason}
    await engine.audit(by, "deny", task_id, detail)
    engine.bus.emit(task_id, ev.APPROVAL_DECIDED, approval_id=approval_id, approved=False,
                    by=by, reason=reason, **({"kind": kind} if kind else {}))  # fmt: skip


async def report_survivors(engine: Engine, task_id: str, survivors: list[int]) -> None:
    """A process that outlived SIGKILL and the wait: the operator must know, loudly."""
    message = (
        f"{len(survivors)} process(es) of this task survived the kill (pids "
        f"{', '.join(map(str, survivors[:10]))}); check them by hand"
    )
    log.error("task %s: %s", task_id, message)
    engine.bus.emit(task_id, ev.ERROR, message=message, pids=survivors)
    await engine.audit("engine", "kill_failed", task_id, {"pids": survivors})


async def halt_all(engine: Engine, by: str) -> None:
    engine.stopped = True
    reason = (ev.CANCELLED, f"emergency stop by {by}")
    await asyncio.gather(*(_halt_running(engine, t, reason) for t in list(engine._workers)))
    for task_id in list(engine._queue):  # held, not lost: they start after re-arm
        engine.bus.emit(task_id, ev.WARNING, message="held: emergency stop engaged")


async def _halt_running(engine: Engine, task_id: str, reason: tuple[str, str]) -> None:
    if task_id in engine._workers:
        await halt_task(engine, task_id, reason)


async def control_loop(engine: Engine) -> None:
    beats, failing = 0, ""
    while True:
        await asyncio.sleep(CONTROL_INTERVAL_S)
        try:
            await _apply_commands(engine)
            await engine.desk.poll()
            engine.safety.reload_policy()
            beats += 1
            if beats * CONTROL_INTERVAL_S >= engine.config.engine.heartbeat_s:
                beats = 0
                # For display (the health panel): liveness is the engine's lock.
                await engine.store.heartbeat(engine.engine_id)
                await _check_ownership(engine)
            failing = ""
        except CockpitError as exc:
            if str(exc) != failing:  # once per cause, not ten times a second
                log.error("control loop: %s", exc)
            failing = str(exc)


async def _check_ownership(engine: Engine) -> None:
    """A task of ours that another engine took over stops here even while it is quiet
    (a long command): the bus would only notice at its next event."""
    mine = [t for t in engine._workers if engine.bus.owns(t)]
    if not mine:
        return
    marks = ", ".join("?" for _ in mine)
    rows = await engine.store.fetch(
        f"SELECT id FROM tasks WHERE id IN ({marks}) AND engine_id IS NOT ?",
        [*mine, engine.engine_id],
    )
    for row in rows:
        engine.bus.mark_lost(row["id"])


def watch_store(engine: Engine) -> None:
    """Tie the store's alarms to the engine: a full disk fails what is in progress."""
    engine.store.on_disk_full(lambda message: _spawn(engine, _disk_full(engine, message)))
    engine.bus.on_lost.append(lambda task_id: task_lost(engine, task_id))


def _spawn(engine: Engine, work: Any) -> None:
    future = asyncio.ensure_future(work)
    engine._orphans.add(future)
    future.add_done_callback(engine._orphans.discard)


async def _disk_full(engine: Engine, message: str) -> None:
    reason = (ev.FAILED, f"stopped: {message}")
    await asyncio.gather(*(halt_task(engine, t, reason) for t in list(engine._workers)))
    for task_id in list(engine._queue):
        await halt_task(engine, task_id, reason)


def task_lost(engine: Engine, task_id: str) -> None:
    """Another engine took this task over (it judged this one dead): stop its work here
    and write nothing more for it (the bus refuses its events, the row is not ours)."""
    log.error("task %s was taken over by another engine; stopping it here", task_id)
    engine.stop_reasons[task_id] = (ev.INTERRUPTED, "taken over by another engine")
    run = engine._runs.get(task_id)
    if run is not None:
        _spawn(engine, run.procs.kill_all())
    worker = engine._workers.get(task_id)
    if worker is not None:
        worker.cancel()


async def _apply_commands(engine: Engine) -> None:
    for cmd in await engine.store.commands_after(engine._command_cursor):
        engine._command_cursor = cmd["id"]
        by = cmd["payload"].get("by", "another process")
        if cmd["payload"].get("engine") == engine.engine_id:
            continue  # written by this engine, which already acted on it
        if cmd["kind"] == "stop" and not engine.stopped:
            await halt_all(engine, by)
        elif cmd["kind"] == "rearm":
            engine.stopped = False
            engine._wake.set()
        elif (
            cmd["kind"] == "cancel"
            and engine._states.get(cmd["task_id"], ev.FAILED) not in ev.END_STATES
        ):
            await halt_task(engine, cmd["task_id"], (ev.CANCELLED, f"cancelled by {by}"))
        elif cmd["kind"] == "secrets":
            await engine.safety.refresh_secrets()
        elif cmd["kind"] in ("pause", "resume"):
            await pausing.apply_command(engine, cmd, by)


async def recover(engine: Engine) -> None:
    """Tasks left live by an engine that is provably gone become `interrupted`."""
    from .recovery import recover_journals

    await recover_journals(engine)  # first: an apply cut short is finished or undone
    store = engine.store
    # Tasks first, engines second: an engine registers before it makes a task and leaves
    # its row until its tasks have ended, so a task seen here whose engine has no row
    # any more was left behind by a dead one (or has ended since: take_over says so).
    tasks = await store.list_tasks(states=ev.LIVE_STATES, limit=10_000)
    engines = {e["id"]: e for e in await store.engines()}
    dead: dict[str | None, bool] = {}
    for task in tasks:
        owner = task["engine_id"]
        if owner == engine.engine_id:
            continue
        if owner not in dead:
            row = engines.get(owner) if owner else None
            dead[owner] = row is None or not store.engine_alive(row)
        if not dead[owner] or not await store.take_over(task["id"], owner, engine.engine_id):
            continue  # alive, or another engine recovering at the same moment got it
        await engine.bus.own(task["id"])
        engine._states[task["id"]] = task["state"]
        await engine.transition(task["id"], ev.INTERRUPTED, "the process running it stopped")
        # Its open requests can never be acted on now: out of the approval queue.
        for row in await store.approvals("pending", task_id=task["id"]):
            await _close_request(engine, task["id"], row["id"], "interrupted",
                                 "the process running it stopped", row["kind"])  # fmt: skip
        await engine._complete(task["id"], False, "interrupted: the process running it stopped")
        await _drop_unchanged_tree(engine, task)
    for engine_id, row in engines.items():  # gone engines leave no row or lock file behind
        if engine_id != engine.engine_id and (dead.get(engine_id) or not store.engine_alive(row)):
            await store.remove_engine(engine_id)


async def needs_recovery(store: Store, data_dir: Path) -> bool:
    """Whether a stopped process left something for the next start to settle: an apply
    or rollback journal, or a live task whose engine is provably gone. Read-only, so a
    command that only shows the store starts an engine (and writes) only then."""
    if any((Path(data_dir) / "journal").glob("*.json")):
        return True
    live = await store.list_tasks(states=ev.LIVE_STATES, limit=10_000)
    if not live:
        return False
    engines = {e["id"]: e for e in await store.engines()}
    return any(
        t["engine_id"] not in engines or not store.engine_alive(engines[t["engine_id"]])
        for t in live
    )


async def _drop_unchanged_tree(engine: Engine, task: dict[str, Any]) -> None:
    """An interrupted task that changed nothing leaves no worktree or branch behind (one
    with changes stays, for review or rollback), like a task that ends by itself."""
    from . import workspace
    from .worker import drop_if_unchanged

    if not task.get("worktree") or not task.get("branch") or not Path(task["worktree"]).is_dir():
        return  # not prepared, a plain folder's copy, or gone: never drop a branch blind
    tree = await workspace.tree_for(task)
    await drop_if_unchanged(engine, task["id"], tree, None)  # never raises
