"""The scheduler: runs the daily, weekly and monthly jobs at their cron times (config
`[schedules]`, local time; "" disables a job), inside a daemon's engine.

- One run per due time, even with several daemons on one store: each run is claimed in
  SQLite by its (job, due time) (agent/improve/records.claim_run); one claim wins.
- No overlapping runs of a job: a due time that comes while the job still runs (here or in
  another live daemon) is recorded as skipped, not queued.
- A due time missed while no daemon was up is caught up once at start: only the latest one,
  never a burst of every missed one, and only since a scheduler first ran on this store (a
  fresh install has missed nothing).
- A due time that comes during an emergency stop is held until the re-arm, then run once.
- Every run is recorded (start, end, outcome, what it produced); `on_end` hears of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cron import latest_due, next_after
from .improve import SCHEDULED, records
from .improve.jobs import STOPPED, close_run, run_job

if TYPE_CHECKING:
    from .improve.host import ImproveHost

log = logging.getLogger(__name__)
TICK_S = 1.0
SINCE_KEY = "schedule_since"  # when a scheduler first ran on this store
OnEnd = Callable[[dict[str, Any]], Awaitable[None]]


class Scheduler:
    def __init__(self, engine: ImproveHost, workspace: Path, on_end: OnEnd | None = None) -> None:
        self.engine = engine
        self.workspace = workspace
        self.on_end = on_end
        self.tasks: set[asyncio.Task[None]] = set()  # runs (and claims) in progress here
        self._next: dict[str, float] = {}

    def crons(self) -> dict[str, str]:
        s = self.engine.config.schedules
        return {job: getattr(s, job).strip() for job in SCHEDULED if getattr(s, job).strip()}

    async def run(self) -> None:
        """Until cancelled (the daemon shutting down): runs in progress are cancelled and
        recorded as interrupted."""
        try:
            await records.close_dead_runs(self.engine.store, self.engine.engine_id)
            await self.catch_up()
            while True:
                self.tick()
                await asyncio.sleep(TICK_S)
        finally:
            await self.cancel_all()

    async def catch_up(self) -> None:
        store = self.engine.store
        now = time.time()
        since = await store.get_setting(SINCE_KEY)
        if since is None:
            await store.set_setting(SINCE_KEY, now)
            since = now
        for job, cron in self.crons().items():
            self._next[job] = next_after(cron, now)
            due = latest_due(cron, now)
            if due <= float(since):
                continue  # no scheduler was meant to run it then
            done = await store.fetch(
                "SELECT 1 FROM improve_runs WHERE job = ? AND scheduled_for >= ? LIMIT 1",
                [job, due],
            )
            if not done:
                log.info("catching up %s due at %s (no daemon ran it)", job, _clock(due))
                self._launch(job, due, "catch_up")

    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if self.engine.stopped:
            # Held: a due time now is run once after the re-arm; runs in progress stop.
            for task in self.tasks:
                task.cancel()
            return
        for job, cron in self.crons().items():
            nxt = self._next.get(job)
            if nxt is None:
                self._next[job] = next_after(cron, now)
                continue
            if now < nxt:
                continue
            # The latest due time only: after a suspend or a stop, one run, not a burst.
            due = latest_due(cron, now)
            self._next[job] = next_after(cron, now)
            self._launch(job, due, "schedule")

    def _launch(self, job: str, due: float, trigger: str) -> None:
        task = asyncio.create_task(self._run(job, due, trigger), name=f"schedule-{job}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, job: str, due: float, trigger: str) -> None:
        engine = self.engine
        run_id, why = await records.claim_run(
            engine.store, job, trigger, engine.engine_id, str(self.workspace), due
        )
        if run_id is None:
            if "still going on" in why:
                # Recorded once (whoever notices first), so the skip is told, not silent.
                if await records.record_skip(engine.store, job, due, engine.engine_id, why):
                    log.warning("%s due at %s skipped: %s", job, _clock(due), why)
                    await self._tell({"job": job, "scheduled_for": due, "outcome":
                                      records.SKIPPED, "error": why, "proposals": []})
            else:
                log.info("%s due at %s: %s", job, _clock(due), why)
            return
        log.info("%s run %s started (%s, due %s)", job, run_id, trigger, _clock(due))
        try:
            result = await run_job(engine, job, self.workspace, trigger=trigger,
                                   scheduled_for=due, run_id=run_id)
        except asyncio.CancelledError:
            # This loop owns the claim: whatever point the cancel reached, the run is closed.
            await close_run(engine.store, run_id, records.INTERRUPTED, STOPPED)
            log.warning("%s run %s interrupted", job, run_id)
            raise
        except Exception as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.error("%s run %s failed: %s", job, run_id, message)
            await self._tell({"job": job, "run_id": run_id, "scheduled_for": due,
                              "outcome": records.FAILED, "error": message, "proposals": []})
            return
        log.info("%s run %s succeeded: %d insight(s), %d proposal(s), report %s", job, run_id,
                 len(result["insights"]), len(result["proposals"]), result["report"])
        await self._tell({"job": job, "run_id": run_id, "scheduled_for": due,
                          "outcome": records.SUCCEEDED, "error": "",
                          "proposals": result["proposals"], "report": result["report"],
                          "summary": result["summary"]})

    async def _tell(self, ended: dict[str, Any]) -> None:
        if self.on_end is None:
            return
        try:
            await self.on_end(ended)
        except Exception:  # a notification's failure never fails the run
            log.exception("telling about a %s run failed", ended.get("job"))

    async def cancel_all(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
