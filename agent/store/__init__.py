"""The SQLite store (WAL): the durable source of truth and the bus between processes.

Every public method is async (aiosqlite runs the connection in its own thread), so the
event loop never blocks on disk. Errors from SQLite become one-line StoreErrors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiosqlite

from .opening import connect, explain

_ENVELOPE = frozenset(("task_id", "seq", "ts", "type"))
_DUMPS = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=False).encode
TASK_COLUMNS = (
    "id, title, workspace, state, approve_mode, model, engine_id, created_at, started_at, "
    "finished_at, updated_at, steps, tokens, cost_usd, branch, worktree, base_commit, summary, "
    "error, changes, options, kind"
)


def _task_row(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    task = dict(row)
    task["changes"] = json.loads(task["changes"] or "[]")
    task["options"] = json.loads(task["options"] or "{}")
    return task


class Store:
    def __init__(self, path: Path, db: aiosqlite.Connection) -> None:
        self.path = path
        self._db = db
        self._write_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    async def open(cls, path: Path | str) -> Store:
        path = Path(path)
        return cls(path, await connect(path))

    async def close(self) -> None:
        # Closing twice, or a dead thread: nothing left to save.
        with contextlib.suppress(Exception):
            await self._db.close()

    async def _exec(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Cursor:
        try:
            return await self._db.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise explain(self.path, exc) from None

    async def _all(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        try:
            async with self._db.execute(sql, tuple(params)) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
            raise explain(self.path, exc) from None

    async def _one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    async def integrity(self) -> str:
        row = await self._one("PRAGMA quick_check")
        return row[0] if row else "unknown"

    # -- tasks -----------------------------------------------------------------------------
    async def create_task(self, task: dict[str, Any]) -> None:
        now = time.time()
        row = {
            "created_at": now,
            "updated_at": now,
            "approve_mode": "ask",
            "model": "",
            "kind": "task",
            **task,
        }
        row["changes"] = json.dumps(row.get("changes", []))
        row["options"] = json.dumps(row.get("options", {}))
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        await self._exec(f"INSERT INTO tasks ({cols}) VALUES ({marks})", row.values())

    async def update_task(self, task_id: str, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        for key in ("changes", "options"):
            if key in fields:
                fields[key] = json.dumps(fields[key])
        sets = ", ".join(f"{k} = ?" for k in fields)
        await self._exec(f"UPDATE tasks SET {sets} WHERE id = ?", [*fields.values(), task_id])

    async def get_task(self, task_id: str) -> dict[str, Any] | None:
        row = await self._one(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", [task_id])
        if row is None and len(task_id) >= 4:  # allow unique prefixes, like git
            rows = await self._all(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE id LIKE ? LIMIT 2", [task_id + "%"]
            )
            row = rows[0] if len(rows) == 1 else None
        return _task_row(row)

    async def list_tasks(
        self,
        states: Iterable[str] | None = None,
        text: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        where, params = [], []
        states = list(states or [])
        if states:
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            params += states
        if text:
            where.append("(title LIKE ? OR id LIKE ?)")
            params += [f"%{text}%", f"{text}%"]
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        if until is not None:
            where.append("created_at < ?")
            params.append(until)
        if kind:
            where.append("kind = ?")
            params.append(kind)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._all(
            f"SELECT {TASK_COLUMNS} FROM tasks {clause} ORDER BY created_at DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [t for t in (_task_row(r) for r in rows) if t]

    # -- events ----------------------------------------------------------------------------
    async def append_events(self, events: list[dict[str, Any]]) -> None:
        """One transaction for the whole batch: this is what makes appends cheap."""
        if not events:
            return
        dumps = _DUMPS
        # The envelope has its own columns; `data` holds only the payload (smaller, faster).
        rows = [
            (
                e["task_id"],
                e["seq"],
                e["ts"],
                e["type"],
                dumps({k: v for k, v in e.items() if k not in _ENVELOPE}),
            )
            for e in events
        ]
        # One writer transaction at a time on this connection; a cancel mid-way rolls back
        # instead of leaving the transaction open for whoever writes next.
        async with self._write_lock:
            try:
                await self._db.execute("BEGIN")
                await self._db.executemany(
                    "INSERT INTO events (task_id, seq, ts, type, data) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                await self._db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    await asyncio.shield(self._db.execute("ROLLBACK"))
                if isinstance(exc, sqlite3.Error):
                    raise explain(self.path, exc) from None
                raise

    async def task_events(
        self, task_id: str, after_seq: int = 0, limit: int = 100_000
    ) -> list[dict[str, Any]]:
        rows = await self._all(
            "SELECT task_id, seq, ts, type, data FROM events WHERE task_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            [task_id, after_seq, limit],
        )
        return [_event(r) for r in rows]

    async def last_event_id(self) -> int:
        row = await self._one("SELECT COALESCE(MAX(id), 0) FROM events")
        return int(row[0]) if row else 0

    async def tail_events(
        self, after_id: int, limit: int = 2000
    ) -> tuple[int, list[dict[str, Any]]]:
        """Events of every task appended after `after_id` (a global cursor), for other processes."""
        rows = await self._all(
            "SELECT id, task_id, seq, ts, type, data FROM events WHERE id > ? ORDER BY id LIMIT ?",
            [after_id, limit],
        )
        if not rows:
            return after_id, []
        return int(rows[-1][0]), [_event(r, 1) for r in rows]

    async def max_seq(self, task_id: str) -> int:
        row = await self._one(
            "SELECT COALESCE(MAX(seq), 0) FROM events WHERE task_id = ?", [task_id]
        )
        return int(row[0]) if row else 0

    # -- approvals -------------------------------------------------------------------------
    async def create_approval(
        self,
        task_id: str,
        kind: str,
        summary: str,
        detail: dict[str, Any],
        risk: str = "medium",
        timeout_s: float | None = None,
    ) -> int:
        now = time.time()
        cur = await self._exec(
            "INSERT INTO approvals (task_id, kind, summary, detail, risk, created_at, timeout_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                task_id,
                kind,
                summary,
                json.dumps(detail, default=str),
                risk,
                now,
                now + timeout_s if timeout_s else None,
            ],
        )
        return int(cur.lastrowid or 0)

    async def decide_approval(
        self, approval_id: int, approved: bool, by: str, reason: str = ""
    ) -> bool:
        """Record a decision once. Returns False if it was already decided."""
        cur = await self._exec(
            "UPDATE approvals SET state = ?, decided_by = ?, reason = ?, decided_at = ? "
            "WHERE id = ? AND state = 'pending'",
            ["approved" if approved else "denied", by, reason, time.time(), approval_id],
        )
        return cur.rowcount == 1

    async def get_approval(self, approval_id: int) -> dict[str, Any] | None:
        row = await self._one("SELECT * FROM approvals WHERE id = ?", [approval_id])
        return _approval(row)

    async def approvals(
        self, state: str | None = "pending", task_id: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        where, params = [], []
        if state:
            where.append("state = ?")
            params.append(state)
        if task_id:
            where.append("task_id = ?")
            params.append(task_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        order = "ASC" if state == "pending" else "DESC"
        rows = await self._all(
            f"SELECT * FROM approvals {clause} ORDER BY created_at {order} LIMIT ?",
            [*params, limit],
        )
        return [a for a in (_approval(r) for r in rows) if a]

    # -- learnings -------------------------------------------------------------------------
    async def add_learnings(self, task_id: str | None, items: list[tuple[str, str]]) -> None:
        now = time.time()
        for category, text in items:
            await self._exec(
                "INSERT INTO learnings (task_id, category, text, created_at) VALUES (?, ?, ?, ?)",
                [task_id, category, text, now],
            )

    async def learnings(self, query: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """One row per distinct learning: the same lesson taught by several tasks is merged
        (`taught`: how many times, `task_ids`: by whom, oldest first; `uses` summed; `id`,
        `task_id` and `created_at` are the first teaching's, `last_at` the latest's)."""
        where, params = ("WHERE text LIKE ?", [f"%{query}%"]) if query else ("", [])
        rows = await self._all(
            "SELECT first.id, first.task_id, g.category, g.text, g.created_at, g.last_at, "
            "g.taught, g.uses, g.task_ids FROM (SELECT MIN(id) AS id, category, text, "
            "MIN(created_at) AS created_at, MAX(created_at) AS last_at, COUNT(*) AS taught, "
            "SUM(uses) AS uses, json_group_array(task_id) AS task_ids FROM "
            f"(SELECT * FROM learnings {where} ORDER BY id) GROUP BY category, text) AS g "
            "JOIN learnings AS first ON first.id = g.id ORDER BY g.last_at DESC LIMIT ?",
            [*params, limit],
        )
        out = []
        for r in rows:
            item = dict(r)
            item["task_ids"] = list(dict.fromkeys(t for t in json.loads(item["task_ids"]) if t))
            out.append(item)
        return out

    async def mark_learnings_used(self, ids: list[int]) -> None:
        for learning_id in ids:
            await self._exec("UPDATE learnings SET uses = uses + 1 WHERE id = ?", [learning_id])

    # -- commands (cross-process control) --------------------------------------------------
    async def add_command(
        self, kind: str, task_id: str | None = None, payload: dict[str, Any] | None = None
    ) -> int:
        cur = await self._exec(
            "INSERT INTO commands (kind, task_id, payload, created_at) VALUES (?, ?, ?, ?)",
            [kind, task_id, json.dumps(payload or {}), time.time()],
        )
        return int(cur.lastrowid or 0)

    async def commands_after(self, after_id: int) -> list[dict[str, Any]]:
        rows = await self._all("SELECT * FROM commands WHERE id > ? ORDER BY id", [after_id])
        out = []
        for r in rows:
            cmd = dict(r)
            cmd["payload"] = json.loads(cmd["payload"] or "{}")
            out.append(cmd)
        return out

    async def last_command_id(self) -> int:
        row = await self._one("SELECT COALESCE(MAX(id), 0) FROM commands")
        return int(row[0]) if row else 0

    # -- engines ---------------------------------------------------------------------------
    async def register_engine(self, engine_id: str, pid: int, host: str, role: str) -> None:
        now = time.time()
        await self._exec(
            "INSERT OR REPLACE INTO engines (id, pid, host, role, started_at, heartbeat) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [engine_id, pid, host, role, now, now],
        )

    async def heartbeat(self, engine_id: str) -> None:
        await self._exec("UPDATE engines SET heartbeat = ? WHERE id = ?", [time.time(), engine_id])

    async def engines(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._all("SELECT * FROM engines ORDER BY started_at")]

    async def remove_engine(self, engine_id: str) -> None:
        await self._exec("DELETE FROM engines WHERE id = ?", [engine_id])

    # -- usage -----------------------------------------------------------------------------
    async def add_usage(self, task_id: str | None, model: str, usage: dict[str, Any]) -> None:
        await self._exec(
            "INSERT INTO usage (task_id, ts, model, input_tokens, output_tokens, "
            "cache_creation_input_tokens, cache_read_input_tokens, cost_usd) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                task_id,
                time.time(),
                model,
                usage.get("input_tokens", 0),
                usage.get("output_tokens", 0),
                usage.get("cache_creation_input_tokens", 0),
                usage.get("cache_read_input_tokens", 0),
                usage.get("cost_usd", 0.0),
            ],
        )

    async def spent_since(self, since: float) -> float:
        row = await self._one("SELECT COALESCE(SUM(cost_usd), 0) FROM usage WHERE ts >= ?", [since])
        return float(row[0]) if row else 0.0

    # -- settings --------------------------------------------------------------------------
    async def get_setting(self, key: str, default: Any = None) -> Any:
        row = await self._one("SELECT value FROM settings WHERE key = ?", [key])
        return json.loads(row[0]) if row else default

    async def set_setting(self, key: str, value: Any) -> None:
        await self._exec(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, json.dumps(value)],
        )

    # -- raw access for small modules (audit, metrics) -------------------------------------
    async def fetch(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._all(sql, params)]

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        cur = await self._exec(sql, params)
        return int(cur.lastrowid or 0)


def _event(row: sqlite3.Row, skip: int = 0) -> dict[str, Any]:
    task_id, seq, ts, type_, data = tuple(row)[skip:]
    return {"task_id": task_id, "seq": seq, "ts": ts, "type": type_, **json.loads(data)}


def _approval(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    a = dict(row)
    a["detail"] = json.loads(a["detail"] or "{}")
    return a
