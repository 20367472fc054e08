"""Stopping things: cancel, the emergency stop, the control rows other processes write
(stop, re-arm, cancel, picked up every CONTROL_INTERVAL_S), and, on start, interrupting
the tasks of engines that died."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import pausing
from .errors import CockpitError

if TYPE_CHECKING:
    from .config import Config
    from .engine import Engine

log = logging.getLogger(__name__)
CONTROL_INTERVAL_S = 0.1  # cross-process stop must be noticed within 300 ms


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
        await run.procs.kill_all()
    worker = engine._workers.get(task_id)
    if worker:
        worker.cancel()
    if run is not None:
        # Close the task's open requests too: left "pending" they would sit in the
        # approval queue forever, asking the operator about a task that is gone.
        for approval_id in pending:
            await engine.store.decide_approval(approval_id, False, reason[1], "task stopped")


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
    beats = 0
    while True:
        await asyncio.sleep(CONTROL_INTERVAL_S)
        try:
            await _apply_commands(engine)
            await engine.desk.poll()
            beats += 1
            if beats * CONTROL_INTERVAL_S >= engine.config.engine.heartbeat_s:
                beats = 0
                await engine.store.heartbeat(engine.engine_id)
        except CockpitError as exc:
            log.error("control loop: %s", exc)


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
        elif cmd["kind"] in ("pause", "resume"):
            await pausing.apply_command(engine, cmd, by)


async def recover(engine: Engine) -> None:
    """Tasks left live by an engine that is gone become `interrupted`."""
    alive = {e["id"] for e in await engine.store.engines() if _engine_alive(e, engine.config)}
    for task in await engine.store.list_tasks(states=ev.LIVE_STATES, limit=10_000):
        if task["engine_id"] not in alive:
            await engine.bus.adopt(task["id"])
            engine._states[task["id"]] = task["state"]
            await engine.transition(task["id"], ev.INTERRUPTED, "the process running it stopped")
            # Its open requests can never be acted on now: out of the approval queue.
            for row in await engine.store.approvals("pending", task_id=task["id"]):
                await engine.store.decide_approval(
                    row["id"], False, "interrupted", "the process running it stopped"
                )
            await engine._complete(task["id"], False, "interrupted: the process running it stopped")


def _engine_alive(row: dict[str, Any], config: Config) -> bool:
    if row["host"] == socket.gethostname():
        try:
            os.kill(int(row["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
    return time.time() - row["heartbeat"] < max(10.0, 5 * config.engine.heartbeat_s)
