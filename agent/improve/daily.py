"""The daily analysis: the last day against the seven before it, computed, never guessed.

- error spikes in the workspace's logs: an error signature that is new, or `spike_factor`
  times its usual daily rate (and at least `spike_min` times); steady errors are not spikes;
- failure clusters: the day's failed tool calls grouped by tool and error, and its failed
  tasks grouped by error;
- slow tools: how long each tool's calls ran (waiting for an approval not counted);
- cost and its trend, and how the day's tasks ended.

The store part reads only the last day's events: ids grow with time, so the first event of
the window is found by a binary search on ids instead of a scan of the whole history.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import events as ev
from . import insight as ins
from .logfiles import find_logs, scan_logs
from .logscan import DAY_S, normalise

if TYPE_CHECKING:
    from .host import ImproveHost

BASELINE_DAYS = 7
ID_MARGIN_S = 3600  # events are stored a moment after their `ts`: search this much earlier
MIN_CLUSTER = 2  # failures with one cause this often are a cluster
SHOW = 10  # insights of one kind, at most (the strongest)


async def analyse(engine: ImproveHost, workspace: Path, now: float | None = None) -> dict[str, Any]:
    """{"insights": [...], "stats": {...}} for the day before `now`."""
    now = time.time() if now is None else now
    cfg = engine.config.improve
    files = await asyncio.to_thread(
        find_logs, workspace, list(cfg.logs), [engine.config.data_dir]
    )
    logs, store = await asyncio.gather(
        scan_logs(files, now, BASELINE_DAYS), _store_day(engine, now)
    )
    redact = engine.safety.redact
    insights = spikes(logs, now, cfg.spike_factor, cfg.spike_min, redact)
    insights += store["insights"]
    stats = {
        "logs": {
            "files": [f["path"] for f in logs["files"] if "skipped" not in f],
            "skipped": [{"path": f["path"], "why": f["skipped"]} for f in logs["files"]
                        if "skipped" in f],
            "bytes": logs["bytes"], "lines": logs["lines"],
            "errors_last_day": logs["errors_window"], "errors_baseline": logs["errors_baseline"],
            "unreadable": logs["unreadable"], "baseline_days": _coverage(logs, now),
            "signatures": len(logs["signatures"]),
        },
        "events": store["events"],
        "window": {"start": now - DAY_S, "end": now},
    }  # fmt: skip
    return {"insights": insights, "stats": stats}


def _coverage(logs: dict[str, Any], now: float) -> float:
    """How many baseline days the logs reach back (0 to 7)."""
    earliest = logs.get("earliest") or 0
    if not earliest:
        return 0.0
    return round(max(0.0, min(BASELINE_DAYS, (now - DAY_S - earliest) / DAY_S)), 2)


def spikes(logs: dict[str, Any], now: float, factor: float, minimum: int,
           redact: Any) -> list[dict[str, Any]]:
    covered = _coverage(logs, now)
    out: list[tuple[float, dict[str, Any]]] = []
    if covered < 1:
        return []  # no baseline yet: nothing can be told from a steady error
    days = math.ceil(covered)
    for key, sig in logs["signatures"].items():
        count = sig["window"]
        if count < minimum:
            continue
        before = sum(sig["baseline"][:days])
        rate = before / covered
        new = before == 0
        if not new and count < factor * rate:
            continue  # steady, or not enough above its usual rate
        text = redact(key)
        peak = max(range(24), key=lambda h: sig["hours"][h])
        peak_at = now - (24 - peak) * 3600
        if new:
            summary = (f"New error: \"{ins.one_line(text, 120)}\" — {count}× in the last day, "
                       f"never in the {days} day(s) before")
        else:
            summary = (f"Error spike: \"{ins.one_line(text, 120)}\" — {count}× in the last day, "
                       f"{count / rate:.0f}× its usual {rate:.1f}/day")
        evidence = [redact(e) for e in sig["examples"]]
        if sig["detail"]:
            evidence.append(redact(sig["detail"]))
        item = ins.make(
            "error_spike", key, now, summary, evidence,
            signature=text, count=count, baseline_per_day=round(rate, 2), new=new,
            ratio=None if new else round(count / rate, 1), first_seen=sig["first"],
            last_seen=sig["last"], files=sig["files"], peak_hour=peak_at,
            detail=redact(sig["detail"]),
        )  # fmt: skip
        out.append((count / (rate + 0.5), item))
    out.sort(key=lambda pair: -pair[0])
    return [item for _, item in out[:SHOW]]


# -- the store's last day ------------------------------------------------------------------
async def first_event_id(engine: ImproveHost, since: float) -> int:
    """The smallest event id whose time may be at or after `since` (a binary search on ids:
    they grow with time, give or take ID_MARGIN_S)."""
    rows = await engine.store.fetch("SELECT COALESCE(MAX(id), 0) AS hi FROM events")
    lo, hi = 1, int(rows[0]["hi"]) + 1
    target = since - ID_MARGIN_S
    while lo < hi:
        mid = (lo + hi) // 2
        row = await engine.store.fetch(
            "SELECT ts FROM events WHERE id >= ? ORDER BY id LIMIT 1", [mid]
        )
        if row and row[0]["ts"] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


async def _store_day(engine: ImproveHost, now: float) -> dict[str, Any]:
    since = now - DAY_S
    first = await first_event_id(engine, since)
    clusters, slow, cost, outcomes = await asyncio.gather(
        failure_clusters(engine, first, since, now),
        slow_tools(engine, first, since, now),
        cost_trend(engine, now),
        task_outcomes(engine, since, now),
    )
    counted = await engine.store.fetch(
        "SELECT COUNT(*) AS n FROM events WHERE id >= ? AND ts >= ?", [first, since]
    )
    return {"insights": clusters + slow + cost + outcomes, "events": int(counted[0]["n"])}


async def failure_clusters(engine: ImproveHost, first: int, since: float,
                           now: float) -> list[dict[str, Any]]:
    rows = await engine.store.fetch(
        "SELECT task_id, json_extract(data, '$.action') AS tool, "
        "substr(json_extract(data, '$.output'), 1, 400) AS output FROM events "
        "WHERE id >= ? AND type = ? AND ts >= ? AND json_extract(data, '$.is_error')",
        [first, ev.TOOL_RESULT, since],
    )
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        line = next((ln for ln in str(r["output"] or "").splitlines() if ln.strip()), "")
        groups[(str(r["tool"] or "?"), normalise(line))].append(r)
    failed = await engine.store.fetch(
        "SELECT id, error FROM tasks WHERE state = ? AND finished_at >= ? AND kind = 'task'",
        [ev.FAILED, since],
    )
    for t in failed:
        line = next((ln for ln in str(t["error"] or "").splitlines() if ln.strip()), "")
        groups[("task", normalise(line))].append({"task_id": t["id"], "output": t["error"]})
    redact = engine.safety.redact
    out = []
    for (tool, error), items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        if len(items) < MIN_CLUSTER:
            continue
        tasks = list(dict.fromkeys(i["task_id"] for i in items))
        what = "tasks failed" if tool == "task" else f"{tool} calls failed"
        summary = (f"{len(items)} {what} with \"{ins.one_line(redact(error), 100)}\" "
                   f"({len(tasks)} task(s))")
        examples = list(dict.fromkeys(ins.one_line(redact(str(i["output"] or "")), 300)
                                      for i in items))[:3]
        out.append(ins.make("failure_cluster", f"{tool}\0{error}", now, summary,
                            examples + [f"task {t}" for t in tasks[:5]], tool=tool,
                            error=redact(error), count=len(items), tasks=tasks[:20]))
        if len(out) >= SHOW:
            break
    return out


async def slow_tools(engine: ImproveHost, first: int, since: float,
                     now: float) -> list[dict[str, Any]]:
    """Each tool call's run time: from its step (or, when it waited for an approval, from
    the decision) to its result."""
    limit = engine.config.improve.slow_tool_s
    rows = await engine.store.fetch(
        "SELECT json_extract(data, '$.action') AS tool, COUNT(*) AS n, AVG(d) AS mean, "
        "MAX(d) AS longest, SUM(d) AS total, SUM(d > ?) AS slow FROM ("
        "  SELECT type, data, ts - LAG(ts) OVER (PARTITION BY task_id ORDER BY seq) AS d "
        "  FROM events WHERE id >= ? AND ts >= ? AND type IN (?, ?, ?)"
        ") WHERE type = ? AND d IS NOT NULL GROUP BY tool ORDER BY total DESC",
        [limit, first, since, ev.STEP, ev.APPROVAL_DECIDED, ev.TOOL_RESULT, ev.TOOL_RESULT],
    )
    out = []
    for r in rows:
        if not r["tool"] or not r["slow"]:
            continue
        summary = (f"{r['tool']}: {r['slow']} of {r['n']} call(s) took over {limit:g} s "
                   f"(mean {r['mean']:.1f} s, longest {r['longest']:.1f} s)")
        out.append(ins.make("slow_tool", r["tool"], now, summary,
                            [f"{r['n']} calls, {r['total']:.0f} s in all"], tool=r["tool"],
                            calls=r["n"], slow_calls=r["slow"], mean_s=round(r["mean"], 2),
                            longest_s=round(r["longest"], 2), total_s=round(r["total"], 1)))
    return out[:SHOW]


async def cost_trend(engine: ImproveHost, now: float) -> list[dict[str, Any]]:
    rows = await engine.store.fetch(
        "SELECT CAST((? - ts) / ? AS INTEGER) AS day, SUM(cost_usd) AS cost, "
        "SUM(input_tokens + output_tokens + cache_creation_input_tokens + "
        "cache_read_input_tokens) AS tokens, COUNT(*) AS calls FROM usage WHERE ts >= ? "
        "GROUP BY day",
        [now, DAY_S, now - (BASELINE_DAYS + 1) * DAY_S],
    )
    by_day = {int(r["day"]): r for r in rows if 0 <= int(r["day"]) <= BASELINE_DAYS}
    today = by_day.get(0)
    spent = float(today["cost"] or 0) if today else 0.0
    before = [float(by_day[d]["cost"] or 0) if d in by_day else 0.0
              for d in range(1, BASELINE_DAYS + 1)]
    mean = sum(before) / BASELINE_DAYS
    top = await engine.store.fetch(
        "SELECT u.task_id, COALESCE(t.title, '') AS title, SUM(u.cost_usd) AS cost "
        "FROM usage AS u LEFT JOIN tasks AS t ON t.id = u.task_id WHERE u.ts >= ? "
        "GROUP BY u.task_id ORDER BY cost DESC LIMIT 3",
        [now - DAY_S],
    )
    if mean > 0:
        change = (spent - mean) / mean * 100
        trend = f"{change:+.0f}% against the 7-day average of ${mean:.2f}/day"
    else:
        change = None
        trend = "nothing spent in the 7 days before"
    summary = f"${spent:.2f} spent on the model in the last day ({trend})"
    evidence = [f"${float(t['cost'] or 0):.2f} task {t['task_id'] or '(jobs)'} "
                f"{ins.one_line(t['title'], 60)}".rstrip() for t in top]
    return [ins.make("cost", "cost", now, summary, evidence, cost_usd=round(spent, 4),
                     baseline_per_day=round(mean, 4),
                     change_pct=None if change is None else round(change, 1),
                     calls=int(today["calls"]) if today else 0,
                     tokens=int(today["tokens"] or 0) if today else 0,
                     per_day=[round(c, 4) for c in before])]


async def task_outcomes(engine: ImproveHost, since: float, now: float) -> list[dict[str, Any]]:
    rows = await engine.store.fetch(
        "SELECT state, COUNT(*) AS n FROM tasks WHERE created_at >= ? AND kind = 'task' "
        "GROUP BY state", [since]
    )
    counts = Counter({r["state"]: int(r["n"]) for r in rows})
    total = sum(counts.values())
    if not total:
        return []
    ended = sum(counts[s] for s in ev.END_STATES)
    ok = counts[ev.SUCCEEDED]
    rate = f"{ok / ended:.0%} succeeded" if ended else "none ended yet"
    parts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.most_common())
    return [ins.make("task_outcomes", "tasks", now, f"{total} task(s) in the last day: {rate}",
                     [parts], counts=dict(counts), success_rate=round(ok / ended, 3) if ended
                     else None)]
