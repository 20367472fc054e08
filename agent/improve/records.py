"""The improvement tables of the store (migration 4): job runs, insights and proposals.

Claiming a scheduled run is one write transaction: no other run of the job may be going
on (one whose engine is provably alive: its lock is held), and the (job, due time) pair is
unique, so of several daemons on one store exactly one runs each due time. A run left
unfinished by an engine that died is closed as `interrupted` by the next claim or start.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..store import to_json

if TYPE_CHECKING:
    from ..store import Store

# A job run's outcomes (one at a time: they are not the task states of agent/events.py).
SUCCEEDED = "succeeded"
FAILED = "failed"
SKIPPED = "skipped"
INTERRUPTED = "interrupted"
PENDING, ACCEPTED, REJECTED, STARTED = "pending", "accepted", "rejected", "started"
PROPOSAL_STATES = (PENDING, ACCEPTED, REJECTED, STARTED)


def _run(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["produced"] = json.loads(row.get("produced") or "{}")
    return row


# -- runs -----------------------------------------------------------------------------------
async def claim_run(store: Store, job: str, trigger: str, engine_id: str, workspace: str,
                    scheduled_for: float | None = None) -> tuple[int | None, str]:
    """(run id, "") when this engine now runs `job`; (None, why) when it must not: the due
    time is claimed already, or a run of the job is still going on elsewhere. A run of a
    live engine blocks; one of a dead engine is closed as interrupted first."""
    engine_rows = {e["id"]: e for e in await store.engines()}

    def alive(engine: str | None) -> bool:
        row = engine_rows.get(engine or "")
        return row is not None and store.engine_alive(row)

    def work(db: sqlite3.Connection) -> tuple[int | None, str]:
        now = time.time()
        if scheduled_for is not None:
            taken = db.execute(
                "SELECT engine_id, outcome FROM improve_runs WHERE job = ? AND scheduled_for = ?",
                [job, scheduled_for],
            ).fetchone()
            if taken is not None:
                return None, f"already claimed by {taken[0]} ({taken[1] or 'running'})"
        for run_id, engine in db.execute(
            "SELECT id, engine_id FROM improve_runs "
            "WHERE job = ? AND finished_at IS NULL", [job]
        ).fetchall():
            if engine == engine_id or alive(engine):
                return None, f"run {run_id} of {job} (by {engine}) is still going on"
            db.execute(
                "UPDATE improve_runs SET finished_at = ?, outcome = ?, error = ? WHERE id = ?",
                [now, INTERRUPTED, "the process running it stopped", run_id],
            )
        cur = db.execute(
            "INSERT INTO improve_runs (job, trigger, scheduled_for, engine_id, workspace, "
            "started_at) VALUES (?, ?, ?, ?, ?, ?)",
            [job, trigger, scheduled_for, engine_id, workspace, now],
        )
        return int(cur.lastrowid or 0), ""

    return await store.transaction(work)


async def record_skip(store: Store, job: str, scheduled_for: float, engine_id: str,
                      why: str) -> bool:
    """A due time not run (its job was still running): recorded once, so it is told, and
    no other daemon runs it later either. False if another engine recorded it first."""
    now = time.time()
    n = await _update_count(
        store,
        "INSERT OR IGNORE INTO improve_runs (job, trigger, scheduled_for, engine_id, "
        "started_at, finished_at, outcome, error) VALUES (?, 'schedule', ?, ?, ?, ?, ?, ?)",
        [job, scheduled_for, engine_id, now, now, SKIPPED, why],
    )
    return n == 1


async def finish_run(store: Store, run_id: int, outcome: str, error: str = "",
                     report: str | None = None, produced: dict[str, Any] | None = None) -> None:
    """Record how run `run_id` ended, once: an end already recorded stays as it is."""
    await store.execute(
        "UPDATE improve_runs SET finished_at = ?, outcome = ?, error = ?, report = ?, "
        "produced = ? WHERE id = ? AND finished_at IS NULL",
        [time.time(), outcome, error or None, report, to_json(produced or {}), run_id],
    )


async def close_dead_runs(store: Store, engine_id: str) -> int:
    """Runs left unfinished by engines that are gone: interrupted (at an engine's start)."""
    engines = {e["id"]: e for e in await store.engines()}
    open_runs = await store.fetch(
        "SELECT id, engine_id FROM improve_runs WHERE finished_at IS NULL"
    )
    closed = 0
    for r in open_runs:
        row = engines.get(r["engine_id"] or "")
        if r["engine_id"] == engine_id or (row is not None and store.engine_alive(row)):
            continue
        await store.execute(
            "UPDATE improve_runs SET finished_at = ?, outcome = ?, error = ? "
            "WHERE id = ? AND finished_at IS NULL",
            [time.time(), INTERRUPTED, "the process running it stopped", r["id"]],
        )
        closed += 1
    return closed


async def runs(store: Store, job: str | None = None, scheduled: bool = False,
               limit: int = 50, after_id: int = 0) -> list[dict[str, Any]]:
    where, params = ["id > ?"], [after_id]
    if job:
        where.append("job = ?")
        params.append(job)
    if scheduled:
        where.append("scheduled_for IS NOT NULL")
    rows = await store.fetch(
        f"SELECT * FROM improve_runs WHERE {' AND '.join(where)} "
        "ORDER BY started_at DESC, id DESC LIMIT ?", [*params, limit]
    )
    return [_run(r) for r in rows]


async def last_runs(store: Store) -> dict[str, dict[str, Any]]:
    """Each job's latest scheduled run."""
    rows = await store.fetch(
        "SELECT * FROM improve_runs WHERE id IN (SELECT MAX(id) FROM improve_runs "
        "WHERE scheduled_for IS NOT NULL GROUP BY job)"
    )
    return {r["job"]: _run(r) for r in rows}


async def latest_report(store: Store) -> dict[str, Any] | None:
    rows = await store.fetch(
        "SELECT * FROM improve_runs WHERE report IS NOT NULL ORDER BY finished_at DESC LIMIT 1"
    )
    return _run(rows[0]) if rows else None


async def max_run_id(store: Store) -> int:
    rows = await store.fetch("SELECT COALESCE(MAX(id), 0) AS n FROM improve_runs")
    return int(rows[0]["n"])


# -- insights -------------------------------------------------------------------------------
async def save_insights(store: Store, run_id: int, items: list[dict[str, Any]]) -> None:
    now = time.time()
    rows = []
    for item in items:
        data = {k: v for k, v in item.items() if k not in ("id", "kind", "summary", "evidence")}
        rows.append((item["id"], run_id, item["kind"], item["summary"],
                     to_json(item.get("evidence", [])), to_json(data), now))

    def work(db: sqlite3.Connection) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO insights (id, run_id, kind, summary, evidence, data, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows
        )

    if rows:
        await store.transaction(work)


def _insight(row: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(row.get("data") or "{}")
    return {"id": row["id"], "kind": row["kind"], "summary": row["summary"],
            "evidence": json.loads(row.get("evidence") or "[]"), **data,
            "run_id": row.get("run_id"), "created_at": row.get("created_at")}


async def insights(store: Store, since: float = 0.0, limit: int = 500,
                   run_id: int | None = None) -> list[dict[str, Any]]:
    if run_id is not None:
        rows = await store.fetch(
            "SELECT * FROM insights WHERE run_id = ? ORDER BY rowid", [run_id]
        )
    else:
        rows = await store.fetch(
            "SELECT * FROM insights WHERE created_at >= ? ORDER BY created_at DESC LIMIT ?",
            [since, limit],
        )
    return [_insight(r) for r in rows]


# -- proposals ------------------------------------------------------------------------------
def new_proposal_id() -> str:
    return "p" + uuid.uuid4().hex[:7]


def _proposal(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["evidence"] = json.loads(row.get("evidence") or "[]")
    return row


async def save_proposals(store: Store, run_id: int, items: list[dict[str, Any]]) -> None:
    now = time.time()
    rows = [(p["id"], run_id, p["source"], p["title"], p["task"], p["rationale"], p["impact"],
             p["effort"], to_json(p["evidence"]), p.get("workspace"), PENDING, now)
            for p in items]

    def work(db: sqlite3.Connection) -> None:
        db.executemany(
            "INSERT INTO proposals (id, run_id, source, title, task, rationale, impact, "
            "effort, evidence, workspace, state, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )

    if rows:
        await store.transaction(work)


async def proposals(store: Store, states: tuple[str, ...] | None = None,
                    limit: int = 200) -> list[dict[str, Any]]:
    where, params = "", []
    if states:
        where = f"WHERE p.state IN ({', '.join('?' for _ in states)})"
        params = list(states)
    rows = await store.fetch(
        "SELECT p.*, t.state AS task_state FROM proposals AS p LEFT JOIN tasks AS t "
        f"ON t.id = p.task_id {where} ORDER BY p.created_at DESC LIMIT ?", [*params, limit]
    )
    return [_proposal(r) for r in rows]


async def get_proposal(store: Store, ident: str) -> dict[str, Any]:
    """By id or a unique prefix of it (like a task id)."""
    ident = ident.strip()
    rows = await store.fetch(
        "SELECT p.*, t.state AS task_state FROM proposals AS p LEFT JOIN tasks AS t "
        "ON t.id = p.task_id WHERE p.id = ?", [ident]
    )
    if not rows and len(ident) >= 2:
        rows = await store.fetch(
            "SELECT p.*, t.state AS task_state FROM proposals AS p LEFT JOIN tasks AS t "
            "ON t.id = p.task_id WHERE p.id LIKE ? LIMIT 2", [ident.replace("%", "") + "%"]
        )
        if len(rows) > 1:
            raise UsageError(f"proposal id {ident!r} is ambiguous: give more of it")
    if not rows:
        raise UsageError(f"no proposal {ident!r} (see `livhana-cockpit proposals`)")
    return _proposal(rows[0])


async def decide_proposal(store: Store, ident: str, accept: bool, by: str) -> dict[str, Any]:
    """pending -> accepted/rejected, once: a second decision says who decided first."""
    proposal = await get_proposal(store, ident)
    state = ACCEPTED if accept else REJECTED
    n = await _update_count(
        store,
        "UPDATE proposals SET state = ?, decided_by = ?, decided_at = ? "
        "WHERE id = ? AND state = ?",
        [state, by, time.time(), proposal["id"], PENDING],
    )
    if n != 1:
        now = await get_proposal(store, proposal["id"])
        who = f" by {now['decided_by']}" if now.get("decided_by") else ""
        raise UsageError(f"proposal {now['id']} was already {now['state']}{who}")
    return await get_proposal(store, proposal["id"])


async def _update_count(store: Store, sql: str, params: list[Any]) -> int:
    def work(db: sqlite3.Connection) -> int:
        return db.execute(sql, params).rowcount

    return int(await store.transaction(work))


async def claim_proposal(store: Store, proposal_id: str, by: str) -> bool:
    """accepted -> started by `by`, once (two runners never start the same proposal)."""
    n = await _update_count(
        store,
        "UPDATE proposals SET state = ?, started_by = ?, started_at = ? WHERE id = ? AND state = ?",
        [STARTED, by, time.time(), proposal_id, ACCEPTED],
    )
    return n == 1


async def set_proposal_task(store: Store, proposal_id: str, task_id: str | None,
                            back_to_accepted: bool = False) -> None:
    if back_to_accepted:  # the task could not be made: it stays to run later
        await store.execute(
            "UPDATE proposals SET state = ?, started_by = NULL, started_at = NULL WHERE id = ?",
            [ACCEPTED, proposal_id],
        )
    else:
        await store.execute("UPDATE proposals SET task_id = ? WHERE id = ?",
                            [task_id, proposal_id])


async def open_titles(store: Store) -> set[str]:
    """Titles of proposals not rejected and not done: a new one saying the same is dropped."""
    rows = await store.fetch(
        "SELECT p.title FROM proposals AS p LEFT JOIN tasks AS t ON t.id = p.task_id "
        "WHERE p.state IN (?, ?) OR (p.state = ? AND (t.state IS NULL OR t.state NOT IN "
        "('succeeded')))", [PENDING, ACCEPTED, STARTED]
    )
    return {" ".join(r["title"].lower().split()) for r in rows}


async def proposals_of_run(store: Store, run_id: int) -> list[dict[str, Any]]:
    rows = await store.fetch("SELECT * FROM proposals WHERE run_id = ? ORDER BY rowid", [run_id])
    return [_proposal(r) for r in rows]
