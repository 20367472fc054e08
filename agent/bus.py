"""The event bus: numbering, fan-out to in-process subscribers, batched persistence, and
tailing events written by other processes (a daemon's tasks seen from the cockpit).

Live deltas: while a model turn streams, its thinking/text pieces reach subscribers that
opted in (`subscribe(task_id, transient=True)`) as notifications
`{"task_id", "type": "delta", "ts", "kind": "thinking"|"text", "text", "reset", "final"}`:
no seq, never stored, at most DELTA_RATE_S apart per task (pieces are coalesced), and
redacted like events. So that a secret split across two pieces is never shown half-way,
the text after the last whitespace is held back until the block goes on or ends, and the
block's text so far is redacted as a whole; in the rare case that changes what was
already sent, the notification has `reset: true` and `text` is the whole block so far
(replace, don't append). `final: true` ends a block; the stored `thinking`/`text` event
with the complete text follows. `kind: "restart"` (text "", reset and final true) says a
retried model call starts the turn over: drop the live text shown for it so far.

Persistence: a batch leaves the buffer only once it is stored; a flush that fails (a
store locked past its timeout, a full disk) keeps it for the next try, with backoff. The
store has the last word on numbering (agent/store): if another process wrote events of
the same task meanwhile, the batch is stored under the next free numbers and the events
still buffered follow on. A task this engine runs (`own`) that another engine took over
is `lost`: its events are refused by the store and dropped here from then on, and the
`on_lost` callbacks run, so the engine stops the task without writing anything more.
Strings are made storable before anyone sees them (agent/store/text.py), so what
subscribers get is exactly what is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import StoreFull
from .events import make_event
from .store import Appended, Store
from .store.text import clean_value

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.02
FLUSH_BACKOFF_MAX_S = 1.0  # a failing flush retries at most this far apart
CLOSE_FLUSH_TRIES = 3  # at close, a flush refused as locked is tried this often in all
FLUSH_BATCH = 2000
TAIL_INTERVAL_S = 0.1
SUBSCRIBER_QUEUE = 100_000
DELTA_RATE_S = 0.25  # live deltas: at most ~4 notifications a second per task


_Entry = tuple[str | None, "asyncio.Queue[dict[str, Any] | None]", bool]


class Subscription:
    """An async iterator of a bus's events, registered from creation until it ends or is
    closed (`aclose`, or `async with`); the bus's close ends it."""

    def __init__(self, subscribers: list[_Entry], task_id: str | None, transient: bool) -> None:
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._entry: _Entry = (task_id, self._queue, transient)
        self._subscribers = subscribers
        subscribers.append(self._entry)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            event = await self._queue.get()
        except BaseException:  # cancelled while waiting: the reader is gone
            await self.aclose()
            raise
        if event is None:
            await self.aclose()
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        with contextlib.suppress(ValueError):  # already closed
            self._subscribers.remove(self._entry)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


