"""The event bus: numbering, fan-out to in-process subscribers, batched persistence, and
tailing events written by other processes (a daemon's tasks seen from the cockpit)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from .events import make_event
from .store import Store

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.02
FLUSH_BATCH = 2000
TAIL_INTERVAL_S = 0.1
SUBSCRIBER_QUEUE = 100_000


class EventBus:
    def __init__(self, store: Store, redact: Callable[[Any], Any]) -> None:
        self.store = store
        self._redact = redact
        self._seq: dict[str, int] = {}
        self._buffer: list[dict[str, Any]] = []
        self._subscribers: list[tuple[str | None, asyncio.Queue[dict[str, Any] | None]]] = []
        self._local_tasks: set[str] = set()  # tasks whose events we emit ourselves
        self._tail_cursor = 0
        self._data_version = -1
        self._flushed = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tail_cursor = await self.store.last_event_id()
        self._loops = [
            asyncio.create_task(self._flush_loop(), name="bus-flush"),
            asyncio.create_task(self._tail_loop(), name="bus-tail"),
        ]

    async def close(self) -> None:
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
        for _, queue in self._subscribers:
            queue.put_nowait(None)

    async def adopt(self, task_id: str) -> None:
        """This process emits for `task_id` from now on (numbering continues from the store)."""
        self._local_tasks.add(task_id)
        if task_id not in self._seq:
            self._seq[task_id] = await self.store.max_seq(task_id)

    def emit(self, task_id: str, type_: str, **payload: Any) -> dict[str, Any]:
        self._local_tasks.add(task_id)
        seq = self._seq.get(task_id, 0) + 1
        self._seq[task_id] = seq
        event = make_event(task_id, seq, type_, **self._redact(payload))
        self._buffer.append(event)
        self._publish(event)
        return event

    def _publish(self, event: dict[str, Any]) -> None:
        for task_filter, queue in self._subscribers:
            if task_filter is None or task_filter == event["task_id"]:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(event)  # a stuck subscriber loses events, never the engine

    async def subscribe(self, task_id: str | None = None) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        entry = (task_id, queue)
        self._subscribers.append(entry)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._subscribers.remove(entry)

    async def flush(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer[:FLUSH_BATCH], self._buffer[FLUSH_BATCH:]
            await self.store.append_events(batch)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            try:
                await self.flush()
            except Exception as exc:  # keep the engine alive; the next flush retries
                log.error("event flush failed: %s", exc)

    async def _tail_loop(self) -> None:
        while True:
            await asyncio.sleep(TAIL_INTERVAL_S)
            if not self._subscribers:
                continue
            try:
                # data_version changes only when another connection commits: cheap to ask.
                rows = await self.store.fetch("PRAGMA data_version")
                version = next(iter(rows[0].values())) if rows else 0
                if version == self._data_version:
                    continue
                self._data_version = version
                while True:
                    self._tail_cursor, events = await self.store.tail_events(self._tail_cursor)
                    for event in events:
                        if event["task_id"] not in self._local_tasks:
                            self._publish(event)
                    if not events:
                        break
            except Exception as exc:
                log.error("event tail failed: %s", exc)
