"""Opening a store file: its connections and pragmas, the migrations (one process at a
time), and SQLite's errors turned into one-line StoreErrors (locked, full, corrupt, newer
schema, read-only)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import aiosqlite

from ..errors import StoreError, StoreFull
from .schema import MIGRATIONS, SCHEMA_VERSION

LOCK_TIMEOUT_S = 5.0  # how long one write waits for another process's write to finish
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def is_busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES
    return "locked" in str(exc) or "busy" in str(exc)


def is_full(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF == sqlite3.SQLITE_FULL) or "disk is full" in str(exc)


def explain(path: Path, exc: BaseException, waited: float | None = None) -> StoreError:
    msg = str(exc)
    if is_full(exc):
        return StoreFull(f"store {path}: the disk is full; free some space")
    if is_busy(exc):
        wait = f"waited {waited:.1f}s" if waited is not None else "gave up at once"
        return StoreError(f"store {path} is locked by another process ({wait})")
    if "readonly" in msg or "read-only" in msg:
        return StoreError(f"store {path} is open read-only here ({msg})")
    if "not a database" in msg or "malformed" in msg or "corrupt" in msg:
        return StoreError(f"store {path} is corrupt ({msg}); move it aside to start fresh")
    return StoreError(f"store {path}: {msg}")


def mkdir_for(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"store: cannot create {path.parent}: {exc.strerror}") from None


def connect_writer(path: Path) -> sqlite3.Connection:
    """The connection every write goes through (blocking: it runs in the store's writer
    thread), migrated to the current schema. Other processes may open the same fresh file
    at the same moment: the WAL switch and the migrations wait for each other."""
    started = time.monotonic()
    db = None
    try:
        db = sqlite3.connect(
            str(path), timeout=LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        _retry_busy(lambda: db.execute("PRAGMA journal_mode=WAL"), started)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA cache_size=-65536")  # 64 MB: the event index for appends
        db.execute("PRAGMA mmap_size=268435456")
        # Fewer, larger WAL checkpoints: appends stay fast at 1M+ events.
        db.execute("PRAGMA wal_autocheckpoint=10000")
        _migrate(db, path, started)
    except sqlite3.Error as exc:
        if db is not None:
            db.close()
        raise explain(path, exc, time.monotonic() - started) from None
    except BaseException:
        if db is not None:
            db.close()
        raise
    return db


async def connect_reader(path: Path, readonly_file: bool = False) -> aiosqlite.Connection:
    """The connection reads go through (its own thread, so a write waiting for another
    process never holds up a read). `readonly_file`: open the file read-only (nothing
    here may write it: a full disk, a read-only mount)."""
    target, uri = (
        (f"file:{quote(str(path))}?mode=ro", True) if readonly_file else (str(path), False)
    )
    try:
        pending = aiosqlite.connect(target, timeout=LOCK_TIMEOUT_S, isolation_level=None, uri=uri)
        # A daemon thread: a store someone forgot to close must not keep the process
        # alive at exit (Python joins non-daemon threads forever). WAL keeps data safe.
        pending._thread.daemon = True  # noqa: SLF001
        db = await pending
    except sqlite3.Error as exc:
        raise explain(path, exc) from None
    db.row_factory = sqlite3.Row
    try:
        await db.execute("PRAGMA cache_size=-65536")  # 64 MB: keeps the event index hot
        await db.execute("PRAGMA mmap_size=268435456")  # memory-mapped reads
        await db.execute("PRAGMA query_only=1")  # reads only: writes go through the writer
    except sqlite3.Error as exc:
        await db.close()
        raise explain(path, exc) from None
    return db


async def empty_reader() -> aiosqlite.Connection:
    """A store with nothing in it, in memory: what a read of a store not made yet shows."""
    pending = aiosqlite.connect(":memory:", isolation_level=None)
    pending._thread.daemon = True  # noqa: SLF001
    db = await pending
    db.row_factory = sqlite3.Row
    for script in MIGRATIONS:
        for statement in _split(script):
            await db.execute(statement)
    await db.execute("PRAGMA query_only=1")
    return db


async def schema_version(db: aiosqlite.Connection) -> int:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


def check_not_newer(path: Path, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {path} has schema v{version}, newer than this livhana-cockpit "
            f"(v{SCHEMA_VERSION}); upgrade livhana-cockpit"
        )


def _migrate(db: sqlite3.Connection, path: Path, started: float) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    check_not_newer(path, version)
    if version == SCHEMA_VERSION:
        return
    # Read the version again under the write lock: another process may have migrated
    # since (two running the first migration at once: "table tasks already exists").
    _retry_busy(lambda: db.execute("BEGIN IMMEDIATE"), started)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        check_not_newer(path, version)
        for number in range(version, SCHEMA_VERSION):
            for statement in _split(MIGRATIONS[number]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={number + 1}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _retry_busy(step: Callable[[], object], started: float) -> None:
    """Run `step` until it is not refused as busy, backing off, for LOCK_TIMEOUT_S in all
    (some refusals come back at once, without SQLite's own wait)."""
    delay = 0.005
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() - started + delay > LOCK_TIMEOUT_S:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _split(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
