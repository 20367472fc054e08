"""Opening a store file: the connection, its pragmas, the migrations, and SQLite's errors
turned into one-line StoreErrors (locked, corrupt, newer schema)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from ..errors import StoreError
from .schema import MIGRATIONS, SCHEMA_VERSION

LOCK_TIMEOUT_S = 5.0


def explain(path: Path, exc: BaseException) -> StoreError:
    msg = str(exc)
    if "locked" in msg or "busy" in msg:
        return StoreError(
            f"store {path} is locked by another process (waited {LOCK_TIMEOUT_S:.0f}s)"
        )
    if "not a database" in msg or "malformed" in msg or "corrupt" in msg:
        return StoreError(f"store {path} is corrupt ({msg}); move it aside to start fresh")
    return StoreError(f"store {path}: {msg}")


async def connect(path: Path) -> aiosqlite.Connection:
    """A connection to `path` (created if missing) at the current schema version."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"store: cannot create {path.parent}: {exc.strerror}") from None
    try:
        pending = aiosqlite.connect(str(path), timeout=LOCK_TIMEOUT_S, isolation_level=None)
        # A daemon thread: a store someone forgot to close must not keep the process
        # alive at exit (Python joins non-daemon threads forever). WAL keeps data safe.
        pending._thread.daemon = True  # noqa: SLF001
        db = await pending
    except sqlite3.Error as exc:
        raise explain(path, exc) from None
    db.row_factory = sqlite3.Row
    try:
        await _migrate(db, path)
    except sqlite3.Error as exc:
        await db.close()
        raise explain(path, exc) from None
    except StoreError:
        await db.close()
        raise
    return db


async def _migrate(db: aiosqlite.Connection, path: Path) -> None:
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=NORMAL")
    await db.execute("PRAGMA cache_size=-65536")  # 64 MB: keeps the event index hot
    # Fewer, larger WAL checkpoints and memory-mapped reads: appends stay fast at 1M+ events.
    await db.execute("PRAGMA wal_autocheckpoint=10000")
    await db.execute("PRAGMA mmap_size=268435456")
    await db.execute(f"PRAGMA busy_timeout={int(LOCK_TIMEOUT_S * 1000)}")
    async with db.execute("PRAGMA user_version") as cur:
        version = (await cur.fetchone())[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {path} has schema v{version}, newer than this livhana-cockpit "
            f"(v{SCHEMA_VERSION}); upgrade livhana-cockpit"
        )
    for number in range(version, SCHEMA_VERSION):
        await db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split(MIGRATIONS[number]):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version={number + 1}")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise


def _split(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
