"""How long a task worked, and how long it waited for the operator, from its own events.

A run starts when the task leaves the queue and ends at its first end state. Time spent in
`awaiting_approval` or paused (held by the operator) is waiting; the rest of the run is
working time. A request a rule decided (`approve=auto`) waited for nobody: its moment in
`awaiting_approval` is the engine's own, working time. Both come from the events the run
recorded, so a later rollback (which moves the task row's `finished_at`) changes neither. A task found `interrupted` (its
process died) stopped working at its last event, not when the next engine noticed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import events as ev

if TYPE_CHECKING:
    from .store import Store

# agent/pausing.py's event types (named here: pausing belongs to the engine's side, and
# this module is read by views that need none of it)
PAUSED, RESUMED = "paused", "resumed"
_CHUNK = 400  # task ids per query (SQLite's bound on parameters)


@dataclass(frozen=True)
class Timing:
    working_s: float
    waiting_s: float
    started_at: float | None  # None: never left the queue
    ended_at: float | None  # None: still running

    @property
    def total_s(self) -> float:
        return self.working_s + self.waiting_s

    def as_dict(self) -> dict[str, Any]:
        return {"working_s": round(self.working_s, 1), "waiting_s": round(self.waiting_s, 1),
                "started_at": self.started_at, "ended_at": self.ended_at}  # fmt: skip


NOT_STARTED = Timing(0.0, 0.0, None, None)


def split(marks: Iterable[dict[str, Any]], now: float | None = None) -> Timing:
    """Working and waiting time from a task's marks in seq order: dicts with `ts`, `type`
    (status, paused, resumed, approval_decided), `state` (for status), `by` (for a
    decision) and, for an `interrupted` status,
    `last_before` (the time of the task's last event before it)."""
    start = end = None
    waiting: list[tuple[float, float | None]] = []  # [from, to) intervals; to None = open
    awaiting_since = paused_since = None
    for mark in marks:
        ts, kind, state = float(mark["ts"]), mark["type"], mark.get("state")
        if end is not None:
            break
        if kind == ev.STATUS:
            if start is None and state not in (ev.QUEUED, None) and state not in ev.END_STATES:
                start = ts
            if awaiting_since is not None:
                waiting.append((awaiting_since, ts))
                awaiting_since = None
            if state == ev.AWAITING_APPROVAL:
                awaiting_since = ts
            elif state in ev.END_STATES:
                end = ts
                if state == ev.INTERRUPTED and mark.get("last_before"):
                    end = min(ts, float(mark["last_before"]))
        elif kind == ev.APPROVAL_DECIDED and str(mark.get("by") or "").startswith("rule:"):
            awaiting_since = None  # decided by a rule: nobody was waited for
        elif kind == PAUSED and paused_since is None:
            paused_since = ts
        elif kind == RESUMED and paused_since is not None:
            waiting.append((paused_since, ts))
            paused_since = None
    if start is None:
        return NOT_STARTED
    stop = end if end is not None else (now if now is not None else time.time())
    for since in (awaiting_since, paused_since):
        if since is not None:
            waiting.append((since, None))
    waited = _union(waiting, start, stop)
    return Timing(max(0.0, stop - start - waited), waited, start, end)


def _union(spans: list[tuple[float, float | None]], low: float, high: float) -> float:
    """Total length of the spans (an awaited approval and a pause may overlap) in [low, high]."""
    clipped = sorted((max(a, low), min(high if b is None else b, high)) for a, b in spans)
    total, reach = 0.0, low
    for a, b in clipped:
        a = max(a, reach)
        if b > a:
            total += b - a
            reach = b
    return total


async def timings(
    store: Store, task_ids: list[str], now: float | None = None
) -> dict[str, Timing]:
    """Timing per task id (NOT_STARTED for one with no run), read from the store."""
    now = time.time() if now is None else now
    marks: dict[str, list[dict[str, Any]]] = {t: [] for t in task_ids}
    for i in range(0, len(task_ids), _CHUNK):
        chunk = task_ids[i : i + _CHUNK]
        rows = await store.fetch(
            "SELECT task_id, ts, type, json_extract(data, '$.state') AS state, "
            "json_extract(data, '$.by') AS by, "
            "CASE WHEN type = ? AND json_extract(data, '$.state') = ? THEN "
            "(SELECT MAX(b.ts) FROM events AS b WHERE b.task_id = a.task_id AND b.seq < a.seq) "
            "END AS last_before FROM events AS a "
            f"WHERE task_id IN ({', '.join('?' for _ in chunk)}) AND type IN (?, ?, ?, ?) "
            "ORDER BY task_id, seq",
            [ev.STATUS, ev.INTERRUPTED, *chunk, ev.STATUS, PAUSED, RESUMED, ev.APPROVAL_DECIDED],
        )
        for row in rows:
            marks.setdefault(row["task_id"], []).append(row)
    return {task_id: split(rows, now) for task_id, rows in marks.items()}
