"""query_database: SQL against a configured database; read-only unless the operator approves.

SQLite: opened with `mode=ro`, so SQLite itself decides what writes (SQLITE_READONLY); only
then is the operator asked, and an approved script re-runs on a read-write connection. An
authorizer denies ATTACH (VACUUM INTO uses it too): it creates files even when read-only.
BigQuery: a dry run classifies the statement (statementType); anything but SELECT asks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

from ..config import DatabaseConfig
from ..errors import ToolError
from . import confine
from .base import ToolContext, ToolResult, string_arg, truncate

MAX_ROWS = 200
MAX_CELL = 80


class _WriteNeeded(Exception):
    """A statement tried to write on the read-only connection."""


def split_statements(sql: str) -> list[str]:
    """Statements of a script, using SQLite's own notion of where a statement ends."""
    out: list[str] = []
    buf = ""
    for ch in sql:
        buf += ch
        if ch == ";" and sqlite3.complete_statement(buf):
            out.append(buf)
            buf = ""
    if buf.strip():
        out.append(buf)
    return [s for s in out if s.strip().strip(";").strip()]


class _Stop:
    """A query runs in a worker thread, where cancelling the task cannot reach it: the
    task's stop calls this (registered with ctx.procs), which interrupts the SQLite
    statement at once and cancels a BigQuery job, so an approved write can never go on
    and commit after an emergency stop."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._job: Any = None

    def __call__(self) -> None:
        self.event.set()
        with self._lock:
            conn, job = self._conn, self._job
        if conn is not None:
            conn.interrupt()  # safe from another thread: that is what it is for
        if job is not None:  # an HTTP call: not on the event loop
            threading.Thread(target=_cancel_job, args=(job,), daemon=True).start()

    def attach(self, conn: sqlite3.Connection | None = None, job: Any = None) -> None:
        with self._lock:
            self._conn, self._job = conn, job
        if self.event.is_set() and (conn is not None or job is not None):
            self()  # stopped while it was being opened

    def check(self) -> None:
        if self.event.is_set():
            raise ToolError(STOPPED)


STOPPED = "stopped: the task was stopped; the query was interrupted and nothing was committed"
# The script runs in one transaction of ours, so its own transaction statements are dropped.
_TXN = re.compile(r"^\s*(?:BEGIN|COMMIT|END|ROLLBACK)\b(?!\s+TO\b)", re.I)


def _cancel_job(job: Any) -> None:
    with contextlib.suppress(Exception):
        job.cancel()


def _authorizer(action: int, *_: Any) -> int:
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _sqlite_run(
    path: Path, statements: list[str], writable: bool, timeout_s: float, stop: _Stop | None = None
) -> dict:
    stop = stop or _Stop()
    stop.check()
    uri = f"{path.resolve().as_uri()}?mode={'rw' if writable else 'ro'}"
    # isolation_level=None: we open the one transaction ourselves (DDL included), so a stop
    # or an error leaves nothing of the script behind.
    conn = sqlite3.connect(uri, uri=True, timeout=5, isolation_level=None, check_same_thread=False)
    stop.attach(conn=conn)
    deadline = time.monotonic() + timeout_s
    # Returning True aborts the statement: a runaway query cannot hold the task forever.
    conn.set_progress_handler(lambda: stop.event.is_set() or time.monotonic() > deadline, 10_000)
    conn.set_authorizer(_authorizer)
    result: dict[str, Any] = {"columns": [], "rows": [], "more": False, "affected": None}
    try:
        if writable:
            statements = [st for st in statements if not _TXN.match(st)]
            conn.execute("BEGIN")
        for stmt in statements:
            try:
                cur = conn.execute(stmt)
            except sqlite3.Error as exc:
                code = str(getattr(exc, "sqlite_errorname", ""))
                if code.startswith("SQLITE_READONLY"):
                    raise _WriteNeeded() from None
                if code == "SQLITE_AUTH" or "authoriz" in str(exc):  # our authorizer said no
                    raise ToolError("ATTACH, DETACH and VACUUM INTO are not allowed") from None
                if "interrupted" in str(exc):
                    stop.check()
                    raise ToolError(f"query timed out after {timeout_s:g}s") from None
                raise ToolError(f"SQLite error: {exc}") from None
            if cur.description:
                rows = cur.fetchmany(MAX_ROWS + 1)
                result.update(
                    columns=[d[0] for d in cur.description],
                    rows=rows[:MAX_ROWS],
                    more=len(rows) > MAX_ROWS,
                )
            elif cur.rowcount >= 0:
                result["affected"] = cur.rowcount
        if writable:
            stop.check()  # stopped between statements: roll back, never commit
            conn.execute("COMMIT")
    finally:
        stop.attach()
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        conn.close()
    return result


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    text = str(value).replace("\n", "\\n")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def format_table(columns: list[str], rows: list[Any], more: bool) -> str:
    if not columns:
        return "(no result set)"
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    note = f"({len(rows)} rows)"
    if more:
        note = f"(first {MAX_ROWS} rows shown; more rows were cut — add LIMIT or aggregate)"
    return "\n".join(lines + [note])


def _bq_client(cfg: DatabaseConfig) -> Any:
    from ..gcp import bigquery_client  # the keyring's service account, else ADC

    return bigquery_client(cfg.project, cfg.api_endpoint)


def _bq_job_config(client: Any, cfg: DatabaseConfig, dry_run: bool) -> Any:
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(dry_run=dry_run, use_query_cache=not dry_run)
    if cfg.dataset:  # unqualified table names resolve in the configured dataset
        ds = cfg.dataset
        config.default_dataset = ds if "." in ds else f"{client.project}.{ds}"
    return config


def _bq_statement_type(client: Any, cfg: DatabaseConfig, sql: str) -> str:
    job = client.query(sql, job_config=_bq_job_config(client, cfg, True))
    return job.statement_type or "UNKNOWN"


def _bq_run(
    client: Any, cfg: DatabaseConfig, sql: str, timeout_s: float, stop: _Stop | None = None
) -> dict:
    stop = stop or _Stop()
    stop.check()
    job = client.query(sql, job_config=_bq_job_config(client, cfg, False))
    stop.attach(job=job)  # a stop from now on cancels the job
    try:
        rows_iter = job.result(timeout=timeout_s, max_results=MAX_ROWS + 1)
    except Exception:
        stop.check()
        raise
    finally:
        stop.attach()
    rows = [tuple(r.values()) for r in rows_iter]
    columns = [f.name for f in rows_iter.schema or []]
    affected = job.num_dml_affected_rows
    return {
        "columns": columns,
        "rows": rows[:MAX_ROWS],
        "more": len(rows) > MAX_ROWS,
        "affected": affected,
    }


class QueryDatabase:
    name = "query_database"
    kind = "db"
    description = (
        "Run SQL against a configured database (SQLite file or BigQuery dataset). Read-only: "
        "statements that write need operator approval. Returns up to 200 rows as a table."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "sql": {"type": "string", "description": "the SQL to run"},
            "database": {"type": "string", "description": "a configured database name"},
        },
        "required": ["sql"],
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        sql = string_arg(args, "sql", limit=1_000_000) or ""
        name, cfg = _pick(ctx, args.get("database"))
        timeout = float(ctx.config.engine.command_timeout_s)
        wrote = False
        stop = _Stop()
        unregister = ctx.procs.on_stop(stop)
        try:
            if cfg.kind == "sqlite":
                path = _sqlite_path(ctx, cfg)
                statements = split_statements(sql)
                run = _sqlite_run
                try:
                    res = await asyncio.to_thread(run, path, statements, False, timeout, stop)
                except _WriteNeeded:
                    if not await _ask_write(ctx, name, sql, "sqlite"):
                        return _denied(ctx, name)
                    res = await asyncio.to_thread(run, path, statements, True, timeout, stop)
                    wrote = True
            elif cfg.kind == "bigquery":
                try:
                    client = await asyncio.to_thread(_bq_client, cfg)
                    kind = await asyncio.to_thread(_bq_statement_type, client, cfg, sql)
                    if kind != "SELECT":
                        if not await _ask_write(ctx, name, sql, kind):
                            return _denied(ctx, name)
                        wrote = True
                    res = await asyncio.to_thread(_bq_run, client, cfg, sql, timeout, stop)
                except ToolError:
                    raise
                except Exception as exc:  # google.api_core errors: show the API's own message
                    raise ToolError(f"BigQuery error: {getattr(exc, 'message', exc)}") from None
            else:
                raise ToolError(f"database {name!r} has unsupported kind {cfg.kind!r}")
        finally:
            unregister()
        text = format_table(res["columns"], res["rows"], res["more"])
        if res["affected"] is not None and not res["columns"]:
            text = f"{res['affected']} rows affected"
        return ToolResult(
            truncate(text),
            data={
                "database": name,
                "columns": res["columns"],
                "row_count": len(res["rows"]),
                "truncated": res["more"],
                "affected": res["affected"],
                "wrote": wrote,
            },
        )


def _pick(ctx: ToolContext, raw: object) -> tuple[str, DatabaseConfig]:
    dbs = ctx.config.databases
    if not dbs:
        raise ToolError("no databases configured (add [databases.<name>] to the config)")
    if raw in (None, ""):
        raw = next(iter(dbs))
    if not isinstance(raw, str) or raw not in dbs:
        raise ToolError(f"unknown database {raw!r}; configured: {', '.join(dbs)}")
    return raw, dbs[raw]


def _sqlite_path(ctx: ToolContext, cfg: DatabaseConfig) -> Path:
    path = Path(cfg.path).expanduser()
    if path.is_absolute():  # the operator's own file, wherever it is
        if not path.is_file():
            raise ToolError(f"SQLite database {cfg.path!r} not found")
        return path
    # Relative: a project file (a dev database in the repo), in the task's copy, which the
    # model may have replaced with a link. SQLite opens by name and follows links, for its
    # side files too (an approved write creates `-journal`): so the database must be a
    # regular file reached without leaving the tree, and no side file may be anything else.
    # (SQLite opens by name, after this check: a process of this task cannot race it, since
    # every command of a step is killed before the next tool runs.)
    root = confine.Root(ctx.root)
    try:
        place = confine.locate(root, cfg.path)
    except ToolError as exc:
        raise ToolError(f"SQLite database {exc}") from None  # exc names the path
    with place:
        if not place.is_file:
            raise ToolError(f"SQLite database {cfg.path!r} not found in the workspace")
        for suffix in ("-journal", "-wal", "-shm"):
            side = _lstat(place.fd, f"{place.name}{suffix}")
            if side is not None and not stat.S_ISREG(side.st_mode):
                raise ToolError(
                    f"SQLite database {cfg.path!r}: its side file {place.rel}{suffix} is "
                    "not a regular file (a link?): refused"
                )
        return Path(root.real, place.rel)


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


async def _ask_write(ctx: ToolContext, name: str, sql: str, kind: str) -> bool:
    detail = {"database": name, "sql": sql, "statement_type": kind}
    return await ctx.ask("db_write", f"write to database {name}: {sql.strip()[:200]}", detail)


def _denied(ctx: ToolContext, name: str) -> ToolResult:
    by = ctx.state.decided_by or "operator"  # who said no: the timeout, nobody, ...
    return ToolResult(
        f"denied by {by}: the statement writes to {name!r} and was not approved; "
        "nothing was changed",
        is_error=True,
        data={"database": name, "denied": True, "wrote": False},
    )


tool = QueryDatabase()
