"""Pause and resume a task, from this process or another one.

A paused task keeps its state (the lifecycle has no `paused` state): it holds before its
next model call or tool call. A command already running is not killed; it finishes and
the task holds after it. Cancel and the emergency stop still end a held task at once (its
worker is cancelled while it waits here).

Like cancel, the request is a row in the store's `commands` table: the owning engine acts
on it (at once when it is this one, within a control poll otherwise), and the latest
pause/resume row of a live task is also what every process reads as "paused".
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from . import events as ev
from .errors import UsageError

if TYPE_CHECKING:
    from .bus import EventBus
    from .safety import Safety
    from .store import Store
    from .taskbook import TaskBook

PAUSED = "paused"  # event types: status-neutral, the task's state stays as it was
RESUMED = "resumed"


class Pauses:
    """The pause gates of this engine's tasks: a held task waits at its gate (`hold`)."""

    def __init__(
        self, store: Store, bus: EventBus, book: TaskBook, safety: Safety, engine_id: str
    ) -> None:
        self.store, self.bus, self.book, self.safety = store, bus, book, safety
        self.engine_id = engine_id
        self._gates: dict[str, asyncio.Event] = {}  # held tasks

    async def request(self, task_id: str, pause: bool, by: str) -> None:
        """Engine.pause / Engine.resume: checked, audited, recorded, applied by the owner."""
        task = await self.store.get_task(task_id)
        if task is None:
            raise UsageError(f"no task {task_id!r} (see `livhana-cockpit history`)")
        task_id = task["id"]
        if task["state"] in ev.END_STATES:
            raise UsageError(f"task {task_id} already ended ({task['state']})")
        paused = task_id in await paused_tasks(self.store, [task_id])
        if pause and paused:
            raise UsageError(f"task {task_id} is already paused")
        if not pause and not paused:
            raise UsageError(f"task {task_id} is not paused")
        kind = "pause" if pause else "resume"
        await self.safety.audit(by, kind, task_id, {})
        if self.book.state_of(task_id):  # ours: act now; the row (marked ours) is the record
            await self.store.add_command(kind, task_id, {"by": by, "engine": self.engine_id})
            self.apply(task_id, pause, by)
        else:
            await self.store.add_command(kind, task_id, {"by": by})

    async def apply_command(self, cmd: dict[str, Any], by: str) -> None:
        """A pause/resume row written by another process, for one of this engine's tasks."""
        state = self.book.state_of(cmd["task_id"] or "")
        if state and state not in ev.END_STATES:
            self.apply(cmd["task_id"], cmd["kind"] == "pause", by)

    def apply(self, task_id: str, pause: bool, by: str) -> None:
        gates = self._gates
        if pause and task_id not in gates:
            gates[task_id] = asyncio.Event()
            self.bus.emit(task_id, PAUSED, by=by,
                          message=f"paused by {by}: holds before its next step")  # fmt: skip
        elif not pause and task_id in gates:
            gates.pop(task_id).set()
            self.bus.emit(task_id, RESUMED, by=by, message=f"resumed by {by}")

    async def hold(self, task_id: str) -> bool:
        """Called before each model call and each tool call: wait here while paused. True
        if it waited (the run then checks whether it was stopped while held)."""
        gate = self._gates.get(task_id)
        if gate is None:
            return False
        await gate.wait()
        return True

    def is_paused(self, task_id: str) -> bool:
        return task_id in self._gates

    def forget(self, task_id: str) -> None:
        """The task's worker ended: nothing of it stays held."""
        self._gates.pop(task_id, None)


async def paused_tasks(store: Store, task_ids: list[str]) -> set[str]:
    """Which of these tasks are paused: their latest pause/resume row says pause."""
    if not task_ids:
        return set()
    marks = ", ".join("?" for _ in task_ids)
    rows = await store.fetch(
        f"SELECT task_id, kind FROM commands WHERE kind IN ('pause', 'resume') "
        f"AND task_id IN ({marks}) ORDER BY id",
        task_ids,
    )
    latest = {row["task_id"]: row["kind"] for row in rows}
    return {task_id for task_id, kind in latest.items() if kind == "pause"}
