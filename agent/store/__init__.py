"""The SQLite store (WAL): the durable source of truth and the bus between processes.

Every public method is async, so the event loop never blocks on disk. Reads go through
one connection (its own thread); writes through another, each a whole transaction run in
one go in the writer's thread (BEGIN IMMEDIATE: it waits for another process's write
instead of failing half-way, and the write lock is never held across an await). Any
Python str is storable (agent/store/text.py). Errors from SQLite become one-line
StoreErrors; a full disk is StoreFull, and the first one frees the store's reserve
(agent/store/reserve.py) and tells `on_disk_full` listeners, so the end of the work in
progress can still be recorded.

`Store.open(path, readonly=True)` never writes: for commands that only show the store
(it works on a full disk, and a store that does not exist yet reads as empty).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..errors import StoreError, StoreFull
from ..events import LIVE_STATES
from . import lessons, opening
from .liveness import EngineLocks
from .opening import explain, is_busy, is_full
from .reserve import Reserve
from .text import clean, clean_json

log = logging.getLogger(__name__)
T = TypeVar("T")
_ENVELOPE = frozenset(("task_id", "seq", "ts", "type"))
_DUMPS = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=False).encode
_CHUNK = 500  # parameters per IN (...) list
TASK_COLUMNS = (
    "id, title, workspace, state, approve_mode, model, engine_id, created_at, started_at, "
    "finished_at, updated_at, steps, tokens, cost_usd, branch, worktree, base_commit, summary, "
    "error, changes, options, kind"
)
_INSERT_EVENT = "INSERT INTO events (task_id, seq, ts, type, data) VALUES (?, ?, ?, ?, ?)"


def to_json(value: Any) -> str:
    """JSON text for a column: compact, any str storable."""
    return clean_json(_DUMPS(value))


def _params(params: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(clean(p) if isinstance(p, str) else p for p in params)


def _task_row(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    task = dict(row)
    task["changes"] = json.loads(task["changes"] or "[]")
    task["options"] = json.loads(task["options"] or "{}")
    return task


@dataclass
class Appended:
    """What append_events did beyond storing the batch."""

    lost: set[str] = field(default_factory=set)  # owned tasks now run elsewhere: refused
    renumbered: dict[int, int] = field(default_factory=dict)  # batch index -> seq stored
    last: dict[str, int] = field(default_factory=dict)  # task -> its last seq, now stored


@dataclass
class _LastSeqs:
    """Each task's last stored seq as this connection wrote it, valid while no other
    connection has written (SQLite's data_version says): appends then need no lookup."""

    version: int = -1
    seqs: dict[str, int] = field(default_factory=dict)

    def check(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA data_version").fetchone()[0]
        if version != self.version or len(self.seqs) > 100_000:
            self.version, self.seqs = version, {}

    def keep(self, done: Appended) -> None:  # committed: what we wrote is what is stored
        self.seqs.update(done.last)


class _Failed(Exception):
    def __init__(self, error: sqlite3.Error, waited: float) -> None:
        super().__init__(str(error))
        self.error, self.waited = error, waited


class Store:
    def __init__(
        self,
        path: Path,
        reader: aiosqlite.Connection,
        writer: sqlite3.Connection | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.path = path
        self._r = reader
        self._w = writer
        self._executor = executor
        self.readonly = writer is None
        self.engine_locks = EngineLocks(path)
        self._reserve = Reserve(path)
        self._full_listeners: list[Callable[[str], None]] = []
        self._full = False  # the disk was found full since the last write that fit
        self._seqs = _LastSeqs()  # writer thread only

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    async def open(cls, path: Path | str, readonly: bool = False) -> Store:
        path = Path(path)
        if readonly:
            store = await cls._open_readonly(path)
            if store is not None:
                return store
        opening.mkdir_for(path)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        loop = asyncio.get_running_loop()
        try:
            writer = await loop.run_in_executor(executor, opening.connect_writer, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        try:
            reader = await opening.connect_reader(path)
        except BaseException:
            await loop.run_in_executor(executor, writer.close)
            executor.shutdown(wait=False)
            raise
        store = cls(path, reader, writer, executor)
        await loop.run_in_executor(executor, store._reserve.ensure)
        return store

    @classmethod
    async def _open_readonly(cls, path: Path) -> Store | None:
        """None: the schema is older, so a writable open must migrate it first."""
        if not path.exists():  # nothing stored yet: an empty store, nothing created on disk
            return cls(path, await opening.empty_reader())
        reader = await opening.connect_reader(path, readonly_file=True)
        try:
            version = await opening.schema_version(reader)
            opening.check_not_newer(path, version)
        except sqlite3.Error as exc:
            await reader.close()
            raise explain(path, exc) from None
        except BaseException:
            await reader.close()
            raise
        if version < opening.SCHEMA_VERSION:
            await reader.close()
            return None
        return cls(path, reader)

    async def close(self) -> None:
        # Closing twice, or a dead thread: nothing left to save.
        with contextlib.suppress(Exception):
            await self._r.close()
        if self._w is not None and self._executor is not None:
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(self._executor, self._w.close)
            self._executor.shutdown(wait=False)
            self._w = None
        self.engine_locks.release_all()

    def on_disk_full(self, listener: Callable[[str], None]) -> None:
        """`listener(message)` runs when a write finds the disk full (again)."""
        self._full_listeners.append(listener)

    # -- reading ---------------------------------------------------------------------------
    async def _all(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        started = time.monotonic()
        try:
            # One trip to the reader's thread (a cursor would take three: execute, fetch,
            # close); under load each trip waits its turn for the GIL.
            return list(await self._r.execute_fetchall(sql, _params(params)))
        except sqlite3.Error as exc:
            raise explain(self.path, exc, time.monotonic() - started) from None

    async def _one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    # -- writing ---------------------------------------------------------------------------
    async def _write(
        self, work: Callable[[sqlite3.Connection], T], after: Callable[[T], None] | None = None
    ) -> T:
        """Run `work(connection)` as one write transaction in the writer's thread, and
        `after(result)` there once it is committed."""
        if self._w is None or self._executor is None:
            how = "open read-only here" if self.readonly else "closed"
            raise StoreError(f"store {self.path} is {how} (nothing can be written)")
        loop = asyncio.get_running_loop()
        try:
            result, full = await loop.run_in_executor(
                self._executor, self._transaction, work, after
            )
        except _Failed as failed:
            error = explain(self.path, failed.error, failed.waited)
            if isinstance(error, StoreFull):
                self._disk_full(str(error))
            raise error from None
        if full:
            self._disk_full(str(explain(self.path, full)))
        return result

    def _transaction(
        self, work: Callable[[sqlite3.Connection], T], after: Callable[[T], None] | None
    ) -> tuple[T, sqlite3.Error | None]:
        """In the writer's thread. Waits for other writers (SQLite's busy handler, then
        backing off for what comes back at once) up to LOCK_TIMEOUT_S in all; a full disk
        is tried once more with the reserve given back."""
        db = self._w
        assert db is not None
        started, delay = time.monotonic(), 0.005
        full: sqlite3.Error | None = None
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(db)
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                waited = time.monotonic() - started
                if is_full(exc) and full is None and self._reserve.release():
                    full = exc
                    continue
                if is_busy(exc) and waited + delay < opening.LOCK_TIMEOUT_S:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
                    continue
                raise _Failed(exc, waited) from None
            if after is not None:
                after(result)
            if full is None and self._full:
                self._full = False  # room again: keep some aside for next time
                self._reserve.ensure()
            return result, full

    def _disk_full(self, message: str) -> None:
        if self._full:
            return
        self._full = True
        for listener in list(self._full_listeners):
            try:
                listener(message)
            except Exception:  # a listener's bug must not hide the store's error
                log.exception("disk-full listener failed")

    async def _exec(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        values = _params(params)
        return await self._write(lambda db: db.execute(sql, values))

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
        row["changes"] = to_json(row.get("changes", []))
        row["options"] = to_json(row.get("options", {}))
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        await self._exec(f"INSERT INTO tasks ({cols}) VALUES ({marks})", row.values())

    async def update_task(self, task_id: str, owner: str | None = None, **fields: Any) -> bool:
        """With `owner`: only while that engine still runs the task (not once another
        took it over). False if the row was not written."""
        fields["updated_at"] = time.time()
        for key in ("changes", "options"):
            if key in fields:
                fields[key] = to_json(fields[key])
        sets = ", ".join(f"{k} = ?" for k in fields)
        where, params = "id = ?", [*fields.values(), task_id]
        if owner is not None:
            where, params = "id = ? AND engine_id = ?", [*params, owner]
        cur = await self._exec(f"UPDATE tasks SET {sets} WHERE {where}", params)
        return cur.rowcount == 1

    async def take_over(self, task_id: str, from_engine: str | None, to_engine: str) -> bool:
        """Make `to_engine` the task's owner if it is live and still `from_engine`'s. Of
        two engines recovering the same task, exactly one gets True."""
        states = LIVE_STATES
        cur = await self._exec(
            f"UPDATE tasks SET engine_id = ?, updated_at = ? WHERE id = ? AND engine_id IS ? "
            f"AND state IN ({', '.join('?' for _ in states)})",
            [to_engine, time.time(), task_id, from_engine, *states],
        )
        return cur.rowcount == 1

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
    async def append_events(
        self,
        events: list[dict[str, Any]],
        owner: str | None = None,
        owned: Collection[str] = (),
    ) -> Appended:
        """One transaction for the whole batch: this is what makes appends cheap.

        The store has the last word on numbering: an event whose seq another writer has
        already used for its task is stored under the next free one (see `renumbered`),
        so a task's numbers never repeat. Events of a task in `owned` whose row names an
        engine other than `owner` are refused (`lost`): that task was taken over.
        """
        if not events:
            return Appended()
        dumps = _DUMPS
        # The envelope has its own columns; `data` holds only the payload (smaller, faster).
        rows = [
            (
                clean(e["task_id"]),
                e["seq"],
                e["ts"],
                clean(e["type"]),
                clean_json(dumps({k: v for k, v in e.items() if k not in _ENVELOPE})),
            )
            for e in events
        ]
        mine = set(owned) if owner is not None else set()
        seqs = self._seqs
        return await self._write(
            lambda db: _append(db, rows, owner, mine, seqs), after=lambda done: seqs.keep(done)
        )

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
                to_json(detail),
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

    # -- learnings (agent/store/lessons.py, agent/learnings/) -----------------------------
    async def add_learnings(
        self,
        task_id: str | None,
        items: list[tuple[str, str]],
        *,
        origin: str = "local",
        workspace: str | None = None,
    ) -> list[dict[str, Any]]:
        """Each (category, text) taught by `task_id`, merged into the lesson that already
        says the same, or a new lesson: per item, its lesson id and whether it merged."""
        now = time.time()
        clean_items = [(category, clean(text)) for category, text in items]
        return await self._write(
            lambda db: lessons.save(
                db, task_id, clean_items, now, origin=origin, workspace=workspace
            )
        )

    async def learnings(
        self, query: str | None = None, limit: int = 500, state: str | None = None
    ) -> list[dict[str, Any]]:
        """One row per lesson, newest taught first: `taught` (how many teachings it merges),
        `task_ids` (who taught it, oldest first), `said` (their own words), `uses` (tasks
        given it, plus uses counted before those were recorded); `task_id` is the source."""
        where, params = [], []
        if query:
            where.append("s.text LIKE ?")
            params.append(f"%{query}%")
        if state:
            where.append("s.state = ?")
            params.append(state)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._all(lessons.WITH_TEACHINGS.format(where=clause), [*params, limit])
        given = {
            r[0]: r[1]
            for r in await self._all(
                "SELECT lesson_id, COUNT(*) FROM lesson_uses WHERE given = 1 GROUP BY lesson_id"
            )
        }
        out = []
        for r in rows:
            item = dict(r)
            item["task_id"] = item["source_task"]
            item["last_at"] = item["last_taught_at"]
            item["pinned"] = bool(item["pinned"])
            item["task_ids"] = list(dict.fromkeys(t for t in json.loads(item["task_ids"]) if t))
            item["said"] = [t for t in json.loads(item["said"]) if t is not None]
            item["given"] = int(given.get(item["id"], 0))
            item["uses"] = int(item.pop("legacy_uses")) + item["given"]
            out.append(item)
        return out

    async def mark_learnings_used(self, ids: list[int]) -> None:
        """Count a use of each lesson without a task (kept for callers of old)."""
        if ids:
            await self._write(
                lambda db: db.executemany(
                    "UPDATE learnings SET uses = uses + 1 WHERE id = "
                    "(SELECT MIN(id) FROM learnings WHERE lesson_id = ?)",
                    [(i,) for i in ids],
                )
            )

    async def lessons_changed_since(self, since: float) -> list[dict[str, Any]]:
        """Lessons changed (taught, edited, pinned, retired...) at or after `since`."""
        rows = await self._all(
            f"SELECT {lessons.LESSON_COLUMNS} FROM lessons AS s WHERE s.changed_at >= ? "
            "ORDER BY s.changed_at, s.id",
            [since],
        )
        return [dict(r) for r in rows]

    async def lesson_outcomes(
        self,
        ids: Collection[int] | None = None,
        since_restore: bool = False,
        min_score: float = 0.0,
    ) -> list[dict[str, Any]]:
        """(lesson_id, given, state, n): how the tasks each lesson was relevant to (at least
        `min_score`) ended. `since_restore`: only tasks after the lesson's last restore."""
        where, params = ["u.score >= ?"], [min_score]
        if ids is not None:
            if not ids:
                return []
            where.append(f"u.lesson_id IN ({', '.join('?' for _ in ids)})")
            params += list(ids)
        if since_restore:
            where.append(
                "u.created_at >= COALESCE((SELECT restored_at FROM lessons AS s "
                "WHERE s.id = u.lesson_id), 0)"
            )
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return [dict(r) for r in await self._all(lessons.OUTCOMES.format(where=clause), params)]

    async def lessons_given_to(self, per_lesson: int = 20) -> list[dict[str, Any]]:
        """The latest tasks each lesson was given to, with their state."""
        rows = await self._all(lessons.GIVEN_TO.format(more=""), [per_lesson])
        return [dict(r) for r in rows]

    async def record_lesson_selection(
        self, task_id: str, workspace: str, holdout: bool, rows: list[tuple[int, bool, float]]
    ) -> None:
        now = time.time()
        await self._write(
            lambda db: lessons.record_selection(db, task_id, workspace, holdout, rows, now)
        )

    async def task_learnings(self, task_id: str) -> dict[str, Any] | None:
        """Whether the task was a holdout, and the lessons relevant to it (given or not)."""
        row = await self._one("SELECT * FROM task_learnings WHERE task_id = ?", [task_id])
        if row is None:
            return None
        uses = await self._all(
            "SELECT lesson_id, given, score FROM lesson_uses WHERE task_id = ? "
            "ORDER BY score DESC",
            [task_id],
        )
        return {**dict(row), "holdout": bool(row["holdout"]), "lessons": [dict(u) for u in uses]}

    async def change_lesson(
        self, lesson_id: int, action: str, by: str, text: str = "", reason: str = ""
    ) -> dict[str, Any]:
        now = time.time()
        text, reason = clean(text), clean(reason)
        return await self._write(
            lambda db: lessons.change(db, lesson_id, action, by, now, text, reason)
        )

    async def retire_lesson_if_active(
        self, lesson_id: int, reason: str, by: str, since: float | None
    ) -> bool:
        now = time.time()
        return await self._write(
            lambda db: lessons.retire_if_active(db, lesson_id, reason, by, now, since)
        )

    async def lesson_counts(self) -> dict[str, int]:
        """Distinct learnings (lessons) by state, and the teachings merged into them."""
        row = await self._one(
            f"SELECT (SELECT COUNT(*) FROM lessons WHERE {lessons.TAUGHT}) AS lessons, "
            f"(SELECT COUNT(*) FROM lessons WHERE state = 'active' AND {lessons.TAUGHT}) "
            "AS active, "
            f"(SELECT COUNT(*) FROM lessons WHERE state = 'retired' AND {lessons.TAUGHT}) "
            "AS retired, "
            f"(SELECT COUNT(*) FROM lessons WHERE pinned = 1 AND {lessons.TAUGHT}) AS pinned, "
            "(SELECT COUNT(*) FROM learnings WHERE lesson_id IS NOT NULL) AS taught"
        )
        counts = {k: int(v or 0) for k, v in dict(row).items()} if row else {}
        counts["merged"] = max(0, counts.get("taught", 0) - counts.get("lessons", 0))
        return counts

    # -- commands (cross-process control) --------------------------------------------------
    async def add_command(
        self, kind: str, task_id: str | None = None, payload: dict[str, Any] | None = None
    ) -> int:
        cur = await self._exec(
            "INSERT INTO commands (kind, task_id, payload, created_at) VALUES (?, ?, ?, ?)",
            [kind, task_id, to_json(payload or {}), time.time()],
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
        """The engine's row, and the lock that proves it alive for as long as this store
        stays open in this process (agent/store/liveness.py)."""
        try:
            self.engine_locks.hold(engine_id)
        except OSError as exc:
            raise StoreError(
                f"store {self.path}: cannot take engine lock in {self.engine_locks.dir}: "
                f"{exc.strerror or exc}"
            ) from None
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

    def engine_alive(self, row: dict[str, Any]) -> bool:
        """Proven: the engine's lock is held (agent/store/liveness.py)."""
        return self.engine_locks.alive(row)

    async def remove_engine(self, engine_id: str) -> None:
        """This process's engine leaving (its lock is let go after the row is gone), or
        a dead one's row and lock file cleared away."""
        try:
            await self._exec("DELETE FROM engines WHERE id = ?", [engine_id])
        except BaseException:
            self.engine_locks.release(engine_id, unlink=False)
            raise
        self.engine_locks.release(engine_id)
        self.engine_locks.forget(engine_id)

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
            [key, to_json(value)],
        )

    # -- raw access for small modules (audit, metrics) -------------------------------------
    async def fetch(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._all(sql, params)]

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        cur = await self._exec(sql, params)
        return int(cur.lastrowid or 0)

    async def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` as one write transaction (in the writer's thread): all of
        it is stored, or none. `work` must not await, and should be quick."""
        return await self._write(work)

    async def create_function(self, name: str, n_args: int, fn: Callable[..., Any]) -> None:
        """A Python function SQL can call in writes (the audit chain's hash)."""
        if self._w is None or self._executor is None:
            return
        writer = self._w
        await asyncio.get_running_loop().run_in_executor(
            self._executor,
            lambda: writer.create_function(name, n_args, fn, deterministic=True),
        )


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _append(
    db: sqlite3.Connection,
    rows: list[tuple[Any, ...]],
    owner: str | None,
    owned: set[str],
    known: _LastSeqs,
) -> Appended:
    """In the writer's transaction: refuse taken-over tasks, number after what is stored."""
    done = Appended()
    tasks = list(dict.fromkeys(r[0] for r in rows))
    for chunk in _chunks([t for t in tasks if t in owned]):
        marks = ", ".join("?" * len(chunk))
        for task_id, engine_id in db.execute(
            f"SELECT id, engine_id FROM tasks WHERE id IN ({marks})", chunk
        ):
            if engine_id is not None and engine_id != owner:
                done.lost.add(task_id)
    known.check(db)
    last = done.last
    for task_id in tasks:
        seq = known.seqs.get(task_id)
        if seq is None:
            row = db.execute("SELECT MAX(seq) FROM events WHERE task_id = ?", [task_id]).fetchone()
            seq = row[0] or 0
        last[task_id] = seq
    keep = []
    for i, row in enumerate(rows):
        task_id = row[0]
        if task_id in done.lost:
            continue
        before = last[task_id]
        if row[1] <= before:  # taken by another writer (or twice in this batch): next free
            row = (task_id, before + 1, *row[2:])
            done.renumbered[i] = before + 1
        last[task_id] = row[1]
        keep.append(row)
    db.executemany(_INSERT_EVENT, keep)
    return done


def _event(row: sqlite3.Row, skip: int = 0) -> dict[str, Any]:
    task_id, seq, ts, type_, data = tuple(row)[skip:]
    return {"task_id": task_id, "seq": seq, "ts": ts, "type": type_, **json.loads(data)}


def _approval(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    a = dict(row)
    a["detail"] = json.loads(a["detail"] or "{}")
    return a
