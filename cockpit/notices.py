"""Toasts for scheduled runs: an open cockpit tails the store's run records, and a
scheduled run (a daemon's) that produced proposals or failed pops a toast, whichever panel
is shown. Runs that ended before the cockpit opened are old news: not told."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.app import App

    from agent.engine import Engine

log = logging.getLogger(__name__)
POLL_S = 2.0


async def watch_runs(app: App[Any], engine: Engine, poll_s: float = POLL_S) -> None:
    from agent.errors import CockpitError
    from agent.improve import records
    from agent.notify import message, worth_telling

    start = await records.max_run_id(engine.store)
    told: set[int] = set()
    while True:
        await asyncio.sleep(poll_s)
        try:
            rows = await records.runs(engine.store, scheduled=True, after_id=start, limit=100)
            for run in sorted(rows, key=lambda r: r["id"]):
                if run["id"] in told or run["finished_at"] is None:
                    continue
                told.add(run["id"])
                ended = {"job": run["job"], "outcome": run["outcome"], "error": run["error"],
                         "proposals": await records.proposals_of_run(engine.store, run["id"])}
                if not worth_telling(ended):
                    continue
                title, body = message(ended)
                failed = run["outcome"] == "failed"
                app.notify(body, title=title, severity="error" if failed else "warning",
                           timeout=20)
        except CockpitError as exc:  # a locked or full store: try again next time
            log.warning("watching scheduled runs: %s", exc)