@dataclass
class _Block:
    """The streamed text of one thinking/text block of one task, for live deltas."""

    kind: str
    text: str = ""  # everything received
    sent: str = ""  # the redacted text already notified
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class EventBus:
    def __init__(
        self, store: Store, redact: Callable[[Any], Any], owner: str | None = None
    ) -> None:
        self.store = store
        self._redact = redact
        self.owner = owner  # the engine id this bus writes for
        self._owned: set[str] = set()  # tasks this engine runs (see `own`)
        self._lost: set[str] = set()  # owned tasks another engine took over
        self.on_lost: list[Callable[[str], None]] = []
        self._flush_lock = asyncio.Lock()
        self._seq: dict[str, int] = {}
        self._buffer: list[dict[str, Any]] = []
        # (task filter, queue, wants transient deltas)
        self._subscribers: list[_Entry] = []
        self._blocks: dict[str, _Block] = {}  # task id -> the block streaming now
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
        await self._final_flush()
        for block in self._blocks.values():
            if block.timer is not None:
                block.timer.cancel()
        self._blocks.clear()
        for _, queue, _ in self._subscribers:
            queue.put_nowait(None)

    async def _final_flush(self) -> None:
        """Closing: store what is left, never raise. A full disk or a store locked for
        good loses the rest, and says so."""
        for attempt in range(CLOSE_FLUSH_TRIES):
            try:
                await self.flush()
                return
            except StoreFull as exc:
                error: Exception = exc
                break
            except Exception as exc:
                error = exc
                if attempt + 1 < CLOSE_FLUSH_TRIES:
                    await asyncio.sleep(FLUSH_INTERVAL_S * 5)
        log.error("%d event(s) could not be stored: %s", len(self._buffer), error)
        self._buffer.clear()

    async def adopt(self, task_id: str) -> None:
        """This process emits for `task_id` from now on (numbering continues from the store)."""
        self._local_tasks.add(task_id)
        if task_id not in self._seq:
            self._seq[task_id] = await self.store.max_seq(task_id)

    async def own(self, task_id: str) -> None:
        """Like adopt, for a task this engine runs: its events are stored only while the
        task's row still names this engine (not after another took it over)."""
        self._owned.add(task_id)
        await self.adopt(task_id)

    def owns(self, task_id: str) -> bool:
        return task_id in self._owned and task_id not in self._lost

    def lost(self, task_id: str) -> bool:
        return task_id in self._lost

    def emit(self, task_id: str, type_: str, **payload: Any) -> dict[str, Any]:
        self._local_tasks.add(task_id)
        seq = self._seq.get(task_id, 0) + 1
        event = make_event(task_id, seq, type_, **self._redact(clean_value(payload)))
        if task_id in self._lost:  # another engine has it now: nothing more from us
            return event
        self._seq[task_id] = seq
        self._buffer.append(event)
        self._publish(event)
        return event

    def _publish(self, event: dict[str, Any], transient: bool = False) -> None:
        for task_filter, queue, wants_transient in self._subscribers:
            if transient and not wants_transient:
                continue
            if task_filter is None or task_filter == event["task_id"]:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(event)  # a stuck subscriber loses events, never the engine

    # -- live deltas (transient) -------------------------------------------------------
    def wants_deltas(self, task_id: str) -> bool:
        return any(
            wants and (task_filter is None or task_filter == task_id)
            for task_filter, _, wants in self._subscribers
        )

    def delta(self, task_id: str, kind: str, text: str) -> None:
        """A piece of a streaming thinking/text block; notified coalesced, not at once."""
        if kind == "restart":
            self._restart(task_id)
            return
        block = self._blocks.get(task_id)
        if block is not None and block.kind != kind:  # thinking gave way to text, or back
            self.end_deltas(task_id)
            block = None
        if block is None:
            if not self.wants_deltas(task_id):
                return
            block = self._blocks[task_id] = _Block(kind)
        block.text += text
        if block.timer is None:
            loop = asyncio.get_running_loop()
            block.timer = loop.call_later(DELTA_RATE_S, self._notify, task_id, False)

    def _restart(self, task_id: str) -> None:
        block = self._blocks.pop(task_id, None)
        if block is not None and block.timer is not None:
            block.timer.cancel()
        if self.wants_deltas(task_id):
            note = {"task_id": task_id, "type": "delta", "ts": time.time(), "kind": "restart",
                    "text": "", "reset": True, "final": True}  # fmt: skip
            self._publish(note, transient=True)

    def end_deltas(self, task_id: str) -> None:
        """The turn (or block) is over: send what was held back, marked final."""
        if task_id in self._blocks:
            self._notify(task_id, True)

    def _notify(self, task_id: str, final: bool) -> None:
        block = self._blocks.get(task_id)
        if block is None:
            return
        if block.timer is not None:
            block.timer.cancel()
            block.timer = None
        if final:
            del self._blocks[task_id]
            ready = block.text
        else:  # hold back a word that may still grow (a key split across two pieces)
            cut = max(block.text.rfind(c) for c in " \n\t") + 1
            ready = block.text[:cut]
        shown = self._redact({"text": ready})["text"]
        reset = not shown.startswith(block.sent)
        piece = shown if reset else shown[len(block.sent) :]
        block.sent = shown
        if not piece and not reset and not final:
            return
        note = {
            "task_id": task_id,
            "type": "delta",
            "ts": time.time(),
            "kind": block.kind,
            "text": piece,
            "reset": reset,
            "final": final,
        }
        self._publish(note, transient=True)

    def subscribe(self, task_id: str | None = None, transient: bool = False) -> Subscription:
        """Events as they are emitted (and those other processes write, tailed). With
        `transient`, also the live `delta` notifications described above. Registered at
        once, not at the first `anext`: a caller that reads the stored events next and
        then iterates misses nothing emitted in between."""
        return Subscription(self._subscribers, task_id, transient)

    async def flush(self) -> None:
        """Store everything buffered so far. Raises StoreError if the store refused (the
        events stay buffered for the next try)."""
        async with self._flush_lock:  # one at a time: batches are stored in order
            while self._buffer:
                batch = self._buffer[:FLUSH_BATCH]
                owned = {e["task_id"] for e in batch} & self._owned
                writing = asyncio.ensure_future(
                    self.store.append_events(batch, owner=self.owner, owned=owned)
                )
                try:
                    done = await asyncio.shield(writing)
                except asyncio.CancelledError:
                    # The write goes on in the store's thread: learn how it ended, or the
                    # batch would be lost (ended well) or stored twice (kept after all).
                    await asyncio.wait([writing])
                    if not writing.cancelled() and writing.exception() is None:
                        self._stored(batch, writing.result())
                    raise
                self._stored(batch, done)

    def _stored(self, batch: list[dict[str, Any]], done: Appended) -> None:
        del self._buffer[: len(batch)]
        if done.renumbered:
            for index, seq in done.renumbered.items():
                batch[index]["seq"] = seq
            moved = {batch[i]["task_id"] for i in done.renumbered}
            last = {e["task_id"]: e["seq"] for e in batch if e["task_id"] in moved}
            for event in self._buffer:  # emitted after this batch: they follow on
                if event["task_id"] in last:
                    last[event["task_id"]] += 1
                    event["seq"] = last[event["task_id"]]
            self._seq.update(last)
        for task_id in done.lost:
            self.mark_lost(task_id)

    def mark_lost(self, task_id: str) -> None:
        """Another engine runs `task_id` now: emit nothing more for it (what is buffered
        the store refuses), and tell the `on_lost` callbacks (once)."""
        if task_id in self._lost:
            return
        self._lost.add(task_id)
        for callback in list(self.on_lost):
            callback(task_id)

    async def _flush_loop(self) -> None:
        delay, failing = FLUSH_INTERVAL_S, ""
        while True:
            await asyncio.sleep(delay)
            try:
                await self.flush()
            except Exception as exc:  # keep the engine alive; the batch waits for the next try
                if str(exc) != failing:  # once per cause, not every 20 ms
                    log.error("event flush failed (%d event(s) kept, retrying): %s",
                              len(self._buffer), exc)  # fmt: skip
                failing = str(exc)
                delay = min(delay * 2, FLUSH_BACKOFF_MAX_S)
                continue
            if failing:
                log.warning("event flush works again: every kept event is stored")
            delay, failing = FLUSH_INTERVAL_S, ""

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
