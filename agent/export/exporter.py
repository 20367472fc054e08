"""The BigQuery exporter: a background task of the engine, on when `[bigquery] project`
and `dataset` are set.

Every `interval_s` it
1. gathers new records of every source into the outbox (redacted; agent/export/outbox.py),
2. sends what waits there in batches (`insert_rows_json`, insertId = the row's `row_id`);
   a failure (BigQuery down, a 5xx, a timeout) leaves the rows queued and backs off
   (retry_base_s, doubling up to retry_max_s, with jitter); a row BigQuery rejects as
   invalid is set aside with the reason, so it cannot hold back the rest;
3. pulls teammates' learnings (agent/export/pull.py), and
4. records its status (settings `export.status`) for System Health.

It never blocks a task: BigQuery calls run in daemon threads, the store writes are a few
small transactions, and a hung BigQuery cannot hold the engine's close. One engine per
store exports at a time (a lease in settings, taken over when its holder's process is
provably gone), so two cockpits and a daemon do not send the same rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import logging
import random
import socket
import time
from typing import Any

from ..errors import StoreError
from . import outbox, pull
from .sources import SOURCES, Host, Source, timestamp
from .warehouse import PULL_COLUMNS, Warehouse, blocking

log = logging.getLogger(__name__)
FIRST_DELAY_S = 2.0  # a short-lived command (approve, cancel) exits before any export
GATHER_PAGES = 20  # pages per source per tick: a long backlog is spread over ticks
PULL_EVERY = 4  # intervals between pulls of teammates' learnings
PULL_LIMIT = 1000
PULL_OVERLAP_S = 3600.0  # look back this far for rows a teammate's slow clock stamped early
PULL_KEY = "export.pull"
STATUS_EVERY_S = 60.0


def default_origin() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a container: the host still says where
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Exporter:
    def __init__(self, host: Host, warehouse: Warehouse | None = None) -> None:
        self.host = host
        self.cfg = host.config.bigquery
        self.store = host.store
        self.warehouse = warehouse or Warehouse(self.cfg)
        self.origin = self.cfg.origin.strip() or default_origin()
        self.failures = 0
        self.backoff_until = 0.0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_sent_at: float | None = None
        self.last_ok_at: float | None = None  # BigQuery last answered a send or a pull
        self.last_pull_at: float | None = None
        self.pulled = 0
        self.ticks = 0
        self._ready: set[str] = set()  # tables known to exist with today's schema
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._saved: dict[str, Any] = {}
        self._saved_at = 0.0
        self._common: outbox.Common | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bigquery-export")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):  # a closing store: the lease reads as dead anyway
            await self._release()

    def wake(self) -> None:
        """Tick now (a test, or the operator asking for a flush)."""
        self._wake.set()

    async def _run(self) -> None:
        await self._sleep(min(self.cfg.interval_s, FIRST_DELAY_S))
        while True:
            try:
                if await self._lease():
                    await self.tick()
            except asyncio.CancelledError:
                raise
            except StoreError as exc:  # a locked or full store: the next tick tries again
                log.warning("bigquery export: %s", exc)
            except Exception as exc:  # never takes the engine down; shown in System Health
                log.exception("bigquery export failed")
                self._failed(f"{type(exc).__name__}: {exc}")
            await self._sleep(self.cfg.interval_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    # -- one tick --------------------------------------------------------------------------
    async def tick(self) -> None:
        self.ticks += 1
        await self.gather()
        if time.time() >= self.backoff_until and await self.send() and self._pull_due():
            await self.pull()
        if self.ticks % 100 == 1:
            await outbox.purge(self.store)
        await self._save_status()

    async def common(self) -> outbox.Common:
        if self._common is None:
            self._common = outbox.Common(await outbox.machine_id(self.store), self.origin)
            self.host.machine_id = self._common.machine_id
        return self._common

    async def gather(self) -> int:
        """Every source's new records into the outbox: how many rows were queued."""
        common = await self.common()
        queued = 0
        for source in list(SOURCES.values()):
            cursor = await outbox.cursor(self.store, source.name)
            for _ in range(GATHER_PAGES):
                got = await source.gather(self.host, cursor, self.cfg.batch_rows)
                for record in got.records:  # never a secret, whatever the record holds
                    record.row = self.host.redact(record.row)
                queued += await outbox.enqueue(self.store, source.name, got.records, got.cursor,
                                               changing=source.changing, common=common)  # fmt: skip
                cursor = got.cursor if got.cursor is not None else cursor
                if not got.more:
                    break
        return queued

    async def send(self) -> bool:
        """Send what waits, a batch at a time. False when BigQuery failed (backing off)."""
        while True:
            batch = await outbox.due(self.store, self.cfg.batch_rows)
            if not batch:
                return True
            groups: dict[str, list[dict[str, Any]]] = {}
            for row in batch:
                groups.setdefault(row["source"], []).append(row)
            for name, rows in groups.items():
                source = SOURCES.get(name)
                if source is None:  # a source no longer registered: say so, keep the rows
                    await outbox.mark_rejected(self.store, {r["id"]: f"no source {name!r}"
                                                            for r in rows})  # fmt: skip
                    continue
                if not await self._send(source, rows):
                    return False
            if len(batch) < self.cfg.batch_rows:
                return True

    async def _send(self, source: Source, rows: list[dict[str, Any]]) -> bool:
        from ..gcp import error_text

        ids = [r["id"] for r in rows]
        now = time.time()
        # Redacted again: a secret stored since the row was queued is caught too.
        payload = [self.host.redact({**r["row"], "sent_at": timestamp(now)}) for r in rows]
        row_ids = [r["row"]["row_id"] for r in rows]
        try:
            if source.name not in self._ready:
                await blocking(self.warehouse.ensure_table, source)
                self._ready.add(source.name)
            errors = await blocking(self.warehouse.insert, source, payload, row_ids)
        except Exception as exc:
            if type(exc).__name__ == "NotFound":  # the table went away: make it next time
                self._ready.discard(source.name)
            message = error_text(exc)
            await outbox.mark_failed(self.store, ids, message)
            self._failed(f"{source.name}: {message}")
            return False
        rejected: dict[int, str] = {}
        for error in errors:
            index = int(error.get("index", -1))
            found = [e for e in error.get("errors") or [] if e.get("reason") != "stopped"]
            if 0 <= index < len(rows) and found:
                rejected[rows[index]["id"]] = "; ".join(
                    f"{e.get('reason')}: {e.get('message')}" for e in found)[:500]
        stopped = {int(e.get("index", -1)) for e in errors} - {
            i for i, r in enumerate(rows) if r["id"] in rejected}
        sent = [r["id"] for i, r in enumerate(rows) if i not in stopped and r["id"] not in rejected]
        await outbox.mark_sent(self.store, sent)
        await outbox.mark_rejected(self.store, rejected)
        if rejected:
            first = next(iter(rejected.values()))
            self._note(f"{source.name}: {len(rejected)} row(s) rejected: {first}")
        self.last_sent_at = self.last_ok_at = now
        self.failures, self.backoff_until = 0, 0.0
        return True

    def _pull_due(self) -> bool:
        if not self.cfg.pull_learnings:
            return False
        return self.last_pull_at is None or (
            time.time() - self.last_pull_at >= self.cfg.interval_s * PULL_EVERY)

    async def pull(self) -> int:
        """Teammates' learnings since the last pull: how many changed here."""
        from ..gcp import error_text

        state = await self.store.get_setting(PULL_KEY, {}) or {}
        since = float(state.get("since") or 0.0)
        since = since if state.get("full") else max(0.0, since - PULL_OVERLAP_S)
        common = await self.common()
        try:
            if "learnings" not in self._ready and "learnings" in SOURCES:
                await blocking(self.warehouse.ensure_table, SOURCES["learnings"])
                self._ready.add("learnings")
            rows = await blocking(self.warehouse.pull_learnings, common.machine_id, since,
                                  PULL_LIMIT)  # fmt: skip
        except Exception as exc:
            self.last_pull_at = time.time()  # tried: the backoff says when again
            self._failed(f"pulling learnings: {error_text(exc)}")
            return 0
        rows = [{k: r.get(k) for k in PULL_COLUMNS} for r in rows]
        changed = await pull.store_pulled(self.store, rows, self.host.redact)
        newest = max((float(r["sent_at"]) for r in rows if r.get("sent_at")), default=0.0)
        await self.store.set_setting(PULL_KEY, {"since": max(newest, float(state.get("since")
                                                                           or 0.0)),
                                                "full": len(rows) >= PULL_LIMIT})  # fmt: skip
        self.pulled += changed
        self.last_pull_at = self.last_ok_at = time.time()
        self.failures, self.backoff_until = 0, 0.0
        return changed

    # -- failures and status ---------------------------------------------------------------
    def _failed(self, message: str) -> None:
        self.failures += 1
        delay = min(self.cfg.retry_base_s * 2 ** (self.failures - 1), self.cfg.retry_max_s)
        self.backoff_until = time.time() + delay * random.uniform(0.75, 1.0)
        self._note(message)
        log.warning("bigquery export: %s (retry in %.0f s)", message, delay)

    def _note(self, message: str) -> None:
        self.last_error = self.host.redact(message)
        self.last_error_at = time.time()

    def status(self) -> dict[str, Any]:
        return {"engine": self.host.engine_id, "origin": self.origin,
                "last_error": self.last_error, "last_error_at": self.last_error_at,
                "last_sent_at": self.last_sent_at, "last_ok_at": self.last_ok_at,
                "failures": self.failures,
                "backoff_until": self.backoff_until or None, "pulled": self.pulled,
                "last_pull_at": self.last_pull_at}  # fmt: skip

    async def _save_status(self) -> None:
        status = self.status()
        now = time.time()
        if status == self._saved and now - self._saved_at < STATUS_EVERY_S:
            return
        await self.store.set_setting(outbox.STATUS_KEY, {**status, "saved_at": now})
        self._saved, self._saved_at = status, now

    # -- one exporter per store ------------------------------------------------------------
    async def _lease(self) -> bool:
        me = self.host.engine_id
        holder = (await self.store.get_setting(outbox.LEASE_KEY) or {}).get("engine")
        if holder == me:
            return True
        if holder:
            rows = await self.store.fetch("SELECT * FROM engines WHERE id = ?", [holder])
            if rows and self.store.engine_alive(rows[0]):
                return False

        def take(db: Any) -> bool:
            row = db.execute("SELECT value FROM settings WHERE key = ?",
                             [outbox.LEASE_KEY]).fetchone()  # fmt: skip
            now_holder = json.loads(row[0]).get("engine") if row else None
            if now_holder not in (None, holder):  # another engine took it meanwhile
                return False
            db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                       [outbox.LEASE_KEY, outbox.to_json({"engine": me, "since": time.time()})])
            return True

        return bool(await self.store.transaction(take))

    async def _release(self) -> None:
        me = self.host.engine_id
        holder = (await self.store.get_setting(outbox.LEASE_KEY) or {}).get("engine")
        if holder == me:
            await self.store.set_setting(outbox.LEASE_KEY, {})


async def export_status(store: Any, cfg: Any) -> dict[str, Any]:
    """What System Health shows: on or off, the lag (the age of the oldest record BigQuery
    does not have yet), what waits, what was set aside, the last error and the last send."""
    if not cfg.enabled:
        return {"enabled": False}
    counts = await outbox.stats(store)
    saved = await store.get_setting(outbox.STATUS_KEY, {}) or {}
    now = time.time()
    oldest = counts.get("oldest")
    return {"enabled": True, "project": cfg.project, "dataset": cfg.dataset,
            "pending": int(counts.get("pending") or 0),
            "rejected": int(counts.get("rejected") or 0),
            "lag_s": round(now - float(oldest), 1) if oldest else 0.0,
            "last_sent_at": counts.get("last_sent") or saved.get("last_sent_at"),
            "last_error": saved.get("last_error"), "last_error_at": saved.get("last_error_at"),
            "last_ok_at": saved.get("last_ok_at"),
            "backoff_until": saved.get("backoff_until"), "engine": saved.get("engine"),
            "pulled": saved.get("pulled"), "checked_at": saved.get("saved_at")}  # fmt: skip
