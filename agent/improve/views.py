"""What the Self-Improvement panel, System Health and `schedules` show, read from the
store: the schedules with their next and last runs, the daemons that run them, the latest
report, the week's insights, the proposals, and each learning's measured effect when the
engine measures it (`engine.learning_stats()`, from the learnings work)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cron import next_after
from . import SCHEDULED, records

if TYPE_CHECKING:
    from ..config import Config
    from ..store import Store
    from .host import ImproveHost

WEEK_S = 7 * 86_400


async def schedules(config: Config, store: Store, now: float | None = None) -> list[dict[str, Any]]:
    """`schedules --json`: [{"job","cron","next_run","last_run","last_outcome"}]."""
    now = time.time() if now is None else now
    last = await records.last_runs(store)
    out = []
    for job in SCHEDULED:
        cron = getattr(config.schedules, job).strip()
        run = last.get(job)
        out.append({
            "job": job, "cron": cron,
            "next_run": next_after(cron, now) if cron else None,
            "last_run": run["started_at"] if run else None,
            "last_outcome": (run["outcome"] or "running") if run else None,
        })  # fmt: skip
    return out


async def daemons(store: Store) -> list[dict[str, Any]]:
    """The daemons on this store that are provably alive (their lock is held)."""
    return [e for e in await store.engines() if e["role"] == "daemon" and store.engine_alive(e)]


async def daemon_status(config: Config, store: Store) -> dict[str, Any]:
    """System Health's daemon card: alive, its heartbeat, the schedules, the last run."""
    alive = await daemons(store)
    runs = await records.runs(store, scheduled=True, limit=1)
    beat = max((e["heartbeat"] for e in alive), default=None)
    return {
        "alive": bool(alive),
        "count": len(alive),
        "pids": [e["pid"] for e in alive],
        "heartbeat_age_s": round(time.time() - beat, 1) if beat else None,
        "schedules": await schedules(config, store),
        "last_run": runs[0] if runs else None,
    }


async def learning_effects(engine: ImproveHost) -> list[dict[str, Any]] | None:
    """Each learning's measured effect, or None while the engine does not measure them."""
    stats = getattr(engine, "learning_stats", None)
    if not callable(stats):
        return None
    return list(await stats())


async def panel(engine: ImproveHost) -> dict[str, Any]:
    store = engine.store
    now = time.time()
    latest = await records.latest_report(store)
    if latest and latest.get("report") and not Path(latest["report"]).exists():
        latest["missing"] = True
    return {
        "schedules": await schedules(engine.config, store, now),
        "daemons": await daemons(store),
        "runs": await records.runs(store, limit=20),
        "latest": latest,
        "insights": await records.insights(store, since=now - WEEK_S, limit=100),
        "proposals": await records.proposals(store, limit=100),
        "learnings": await learning_effects(engine),
    }


async def decide(
    engine: ImproveHost, proposal_id: str, accept: bool, by: str = "operator"
) -> dict[str, Any]:
    """Accept or reject a pending proposal, once, audited."""
    row = await records.decide_proposal(engine.store, proposal_id, accept, by)
    await engine.audit(by, "proposal_accept" if accept else "proposal_reject", None,
                       {"proposal": row["id"], "title": row["title"]})
    return row
