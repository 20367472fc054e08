"""The export's local outbox (store table `export_outbox`, migration 3): rows wait here,
redacted, until BigQuery has them. Nothing is lost while BigQuery is unreachable; a row is
queued once however often its record is gathered (UNIQUE (source, row_key)), and marked
sent only when BigQuery said it stored it.

Queuing a gathered page, its digests and the source's cursor is one transaction: a crash
in between gathers the page again and queues nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..store import Store, to_json
from .sources import Record, timestamp

MACHINE_KEY = "export.machine_id"
STATUS_KEY = "export.status"
LEASE_KEY = "export.lease"
KEEP_SENT_S = 86_400.0  # sent rows stay a day (what was sent, for a look), then go


async def machine_id(store: Store) -> str:
    """This store's id in the shared dataset (made once; a copied store should be given a
    new one by deleting the setting)."""
    found = await store.get_setting(MACHINE_KEY)
    if found:
        return str(found)
    fresh = uuid.uuid4().hex[:16]

    def make(db: sqlite3.Connection) -> str:
        db.execute("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)",
                   [MACHINE_KEY, json.dumps(fresh)])  # fmt: skip
        return str(json.loads(db.execute("SELECT value FROM settings WHERE key = ?",
                                         [MACHINE_KEY]).fetchone()[0]))  # fmt: skip

    return await store.transaction(make)


def digest(row: dict[str, Any]) -> str:
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


async def cursor(store: Store, source: str) -> str | None:
    rows = await store.fetch("SELECT cursor FROM export_cursors WHERE source = ?", [source])
    return rows[0]["cursor"] if rows else None


@dataclass
class Common:
    machine_id: str
    origin: str


async def enqueue(
    store: Store, source: str, records: list[Record], new_cursor: str | None, *,
    changing: bool, common: Common,
) -> int:
    """Queue the gathered records (already redacted) and move the cursor: how many rows
    were queued. A changing source's record is queued only when it differs from what was
    last queued for its key, as a new version (`key@digest`)."""
    now = time.time()
    prepared = []
    for rec in records:
        d = digest(rec.row)
        key = f"{rec.key}@{d[:16]}" if changing else rec.key
        row = {"row_id": f"{common.machine_id}:{source}:{key}", "machine_id": common.machine_id,
               "origin": common.origin, "recorded_at": timestamp(rec.ts), **rec.row}  # fmt: skip
        prepared.append((rec.key, d, key, to_json(row), rec.ts))

    def work(db: sqlite3.Connection) -> int:
        queued = 0
        for rec_key, d, key, row, ts in prepared:
            if changing:
                old = db.execute("SELECT digest FROM export_digests WHERE source = ? AND key = ?",
                                 [source, rec_key]).fetchone()  # fmt: skip
                if old is not None and old[0] == d:
                    continue
                db.execute("INSERT OR REPLACE INTO export_digests (source, key, digest) "
                           "VALUES (?, ?, ?)", [source, rec_key, d])  # fmt: skip
            cur = db.execute(
                "INSERT OR IGNORE INTO export_outbox (source, row_key, row, record_ts, created_at) "
                "VALUES (?, ?, ?, ?, ?)", [source, key, row, ts, now])  # fmt: skip
            queued += cur.rowcount
        if new_cursor is not None:
            db.execute("INSERT OR REPLACE INTO export_cursors (source, cursor) VALUES (?, ?)",
                       [source, new_cursor])  # fmt: skip
        return queued

    return await store.transaction(work)


async def due(store: Store, limit: int) -> list[dict[str, Any]]:
    """Rows waiting for BigQuery, oldest first."""
    rows = await store.fetch(
        "SELECT id, source, row_key, row, record_ts, attempts FROM export_outbox "
        "WHERE sent_at IS NULL AND rejected IS NULL ORDER BY id LIMIT ?", [limit])  # fmt: skip
    for r in rows:
        r["row"] = json.loads(r["row"])
    return rows


def _marks(ids: list[int]) -> str:
    return ", ".join("?" for _ in ids)


async def mark_sent(store: Store, ids: list[int]) -> None:
    if ids:
        await store.execute(f"UPDATE export_outbox SET sent_at = ?, last_error = NULL "
                            f"WHERE id IN ({_marks(ids)})", [time.time(), *ids])  # fmt: skip


async def mark_failed(store: Store, ids: list[int], error: str) -> None:
    if ids:
        await store.execute(f"UPDATE export_outbox SET attempts = attempts + 1, last_error = ? "
                            f"WHERE id IN ({_marks(ids)})", [error, *ids])  # fmt: skip


async def mark_rejected(store: Store, reasons: dict[int, str]) -> None:
    """Rows BigQuery refused as invalid: kept (with why) but never sent again, so one bad
    row cannot hold back every row after it."""
    if reasons:
        await store.transaction(lambda db: db.executemany(
            "UPDATE export_outbox SET rejected = ?, attempts = attempts + 1 WHERE id = ?",
            [(why, i) for i, why in reasons.items()]))  # fmt: skip


async def purge(store: Store, now: float | None = None) -> None:
    cutoff = (now or time.time()) - KEEP_SENT_S
    await store.execute("DELETE FROM export_outbox WHERE sent_at IS NOT NULL AND sent_at < ?",
                        [cutoff])  # fmt: skip


async def stats(store: Store) -> dict[str, Any]:
    """Pending and rejected counts, the oldest waiting record's time, the last send."""
    row = (await store.fetch(
        "SELECT (SELECT COUNT(*) FROM export_outbox WHERE sent_at IS NULL AND rejected IS NULL) "
        "AS pending, (SELECT MIN(record_ts) FROM export_outbox WHERE sent_at IS NULL AND "
        "rejected IS NULL) AS oldest, (SELECT COUNT(*) FROM export_outbox WHERE rejected IS NOT "
        "NULL) AS rejected, (SELECT MAX(sent_at) FROM export_outbox) AS last_sent, "
        "(SELECT COUNT(*) FROM export_outbox WHERE sent_at IS NOT NULL) AS sent"))[0]  # fmt: skip
    return dict(row)
