"""Task control: the emergency stop, cancel, pause and resume, and the control rows other
processes write (stop, re-arm, cancel, secrets, pause, resume: picked up every
CONTROL_INTERVAL_S).

An engine that finds a task of its own taken over by another engine (which judged it dead:
agent/recovery.py) stops it without writing more (`task_lost`). A full disk fails the tasks
in progress (`Control.start` ties it to the store's alarm), using the room the store kept
aside to record why.

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

from . import audit as audit_log
from . import events as ev
from .errors import CockpitError, UsageError

if TYPE_CHECKING:
    from .approvals import ApprovalDesk
    from .bus import EventBus
    from .config import Config
    from .dispatch import Dispatcher
    from .pausing import Pauses
    from .safety import Safety
    from .store import Store
    from .taskbook import TaskBook
    from .worker import Worker

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


class Control:
    """Stopping, pausing and resuming this engine's tasks, and obeying the control rows."""

    def __init__(
        self,
        config: Config,
        store: Store,
        bus: EventBus,
        book: TaskBook,
        tasks: Dispatcher,
        worker: Worker,
        desk: ApprovalDesk,
        pauses: Pauses,
        safety: Safety,
        engine_id: str,
    ) -> None:
        self.config, self.store, self.bus, self.book = config, store, bus, book
        self.tasks, self.worker, self.desk, self.pauses = tasks, worker, desk, pauses
        self.safety, self.engine_id = safety, engine_id
        self._cursor = 0  # the last control row seen
        self._spawned: set[asyncio.Future[Any]] = set()  # work started from callbacks

    async def start(self) -> None:
        """Tie the store's alarms to this engine, and skip the rows written before it."""
        self.store.on_disk_full(lambda message: self._spawn(self._disk_full(message)))
        self.bus.on_lost.append(self.task_lost)
        self._cursor = await self.store.last_command_id()
        if (await self.store.get_setting("emergency_stop", {})).get("engaged"):
            self.tasks.hold()

    @property
    def stopped(self) -> bool:
        """The emergency stop is engaged (for this engine: new work is held)."""
        return self.tasks.held

    # -- the operator's controls -----------------------------------------------------------------
    async def cancel(self, task: dict[str, Any], by: str) -> None:
        task_id = task["id"]
        if task["state"] in ev.END_STATES:
            raise UsageError(f"task {task_id} already ended ({task['state']})")
        await self.safety.audit(by, "cancel", task_id, {})
        if self.book.holds(task_id):
            await self.halt(task_id, (ev.CANCELLED, f"cancelled by {by}"))
        else:  # another engine's: it obeys the row
            await self.store.add_command("cancel", task_id, {"by": by})

    async def pause(self, task_id: str, pause: bool, by: str) -> None:
        """Hold the task before its next model or tool call (state unchanged), or let it go on."""
        await self.pauses.request(task_id, pause, by)

    async def emergency_stop(self, by: str) -> None:
        await engage_stop(self.store, by, self.engine_id)
        await self.halt_all(by)

    async def rearm(self, by: str) -> None:
        await lift_stop(self.store, by, self.engine_id)
        self.tasks.release()

    # -- halting ---------------------------------------------------------------------------------
    async def halt(self, task_id: str, reason: tuple[str, str]) -> None:
        """End one task with `reason` ((state, why)): off the queue, or its run stopped, its
        processes killed, its worker cancelled and its open requests closed."""
        if self.tasks.unqueue(task_id):
            await self.book.end(task_id, *reason)
            return
        run = self.worker.stop(task_id, reason)
        pending: list[int] = []
        if run is not None:
            pending = self.desk.stop_waiting(task_id)
            survivors = await run.procs.kill_all()
            if survivors:
                await self._report_survivors(task_id, survivors)
        self.tasks.cancel(task_id)
        # Close the task's open requests too: left "pending" they would sit in the
        # approval queue forever, asking the operator about a task that is gone.
        for approval_id in pending:
            await self.desk.close(task_id, approval_id, reason[1], "task stopped")

    async def _report_survivors(self, task_id: str, survivors: list[int]) -> None:
        """A process that outlived SIGKILL and the wait: the operator must know, loudly."""
        message = (
            f"{len(survivors)} process(es) of this task survived the kill (pids "
            f"{', '.join(map(str, survivors[:10]))}); check them by hand"
        )
        log.error("task %s: %s", task_id, message)
        self.bus.emit(task_id, ev.ERROR, message=message, pids=survivors)
        await self.safety.audit("engine", "kill_failed", task_id, {"pids": survivors})

    async def halt_all(self, by: str) -> None:
        """The emergency stop, here: every running task stops, queued ones are held."""
        self.tasks.hold()
        reason = (ev.CANCELLED, f"emergency stop by {by}")
        await asyncio.gather(*(self._halt_running(t, reason) for t in self.tasks.running()))
        for task_id in self.tasks.queued():  # held, not lost: they start after re-arm
            self.bus.emit(task_id, ev.WARNING, message="held: emergency stop engaged")

    async def _halt_running(self, task_id: str, reason: tuple[str, str]) -> None:
        if self.tasks.is_running(task_id):
            await self.halt(task_id, reason)

    async def interrupt_all(self, reason: str) -> None:
        """The engine shuts down: what runs ends `interrupted`, and so does what waits."""
        for task_id in self.tasks.running():  # running or still preparing: both end now
            await self.halt(task_id, (ev.INTERRUPTED, reason))
        await self.tasks.drain()
        await asyncio.gather(*self._spawned, return_exceptions=True)
        for task_id in self.tasks.queued():
            await self.book.transition(task_id, ev.INTERRUPTED, reason)
            await self.book.complete(task_id, False, f"interrupted: {reason}")

    def task_lost(self, task_id: str) -> None:
        """Another engine took this task over (it judged this one dead): stop its work here
        and write nothing more for it (the bus refuses its events, the row is not ours)."""
        log.error("task %s was taken over by another engine; stopping it here", task_id)
        run = self.worker.stop(task_id, (ev.INTERRUPTED, "taken over by another engine"))
        if run is not None:
            self._spawn(run.procs.kill_all())
        self.tasks.cancel(task_id, even_finishing=True)

    async def _disk_full(self, message: str) -> None:
        reason = (ev.FAILED, f"stopped: {message}")
        await asyncio.gather(*(self.halt(t, reason) for t in self.tasks.running()))
        for task_id in self.tasks.queued():
            await self.halt(task_id, reason)

    def _spawn(self, work: Any) -> None:
        future = asyncio.ensure_future(work)
        self._spawned.add(future)
        future.add_done_callback(self._spawned.discard)

    # -- the control rows ------------------------------------------------------------------------
    async def loop(self) -> None:
        beats, failing = 0, ""
        while True:
            await asyncio.sleep(CONTROL_INTERVAL_S)
            try:
                await self._apply_commands()
                await self.desk.poll()
                self.safety.reload_policy()
                beats += 1
                if beats * CONTROL_INTERVAL_S >= self.config.engine.heartbeat_s:
                    beats = 0
                    # For display (the health panel): liveness is the engine's lock.
                    await self.store.heartbeat(self.engine_id)
                    await self._check_ownership()
                failing = ""
            except CockpitError as exc:
                if str(exc) != failing:  # once per cause, not ten times a second
                    log.error("control loop: %s", exc)
                failing = str(exc)

    async def _check_ownership(self) -> None:
        """A task of ours that another engine took over stops here even while it is quiet
        (a long command): the bus would only notice at its next event."""
        mine = [t for t in self.tasks.running() if self.bus.owns(t)]
        if not mine:
            return
        marks = ", ".join("?" for _ in mine)
        rows = await self.store.fetch(
            f"SELECT id FROM tasks WHERE id IN ({marks}) AND engine_id IS NOT ?",
            [*mine, self.engine_id],
        )
        for row in rows:
            self.bus.mark_lost(row["id"])

    async def _apply_commands(self) -> None:
        for cmd in await self.store.commands_after(self._cursor):
            self._cursor = cmd["id"]
            by = cmd["payload"].get("by", "another process")
            if cmd["payload"].get("engine") == self.engine_id:
                continue  # written by this engine, which already acted on it
            if cmd["kind"] == "stop" and not self.tasks.held:
                await self.halt_all(by)
            elif cmd["kind"] == "rearm":
                self.tasks.release()
            elif cmd["kind"] == "cancel" and self.book.live(cmd["task_id"]):
                await self.halt(cmd["task_id"], (ev.CANCELLED, f"cancelled by {by}"))
            elif cmd["kind"] == "secrets":
                await self.safety.refresh_secrets()
            elif cmd["kind"] in ("pause", "resume"):
                await self.pauses.apply_command(cmd, by)
