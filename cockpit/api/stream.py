"""A task's events as Server-Sent Events: `id: <seq>` and `data: <the event JSON>`.

The store is the source: what a client receives is exactly what is stored, in seq order,
each event once, whoever runs the task (this process or another). One `Feed` per task
reads the store for all of its subscribers, woken by the engine's bus (its own events as
they are emitted, other processes' as they are tailed), so two hundred subscribers cost
one reader. A subscriber behind the feed's window (a replay from the start, or after an
old `Last-Event-ID`) pages through the store on its own until it catches up.

The stream ends after the task's final event (`complete`, with the task's row in an end
state); one opened on an ended task replays and ends. A comment line every KEEPALIVE_S
keeps proxies and clients from timing out a quiet task.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from agent import events as ev

if TYPE_CHECKING:
    from agent.engine import Engine

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
WINDOW = 5_000  # events a feed keeps in memory for its subscribers
PAGE = 1_000  # events a lagging subscriber reads from the store at a time
RECHECK_S = 1.0  # a feed re-reads the store and the task's state at least this often
COALESCE_S = 0.02  # a feed reads at most this often under a burst
ENDED_GRACE_S = 3.0  # an ended task's `complete` that has not reached the store yet


class Feed:
    def __init__(self, engine: Engine, task_id: str) -> None:
        self.engine = engine
        self.task_id = task_id
        self.base = 0  # every event with seq > base, up to `last`, is in `frames`
        self.last = 0
        self.frames: list[bytes] = []  # encoded once for every subscriber
        self.seqs: list[int] = []
        self.done = False
        self.users = 0
        self.changed = asyncio.Event()  # replaced by a fresh one after each change
        self._final_seen = False
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Listen first, then read where the store is: nothing emitted in between is missed.
        self._listener = asyncio.create_task(self._listen(), name=f"feed-listen-{self.task_id}")
        self.base = self.last = await self.engine.store.max_seq(self.task_id)
        self._final_seen = bool(
            await self.engine.store.fetch(
                "SELECT 1 FROM events WHERE task_id = ? AND type = ? LIMIT 1",
                [self.task_id, ev.COMPLETE],
            )
        )
        self._wake.set()  # read at once
        self._runner = asyncio.create_task(self._run(), name=f"feed-{self.task_id}")

    async def stop(self) -> None:
        for task in (self._runner, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.done = True
        self.changed.set()

    async def _listen(self) -> None:
        async for _event in self.engine.subscribe(self.task_id):
            self._wake.set()
        self._wake.set()  # the bus closed: the engine is going away

    async def _run(self) -> None:
        while not self.done:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RECHECK_S)
            self._wake.clear()
            try:
                self._add(await self.engine.events(self.task_id, self.last))
                task = await self.engine.get(self.task_id)
                if task is None or task["state"] in ev.END_STATES and (
                    self._final_seen or _ended_long_ago(task)
                ):
                    # Anything stored right after `complete` (its own flush) comes too.
                    self._add(await self.engine.events(self.task_id, self.last))
                    self.done = True
            except Exception as exc:  # a store locked or full for a moment: try again
                log.warning("stream of task %s: events not read yet: %s", self.task_id, exc)
                self._pulse()  # its subscribers still send their keep-alives
                await asyncio.sleep(RECHECK_S)
                continue
            self._pulse()
            await asyncio.sleep(COALESCE_S)

    def _pulse(self) -> None:
        """Wake every subscriber: after each read, so at least every RECHECK_S."""
        self.changed.set()
        self.changed = asyncio.Event()

    def _add(self, fresh: list[dict[str, Any]]) -> None:
        for event in fresh:
            if event["seq"] <= self.last:
                continue
            self.frames.append(frame(event))
            self.seqs.append(event["seq"])
            self.last = event["seq"]
            if event["type"] == ev.COMPLETE:
                self._final_seen = True
        if len(self.frames) > WINDOW:
            cut = len(self.frames) - WINDOW
            self.base = self.seqs[cut - 1]
            del self.frames[:cut], self.seqs[:cut]

    def after(self, cursor: int) -> tuple[bytes, int] | None:
        """The frames after `cursor` held here and the seq they reach; None when the
        window no longer reaches back to it (read the store)."""
        if cursor < self.base:
            return None
        start = bisect.bisect_right(self.seqs, cursor)
        if start == len(self.seqs):
            return b"", cursor
        return b"".join(self.frames[start:]), self.seqs[-1]


def _ended_long_ago(task: dict[str, Any]) -> bool:
    finished = task.get("finished_at") or task.get("updated_at") or 0
    return time.time() - float(finished) > ENDED_GRACE_S


class Feeds:
    """The feeds of the tasks someone is streaming, shared by their subscribers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._feeds: dict[str, Feed] = {}
        self._lock = asyncio.Lock()
        self.closing = asyncio.Event()  # the server is shutting down: end every stream

    async def join(self, task_id: str) -> Feed:
        async with self._lock:
            feed = self._feeds.get(task_id)
            if feed is None:
                feed = self._feeds[task_id] = Feed(self.engine, task_id)
                await feed.start()
            feed.users += 1
            return feed

    async def leave(self, feed: Feed) -> None:
        async with self._lock:
            feed.users -= 1
            if feed.users == 0:
                self._feeds.pop(feed.task_id, None)
                await feed.stop()

    async def close(self) -> None:
        self.closing.set()
        async with self._lock:
            feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            await feed.stop()


def frame(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, ensure_ascii=False, default=str, separators=(",", ":"))
    return f"id: {event['seq']}\ndata: {data}\n\n".encode()


async def sse(feeds: Feeds, task_id: str, cursor: int) -> AsyncIterator[bytes]:
    """The SSE body for one subscriber, from after `cursor` to the task's final event."""
    feed = await feeds.join(task_id)
    try:
        yield b"retry: 3000\n\n"
        sent = time.monotonic()  # when it last sent anything: a keep-alive is due 15 s on
        while True:
            # Closing (the server stops) ends the stream only once what the feed holds is
            # sent: a client never misses an event that was there before the stop.
            held = feed.after(cursor)
            if held is None:  # behind the window: page through the store
                page = await feeds.engine.store.task_events(task_id, cursor, limit=PAGE)
                if page:
                    yield b"".join(frame(e) for e in page)
                    sent = time.monotonic()
                cursor = page[-1]["seq"] if page else feed.base
                continue
            chunk, reached = held
            if chunk:
                yield chunk
                cursor, sent = reached, time.monotonic()
                continue
            if feeds.closing.is_set():  # and what was stored since the feed last read
                page = await feeds.engine.store.task_events(task_id, cursor, limit=PAGE)
                if not page:
                    return
                yield b"".join(frame(e) for e in page)
                cursor = page[-1]["seq"]
                continue
            if feed.done:
                return
            if time.monotonic() - sent >= KEEPALIVE_S:
                yield b": keep-alive\n\n"
                sent = time.monotonic()
                continue
            # One plain wait per subscriber (two hundred of them wake at each change): the
            # feed pulses at least every RECHECK_S and when it stops, which is also how
            # closing reaches us. `changed` is read as the wait starts, with no await
            # between the checks above and it: a change after them sets this very event.
            await feed.changed.wait()
    finally:
        await feeds.leave(feed)
