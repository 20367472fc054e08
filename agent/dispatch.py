"""The queue: which task starts when (concurrency slots, the daily budget, the emergency
stop), and what a worker leaves behind when it ends, however it ends."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from . import events as ev

if TYPE_CHECKING:
    from .engine import Engine

BUDGET_HOLD_S = 5.0  # how often tasks held by the daily budget re-check it


async def dispatch_loop(engine: Engine) -> None:
    while True:
        await engine._wake.wait()
        engine._wake.clear()
        warned: set[str] = set()
        while engine._queue and not engine.stopped:
            if await engine.safety.over_daily_budget():
                for task_id in engine._queue:
                    if task_id not in warned:  # once per task, not once per re-check
                        warned.add(task_id)
                        engine.bus.emit(task_id, ev.WARNING, message="held: daily budget reached")
                # Re-check, don't wait for a wake-up: held tasks must start once the
                # day's spend resets or the cap is raised (they stayed queued forever).
                await asyncio.sleep(BUDGET_HOLD_S)
                continue
            await engine._slots.acquire()
            if engine.stopped or not engine._queue:
                engine._slots.release()
                break
            task_id = engine._queue.pop(0)
            worker = asyncio.create_task(_work(engine, task_id), name=task_id)
            worker.add_done_callback(lambda _w, task_id=task_id: _worker_done(engine, task_id))
            engine._workers[task_id] = worker


async def _work(engine: Engine, task_id: str) -> None:
    from .worker import execute  # the loop and its tools load with the first task

    await execute(engine, task_id)


def _worker_done(engine: Engine, task_id: str) -> None:
    # A callback, not a `finally`: a worker cancelled before its first step never runs
    # a line of its coroutine, and its slot and end state must not be lost with it.
    engine._slots.release()
    engine._workers.pop(task_id, None)
    engine._runs.pop(task_id, None)
    engine.paused.pop(task_id, None)
    engine.finishing.discard(task_id)
    state, reason = engine.stop_reasons.pop(task_id, (ev.CANCELLED, "cancelled"))
    if engine._states.get(task_id, ev.FAILED) not in ev.END_STATES:
        ending = asyncio.ensure_future(_end_unstarted(engine, task_id, state, reason))
        engine._orphans.add(ending)
        ending.add_done_callback(engine._orphans.discard)


async def _end_unstarted(engine: Engine, task_id: str, state: str, reason: str) -> None:
    await engine.transition(task_id, state, reason)
    await engine._complete(task_id, False, reason)
