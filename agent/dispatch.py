"""The queue: which task starts when (concurrency slots, the daily budget, the emergency
stop), the asyncio task of each one running, and what a worker leaves behind when it ends,
however it ends."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from . import events as ev

if TYPE_CHECKING:
    from .bus import EventBus
    from .safety import Safety
    from .taskbook import TaskBook
    from .worker import Worker

BUDGET_HOLD_S = 5.0  # how often tasks held by the daily budget re-check it


class Dispatcher:
    def __init__(
        self, worker: Worker, book: TaskBook, bus: EventBus, safety: Safety, max_concurrent: int
    ) -> None:
        self.worker, self.book, self.bus, self.safety = worker, book, bus, safety
        self.held = False  # the emergency stop holds the queue: nothing new starts
        self._queue: list[str] = []
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._ending: set[asyncio.Future[None]] = set()  # end-state writes of unstarted tasks

    # -- the queue -------------------------------------------------------------------------------
    def enqueue(self, task_id: str) -> None:
        self._queue.append(task_id)
        self._wake.set()

    def unqueue(self, task_id: str) -> bool:
        """Take a task that has not started off the queue; False if it was not on it."""
        if task_id not in self._queue:
            return False
        self._queue.remove(task_id)
        return True

    def queued(self) -> list[str]:
        return list(self._queue)

    def hold(self) -> None:
        self.held = True

    def release(self) -> None:
        self.held = False
        self._wake.set()

    # -- the workers -------------------------------------------------------------------------------
    def running(self) -> list[str]:
        """Tasks with a worker: running, or still preparing their worktree."""
        return list(self._workers)

    def is_running(self, task_id: str) -> bool:
        return task_id in self._workers

    def cancel(self, task_id: str, *, even_finishing: bool = False) -> None:
        """Cancel the task's worker, unless it is finishing (its end, or its apply, would
        be cut in half) and `even_finishing` is not said."""
        worker = self._workers.get(task_id)
        if worker is not None and (even_finishing or not self.worker.finishing(task_id)):
            worker.cancel()

    async def join(self, task_id: str) -> None:
        """Wait until the task's worker, if it has one, is done. The worker being cancelled
        is expected (a cancel or stop); our own caller being cancelled (a timeout, Ctrl-C)
        propagates, or the caller would be held until the task ends."""
        worker = self._workers.get(task_id)
        if worker is None:
            return
        try:
            await asyncio.shield(worker)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                raise

    async def drain(self) -> None:
        """Wait for every worker and every end-state write still under way."""
        for worker in list(self._workers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
        await asyncio.gather(*self._ending, return_exceptions=True)

    # -- dispatching -------------------------------------------------------------------------------
    async def loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            warned: set[str] = set()
            while self._queue and not self.held:
                if await self.safety.over_daily_budget():
                    for task_id in self._queue:
                        if task_id not in warned:  # once per task, not once per re-check
                            warned.add(task_id)
                            self.bus.emit(task_id, ev.WARNING, message="held: daily budget reached")
                    # Re-check, don't wait for a wake-up: held tasks must start once the
                    # day's spend resets or the cap is raised (they stayed queued forever).
                    await asyncio.sleep(BUDGET_HOLD_S)
                    continue
                await self._slots.acquire()
                if self.held or not self._queue:
                    self._slots.release()
                    break
                task_id = self._queue.pop(0)
                worker = asyncio.create_task(self.worker.execute(task_id), name=task_id)
                worker.add_done_callback(lambda _w, task_id=task_id: self._worker_done(task_id))
                self._workers[task_id] = worker

    def _worker_done(self, task_id: str) -> None:
        # A callback, not a `finally`: a worker cancelled before its first step never runs
        # a line of its coroutine, and its slot and end state must not be lost with it.
        self._slots.release()
        self._workers.pop(task_id, None)
        state, reason = self.worker.forget(task_id)
        if self.book.live(task_id):
            ending = asyncio.ensure_future(self.book.end(task_id, state, reason))
            self._ending.add(ending)
            ending.add_done_callback(self._ending.discard)
