"""What is exported: one `Source` per BigQuery table, each a schema and a `gather` that
reads the store. A new source is one `register(Source(...))`:

    register(Source("deploys", (Column("target"), Column("outcome"), ...),
                    gather=appended("SELECT * FROM deploys WHERE id > ? ORDER BY id LIMIT ?",
                                    to_row=lambda r: {...})))

Two kinds of gathering:
- `appended`: rows that never change once written (audit, usage), read past an id cursor;
- `changing`: rows that change (a task rolled back after it ended, a learning used again):
  each gathered row is compared with the digest of what was last queued for its key, and
  queued again, as a new version, only when it differs.

Every row also gets the common columns (COMMON): `row_id` (unique per row version on every
machine: BigQuery's insertId, so a retried send is not stored twice), `machine_id`,
`origin` (user@host), `recorded_at`, `sent_at`.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import events as ev

if TYPE_CHECKING:
    from ..config import Config
    from ..store import Store

TEXT_CAP = 64 * 1024  # characters per text cell: BigQuery takes more, nobody reads more
TASK_SETTLE_S = 3.0  # a task's end is written in a few steps: export it once they landed
TASK_OVERLAP_S = 120.0  # and look back this far for a write that committed late


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "STRING"  # STRING, INTEGER, FLOAT, BOOLEAN, TIMESTAMP
    mode: str = "NULLABLE"


COMMON = (
    Column("row_id", "STRING", "REQUIRED"),
    Column("machine_id", "STRING", "REQUIRED"),
    Column("origin"),
    Column("recorded_at", "TIMESTAMP"),
    Column("sent_at", "TIMESTAMP"),
)


@dataclass
class Host:
    """What sources and the exporter need from the engine (never the engine's insides)."""

    store: Store
    config: Config
    engine_id: str
    redact: Callable[[Any], Any]
    views: Any = None  # the engine, for sources built on its public views
    machine_id: str = ""  # this store's id in the shared dataset (set by the exporter)


@dataclass
class Record:
    key: str  # the row's identity in its source (an audit id, a task id, ...)
    ts: float  # when it happened (the export lag is measured from this)
    row: dict[str, Any]  # the source's own columns


@dataclass
class Gathered:
    records: list[Record]
    cursor: str | None = None  # where the next gather starts (None: unchanged)
    more: bool = False  # a full page: gather again


Gather = Callable[[Host, str | None, int], Awaitable[Gathered]]


@dataclass(frozen=True)
class Source:
    name: str  # the BigQuery table
    columns: tuple[Column, ...]
    gather: Gather
    changing: bool = False

    @property
    def schema(self) -> tuple[Column, ...]:
        return COMMON + self.columns


SOURCES: dict[str, Source] = {}


def register(source: Source) -> Source:
    """Add (or replace) a source: its table is created or widened on the next send."""
    SOURCES[source.name] = source
    return source


# -- helpers for sources -----------------------------------------------------------------------
def timestamp(ts: Any) -> str | None:
    """A Unix time as BigQuery's RFC 3339 TIMESTAMP text (UTC)."""
    if ts is None or ts == "":
        return None
    moment = dt.datetime.fromtimestamp(float(ts), dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def text(value: Any) -> str | None:
    if value is None:
        return None
    value = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return value if len(value) <= TEXT_CAP else value[: TEXT_CAP - 1] + "…"


async def table_exists(store: Store, name: str) -> bool:
    rows = await store.fetch("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name])
    return bool(rows)


def appended(
    sql: str, to_row: Callable[[dict[str, Any]], dict[str, Any]], *, id_col: str = "id",
    ts_col: str = "ts", table: str | None = None,
) -> Gather:
    """Rows that never change, read past an integer id: `sql` takes (after_id, limit)."""

    async def gather(host: Host, cursor: str | None, limit: int) -> Gathered:
        if table and not await table_exists(host.store, table):
            return Gathered([])
        rows = await host.store.fetch(sql, [int(cursor or 0), limit])
        records = [Record(str(r[id_col]), float(r.get(ts_col) or time.time()), to_row(r))
                   for r in rows]  # fmt: skip
        last = str(rows[-1][id_col]) if rows else None
        return Gathered(records, last, len(rows) == limit)

    return gather


# -- the built-in sources ----------------------------------------------------------------------
def _audit_row(r: dict[str, Any]) -> dict[str, Any]:
    return {"audit_id": r["id"], "ts": timestamp(r["ts"]), "actor": text(r["actor"]),
            "action": text(r["action"]), "task_id": r["task_id"], "detail": text(r["detail"]),
            "hash": r["hash"], "prev_hash": r["prev_hash"]}  # fmt: skip


AUDIT = register(Source(
    "audit",
    (Column("audit_id", "INTEGER"), Column("ts", "TIMESTAMP"), Column("actor"), Column("action"),
     Column("task_id"), Column("detail"), Column("hash"), Column("prev_hash")),
    appended("SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?", _audit_row),
))  # fmt: skip


def _usage_row(r: dict[str, Any]) -> dict[str, Any]:
    keep = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
            "cache_read_input_tokens")  # fmt: skip
    return {"usage_id": r["id"], "task_id": r["task_id"], "ts": timestamp(r["ts"]),
            "model": text(r["model"]), **{k: int(r[k] or 0) for k in keep},
            "cost_usd": float(r["cost_usd"] or 0)}  # fmt: skip


USAGE = register(Source(
    "usage",
    (Column("usage_id", "INTEGER"), Column("task_id"), Column("ts", "TIMESTAMP"), Column("model"),
     Column("input_tokens", "INTEGER"), Column("output_tokens", "INTEGER"),
     Column("cache_creation_input_tokens", "INTEGER"), Column("cache_read_input_tokens", "INTEGER"),
     Column("cost_usd", "FLOAT")),
    appended("SELECT * FROM usage WHERE id > ? ORDER BY id LIMIT ?", _usage_row),
))  # fmt: skip


def _task_row(t: dict[str, Any]) -> dict[str, Any]:
    changes = json.loads(t["changes"] or "[]") if isinstance(t["changes"], str) else t["changes"]
    return {"task_id": t["id"], "title": text(t["title"]), "state": t["state"], "kind": t["kind"],
            "model": t["model"], "approve_mode": t["approve_mode"],
            "workspace": text(t["workspace"]), "created_at": timestamp(t["created_at"]),
            "started_at": timestamp(t["started_at"]), "finished_at": timestamp(t["finished_at"]),
            "steps": int(t["steps"] or 0), "tokens": int(t["tokens"] or 0),
            "cost_usd": float(t["cost_usd"] or 0), "summary": text(t["summary"]),
            "error": text(t["error"]), "changes": text(changes or []),
            "changed_files": len(changes or [])}  # fmt: skip


_END = tuple(ev.END_STATES)
_END_MARKS = ", ".join("?" for _ in _END)


async def _read_tasks(host: Host, cursor: str | None, limit: int) -> Gathered:
    """Ended tasks, by when their row last changed. The cursor is (updated_at, id) of the
    last one gathered; rows changed in the last TASK_SETTLE_S wait (an ending is several
    writes), and the TASK_OVERLAP_S before the cursor are read again, for a write that got
    its time before the cursor's but committed after (another process, a lock wait):
    unchanged rows are dropped by their digest."""
    ts, last_id = (json.loads(cursor) if cursor else [0.0, ""])
    until = time.time() - TASK_SETTLE_S
    cols = "id, title, state, kind, model, approve_mode, workspace, created_at, started_at, " \
           "finished_at, updated_at, steps, tokens, cost_usd, summary, error, changes"
    recent = await host.store.fetch(
        f"SELECT {cols} FROM tasks WHERE state IN ({_END_MARKS}) AND updated_at >= ? "
        "AND (updated_at < ? OR (updated_at = ? AND id <= ?)) ORDER BY updated_at, id",
        [*_END, ts - TASK_OVERLAP_S, ts, ts, last_id],
    ) if cursor else []
    new = await host.store.fetch(
        f"SELECT {cols} FROM tasks WHERE state IN ({_END_MARKS}) AND updated_at <= ? "
        "AND (updated_at > ? OR (updated_at = ? AND id > ?)) ORDER BY updated_at, id LIMIT ?",
        [*_END, until, ts, ts, last_id, limit],
    )
    records = [Record(t["id"], float(t["finished_at"] or t["updated_at"]), _task_row(t))
               for t in recent + new]  # fmt: skip
    if new:
        cursor = json.dumps([new[-1]["updated_at"], new[-1]["id"]])
    return Gathered(records, cursor, len(new) == limit)


TASKS = register(Source(
    "tasks",
    (Column("task_id"), Column("title"), Column("state"), Column("kind"), Column("model"),
     Column("approve_mode"), Column("workspace"), Column("created_at", "TIMESTAMP"),
     Column("started_at", "TIMESTAMP"), Column("finished_at", "TIMESTAMP"),
     Column("steps", "INTEGER"), Column("tokens", "INTEGER"), Column("cost_usd", "FLOAT"),
     Column("summary"), Column("error"), Column("changes"), Column("changed_files", "INTEGER")),
    _read_tasks, changing=True,
))  # fmt: skip

LEARNING_COLUMNS = (
    Column("learning_key"), Column("learning_id", "INTEGER"), Column("category"), Column("text"),
    Column("task_id"), Column("created_at", "TIMESTAMP"), Column("uses", "INTEGER"),
    Column("given_to", "INTEGER"), Column("success_with", "FLOAT"),
    Column("success_without", "FLOAT"), Column("state"), Column("effect"),
)


def learning_row(machine_id: str, item: dict[str, Any]) -> dict[str, Any]:
    """A learning as exported. The measured effect (issue 10's `learning_stats()`: the
    success rates with and without it, how many tasks were given it, its state) is taken
    when the item carries it; the rest of what it carries (the effect itself, its
    confidence, the recent tasks it was given to...) goes in `effect` as JSON."""
    given = item.get("tasks_with", item.get("given_to"))
    given_to = given if isinstance(given, int) and not isinstance(given, bool) else None
    known = {"id", "task_id", "source_task", "category", "text", "created_at", "uses",
             "success_with", "success_without", "state"}  # fmt: skip
    extra = {k: v for k, v in item.items() if k not in known and not k.startswith("_")
             and not (k == "given_to" and v is given_to)}  # fmt: skip
    num = (lambda v: None if v is None else float(v))  # noqa: E731
    return {"learning_key": f"{machine_id}:{item['id']}", "learning_id": int(item["id"]),
            "category": text(item["category"]), "text": text(item["text"]),
            "task_id": item.get("source_task") or item.get("task_id"),
            "created_at": timestamp(item.get("created_at")), "uses": int(item.get("uses") or 0),
            "given_to": given_to, "success_with": num(item.get("success_with")),
            "success_without": num(item.get("success_without")),
            "state": item.get("state") or "active", "effect": text(extra) if extra else None}  # fmt: skip


async def _read_learnings(host: Host, cursor: str | None, limit: int) -> Gathered:
    """This machine's own learnings (a teammate's, pulled in, are theirs to export), swept
    by id a page at a time, every tick (a learning changes as it is used). With measured
    effects (`views.learning_stats()`, issue 10) when the engine has them."""
    me = host.machine_id
    after = int(cursor or 0)
    stats = getattr(host.views, "learning_stats", None)
    if stats is not None:
        items = sorted((dict(i) for i in await stats() if int(i["id"]) > after),
                       key=lambda i: int(i["id"]))[:limit]  # fmt: skip
    else:
        items = await host.store.fetch(
            "SELECT id, task_id, category, text, created_at, uses FROM learnings "
            "WHERE id > ? ORDER BY id LIMIT ?", [after, limit])  # fmt: skip
    ids = [int(i["id"]) for i in items]
    pulled = {r["learning_id"] for r in await host.store.fetch(
        f"SELECT learning_id FROM learning_origins WHERE learning_id IN "
        f"({', '.join('?' for _ in ids) or 'NULL'})", ids)}  # fmt: skip
    records = [Record(str(i["id"]), float(i.get("created_at") or 0), learning_row(me, i))
               for i in items if int(i["id"]) not in pulled]  # fmt: skip
    full = len(items) == limit
    return Gathered(records, str(ids[-1]) if full else "0", full)  # swept: start over next tick


LEARNINGS = register(Source("learnings", LEARNING_COLUMNS, _read_learnings, changing=True))


# Issue 10's job runs (agent/improve, its `improve_runs` table): scheduled, caught up or by
# hand. Read only where that table exists, so an older store simply has none to send.
RUNS_TABLE = "improve_runs"


async def _read_schedule_runs(host: Host, cursor: str | None, limit: int) -> Gathered:
    """Finished job runs, newest first: when, what came of it, and the report and what
    it produced as JSON in `detail` (a run is final once finished: digests keep it once)."""
    if not await table_exists(host.store, RUNS_TABLE):
        return Gathered([])
    rows = await host.store.fetch(
        f"SELECT * FROM {RUNS_TABLE} WHERE finished_at IS NOT NULL "
        "ORDER BY finished_at DESC LIMIT ?", [limit])  # fmt: skip
    shown = ("id", "job", "trigger", "scheduled_for", "started_at", "finished_at", "outcome",
             "error", "engine_id")  # fmt: skip
    records = []
    for r in rows:
        key = str(r["id"])
        records.append(Record(key, float(r["finished_at"]), {
            "run_key": key, "job": r.get("job"), "trigger": text(r.get("trigger")),
            "scheduled_for": timestamp(r.get("scheduled_for")),
            "started_at": timestamp(r.get("started_at")),
            "finished_at": timestamp(r.get("finished_at")), "outcome": text(r.get("outcome")),
            "error": text(r.get("error")),
            "detail": text({k: v for k, v in r.items() if k not in shown})}))  # fmt: skip
    return Gathered(records)


SCHEDULE_RUNS = register(Source(
    "schedule_runs",
    (Column("run_key"), Column("job"), Column("trigger"), Column("scheduled_for", "TIMESTAMP"),
     Column("started_at", "TIMESTAMP"), Column("finished_at", "TIMESTAMP"), Column("outcome"),
     Column("error"), Column("detail")),
    _read_schedule_runs, changing=True,
))  # fmt: skip
