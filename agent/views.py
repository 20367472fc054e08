"""Read-only views for the panels and the API: capabilities, tool use, metrics, health,
budget, spend. They read the store (and the policy); they change nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import timing
from .tools import spec

if TYPE_CHECKING:
    from .bus import EventBus
    from .config import Config
    from .models.base import Model
    from .safety import Safety
    from .store import Store
    from .tools import Tool


class Views:
    def __init__(
        self,
        config: Config,
        store: Store,
        bus: EventBus,
        safety: Safety,
        tools: dict[str, Tool],
        model_factory: Callable[[str], Model],
        stopped: Callable[[], bool],
    ) -> None:
        self.config, self.store, self.bus, self.safety = config, store, bus, safety
        self.tools, self._model_factory, self._stopped = tools, model_factory, stopped

    def capabilities(self) -> list[dict[str, Any]]:
        out = []
        for tool in self.tools.values():
            decision, rule = self.safety.decide(tool.name, {})
            out.append({**spec(tool), "kind": tool.kind, "policy": decision, "rule": rule,
                        "gates": self.safety.gates(tool.name)})  # fmt: skip
        return out

    async def recent_tool_use(self, since_days: int = 30) -> dict[str, dict[str, Any]]:
        await self.bus.flush()
        rows = await self.store.fetch(
            "SELECT json_extract(data, '$.action') AS tool, COUNT(*) AS n, MAX(ts) AS last_ts "
            "FROM events WHERE type = 'step' AND ts >= ? GROUP BY tool",
            [time.time() - since_days * 86400],
        )
        return {r["tool"]: {"count": r["n"], "last_ts": r["last_ts"]} for r in rows if r["tool"]}

    async def metrics(self, days: int = 14) -> dict[str, Any]:
        today = dt.date.fromtimestamp(time.time())  # the engine's one clock, as the rows' ts
        start = today - dt.timedelta(days=days - 1)
        since = dt.datetime.combine(start, dt.time()).timestamp()
        rows = await self.store.fetch(
            "SELECT id, date(created_at, 'unixepoch', 'localtime') AS day, state, started_at, "
            "finished_at, cost_usd FROM tasks WHERE created_at >= ? AND kind = 'task'",
            [since],
        )
        # Working and waiting-for-the-operator time from each run's own events: a rollback
        # later moves finished_at, but neither figure (agent/timing.py).
        spans = await timing.timings(self.store, [r["id"] for r in rows])
        for r in rows:
            span = spans.get(r["id"]) or timing.NOT_STARTED
            r["secs"], r["working"], r["waiting"] = span.total_s, span.working_s, span.waiting_s
        # Distinct learnings (merged lessons, agent/learnings/): what `learnings` lists.
        learn = await self.store.fetch(
            "SELECT date(created_at, 'unixepoch', 'localtime') AS day, COUNT(*) AS n "
            "FROM lessons GROUP BY day"
        )
        learn_before = await self.store.fetch(
            "SELECT COUNT(*) AS n FROM lessons WHERE created_at < ?", [since]
        )
        learn_counts = await self.store.lesson_counts()
        spent = await self.store.fetch(
            "SELECT date(ts, 'unixepoch', 'localtime') AS day, SUM(cost_usd) AS c FROM usage "
            "WHERE ts >= ? GROUP BY day",
            [since],
        )
        labels = [(start + dt.timedelta(days=i)).isoformat() for i in range(days)]
        per_day: dict[str, list[dict[str, Any]]] = {d: [] for d in labels}
        for r in rows:
            per_day.setdefault(r["day"], []).append(r)
        cost = {r["day"]: r["c"] or 0.0 for r in spent}
        learned = {r["day"]: r["n"] for r in learn}
        total_learn = learn_before[0]["n"] if learn_before else 0
        out: dict[str, list[Any]] = {
            k: []
            for k in (
                "tasks_per_day",
                "success_rate",
                "avg_duration_s",
                "avg_working_s",
                "avg_waiting_s",
                "cost_per_day",
                "learnings_total",
            )
        }
        for day in labels:
            tasks = per_day[day]
            ended = [t for t in tasks if t["state"] in ev.END_STATES]
            ok = [t for t in ended if t["state"] == ev.SUCCEEDED]
            out["tasks_per_day"].append(len(tasks))
            out["success_rate"].append(round(len(ok) / len(ended), 3) if ended else None)
            ran = [t for t in ended if t["secs"] > 0]
            for key, field in (("avg_duration_s", "secs"), ("avg_working_s", "working"),
                               ("avg_waiting_s", "waiting")):  # fmt: skip
                out[key].append(round(sum(t[field] for t in ran) / len(ran), 1) if ran else None)
            out["cost_per_day"].append(round(cost.get(day, 0.0), 4))
            total_learn += learned.get(day, 0)
            out["learnings_total"].append(total_learn)
        counts = Counter(r["state"] for r in rows)
        by_state = {state: counts[state] for state in ev.END_STATES}
        ended = sum(by_state.values())
        totals = {
            "tasks": len(rows),
            **by_state,
            "live": len(rows) - ended,
            "success_rate": round(by_state[ev.SUCCEEDED] / ended, 3) if ended else None,
            "cost_usd": round(sum(cost.values()), 4),
            "learnings": learn_counts["lessons"],
            "learnings_active": learn_counts["active"],
            "learnings_retired": learn_counts["retired"],
            "learnings_merged": learn_counts["merged"],
            "working_s": round(sum(r["working"] for r in rows if r["state"] in ev.END_STATES), 1),
            "waiting_s": round(sum(r["waiting"] for r in rows if r["state"] in ev.END_STATES), 1),
        }
        return {"days": labels, **out, "totals": totals}

    async def health(self, ping: bool = False) -> dict[str, Any]:
        from .sandbox import sandbox_status

        store_path = self.store.path
        files = {"db": store_path, "wal": store_path.with_name(store_path.name + "-wal")}
        sizes = {k: p.stat().st_size if p.exists() else 0 for k, p in files.items()}
        size = sum(sizes.values())
        engines = await self.store.engines()
        now = time.time()
        daemons = [e for e in engines if e["role"] == "daemon"]
        beat = min((now - e["heartbeat"] for e in daemons), default=None)
        model: dict[str, Any] = {
            "name": self.config.engine.model,
            "reachable": None,
            "latency_ms": None,
        }
        if ping:
            model.update(await self.ping_model())
        return {
            "model": model,
            "key_present": await asyncio.to_thread(_key_present),
            "store": {
                "path": str(store_path),
                "size_bytes": size,
                "db_bytes": sizes["db"],
                "wal_bytes": sizes["wal"],
                "integrity": await self.store.integrity(),
                "counts": await self._store_counts(),
            },
            "recent_failures": await self.store.fetch(
                "SELECT id, title, state, error, finished_at FROM tasks WHERE state IN (?, ?) "
                "ORDER BY finished_at DESC LIMIT 5",
                [ev.FAILED, ev.INTERRUPTED],
            ),
            # The first probe runs bwrap (cached after): never on the event loop.
            "sandbox": await asyncio.to_thread(sandbox_status),
            "daemon": {
                "alive": any(self.store.engine_alive(e) for e in daemons),  # its lock, not its beat
                "heartbeat_age_s": round(beat, 1) if beat is not None else None,
            },
            "disk_free_bytes": shutil.disk_usage(self.config.data_dir).free,
            "export": await self.export_status(),
            "engines": engines,
            "stopped": self._stopped(),
        }

    async def export_status(self) -> dict[str, Any]:
        """The BigQuery export: lag, what waits, the last error (System Health)."""
        from .export import export_status  # lazy: off by default

        return await export_status(self.store, self.config.bigquery)

    async def _store_counts(self) -> dict[str, int]:
        """What the store holds, cheaply: events are append-only (never deleted), so their
        highest id is their count without scanning a table that may hold millions."""
        row = (await self.store.fetch(
            "SELECT (SELECT COUNT(*) FROM tasks) AS tasks, "
            "(SELECT COALESCE(MAX(id), 0) FROM events) AS events, "
            "(SELECT COUNT(*) FROM approvals WHERE state = 'pending') AS pending_approvals, "
            "(SELECT COUNT(*) FROM lessons) AS learnings, "
            "(SELECT COUNT(*) FROM audit) AS audit_records"
        ))[0]
        return {k: int(v or 0) for k, v in row.items()}

    async def timings(self, task_ids: list[str]) -> dict[str, timing.Timing]:
        """How long each task worked and waited for the operator, from its own events
        (History, the header): a later rollback changes neither figure."""
        return await timing.timings(self.store, task_ids)

    async def spend_by_task(self, since: float, limit: int = 5) -> list[dict[str, Any]]:
        """The tasks that spent most since `since` (Safety Controls: top spenders today)."""
        return await self.store.fetch(
            "SELECT u.task_id, COALESCE(t.title, '') AS title, t.state, "
            "SUM(u.cost_usd) AS cost_usd FROM usage AS u LEFT JOIN tasks AS t ON t.id = u.task_id WHERE u.ts >= ? "
            "GROUP BY u.task_id ORDER BY cost_usd DESC LIMIT ?",
            [since, limit],
        )

    async def ping_model(self) -> dict[str, Any]:
        """One cheap authenticated request to the model API: reachable, latency, checked_at.
        A model with no network behind it (scripted) is reachable, with no latency to show."""
        checked = {"checked_at": time.time()}
        try:
            # The factory may import the SDK (a few hundred ms): in a thread, not on the loop.
            model = await asyncio.to_thread(self._model_factory, self.config.engine.model)
            ping = getattr(model, "ping", None)
            try:
                if ping is None:
                    return {"reachable": True, "latency_ms": None, "local": True, **checked}
                seconds = await asyncio.wait_for(ping(), 15)
            finally:
                await model.aclose()
            return {"reachable": True, "latency_ms": round(seconds * 1000), **checked}
        except Exception as exc:
            message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            return {"reachable": False, "latency_ms": None, "error": message, **checked}

    async def budget(self) -> dict[str, Any]:
        return {
            "spent_today": round(await self.safety.spent_today(), 4),
            "daily_cap": self.config.engine.daily_budget_usd,
            "task_cap": self.config.engine.max_cost_usd,
        }


def _key_present() -> bool:
    from .secrets import anthropic_api_key

    try:
        return bool(anthropic_api_key())
    except Exception:
        return False
