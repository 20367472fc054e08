"""The engine's book of its tasks: each one's state as this engine knows it, its row in the
store, and the `status` and `complete` events that say so.

Every part that moves a task on (the worker, control, the approval desk, rollback,
recovery) writes through here, so a state change is always the same three things: the
state remembered, the row written (as the task's owner), the event emitted.

    book.state_of(task_id)                          # "" for a task this engine never held
    await book.transition(task_id, "failed", why)   # row + `status` event
    await book.complete(task_id, False, why)        # the `complete` event + summary
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from . import events as ev
from .bus import EventBus
from .errors import StoreError, StoreFull
from .store import Store

log = logging.getLogger(__name__)
RECORD_TRIES = 3  # a task's row write waits this many lock timeouts before giving up

# A running task's counters ({"steps", "tokens", "cost_usd"}), or None: set by the engine.
Counters = Callable[[str], dict[str, Any] | None]


class TaskBook:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        redact: Callable[[Any], Any],
        engine_id: str,
        counters: Counters = lambda _task_id: None,
    ) -> None:
        self.store, self.bus, self.engine_id = store, bus, engine_id
        self._redact = redact
        self._counters = counters
        self._states: dict[str, str] = {}
        # Tasks whose end could not be written (a full disk): task id -> the store's error.
        self._unrecorded: dict[str, str] = {}

    def state_of(self, task_id: str) -> str:
        return self._states.get(task_id, "")

    def holds(self, task_id: str) -> bool:
        """Whether this engine runs (or ran) the task: it knows its state."""
        return task_id in self._states

    def live(self, task_id: str) -> bool:
        """Known here and not ended (a task never held here counts as ended)."""
        return self._states.get(task_id, ev.FAILED) not in ev.END_STATES

    def enter(self, task_id: str, state: str) -> None:
        """Start keeping a task at the state its row has (a new task, or one taken over)."""
        self._states[task_id] = state

    async def adopt(self, task_id: str, state: str) -> None:
        """Write for a task this engine did not run (a rollback, a recovery): its events
        continue its stream, and its state is the row's."""
        await self.bus.adopt(task_id)
        self._states[task_id] = state

    def unrecorded(self, task_id: str) -> str | None:
        """Why the task's end could not be written (a full disk), if it could not."""
        return self._unrecorded.get(task_id)

    async def transition(self, task_id: str, state: str, reason: str = "") -> None:
        old = self._states.get(task_id, "")
        if old == state:
            return
        if old and not ev.can_transition(old, state):
            log.warning("odd transition %s -> %s for %s", old, state, task_id)
        self._states[task_id] = state
        fields: dict[str, Any] = {"state": state}
        # The row's counters are written per model call: a transition settles them.
        fields.update(self._counters(task_id) or {})
        if state in ev.END_STATES:
            fields["finished_at"] = time.time()
            if reason and state != ev.SUCCEEDED:
                fields["error"] = self._redact(reason)  # may quote tool output
        if not await self.record(task_id, **fields):
            return  # taken over by another engine: its record stands
        payload = {"state": state, "previous": old}
        if reason:
            payload["reason"] = reason
        self.bus.emit(task_id, ev.STATUS, **payload)

    async def complete(
        self, task_id: str, success: bool, summary: str, changes: list[str] | None = None
    ) -> None:
        if self.bus.lost(task_id):
            return
        self.bus.emit(task_id, ev.COMPLETE, success=success, changes=changes or [], summary=summary)
        # The summary is the model's own text, which may echo a secret it saw.
        await self.record(task_id, summary=self._redact(summary), changes=changes or [])
        try:
            await self.bus.flush()
        except StoreError as exc:  # kept: the flush loop (or close) tries again
            log.warning("task %s: events not stored yet: %s", task_id, exc)

    async def end(self, task_id: str, state: str, reason: str) -> None:
        """End a task that never got to run (or whose run is gone): its state, then its
        `complete` event with the reason."""
        await self.transition(task_id, state, reason)
        await self.complete(task_id, False, reason)

    async def record(self, task_id: str, **fields: Any) -> bool:
        """Write the task's row as its owner: False if another engine took it over. A
        store still locked after a few waits, or a full disk, is remembered, not raised:
        the task still ends here, and `Engine.wait` says it could not be recorded."""
        if self.bus.lost(task_id):
            return False
        owner = self.engine_id if self.bus.owns(task_id) else None
        written, error = False, None
        for _ in range(RECORD_TRIES):
            try:
                written, error = await self.store.update_task(task_id, owner=owner, **fields), None
                break
            except StoreFull as exc:
                error = exc
                break
            except StoreError as exc:  # locked: another process holds the store that long
                error = exc
        if error is not None:
            if task_id not in self._unrecorded:  # once per task: the cause does not change
                log.error("task %s: %s", task_id, error)
            self._unrecorded[task_id] = str(error)
            return True
        if owner is not None and not written:
            self.bus.mark_lost(task_id)  # stops it here (Control.task_lost)
            return False
        return True
