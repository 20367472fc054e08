"""Append-only, hash-chained audit log in the store's `audit` table.

    await append(store, actor, action, task_id, detail)   # actor: "engine", "operator", ...
    detail = {"step": 3, "tool": "execute_bash", "args": call_args(args)}   # capped
    ok, message = await verify(store)   # (True, "N records verified") or (False, why)

Each record's `hash` is sha256(prev_hash + canonical JSON of {id, ts, actor, action,
task_id, detail}); `prev_hash` is the hash of the record before it ("" for the first). So an
edited field breaks that record's hash, a recomputed hash breaks the next record's link, a
deleted row leaves an id gap, and a cut-off tail shows in sqlite_sequence. Tamper-evident,
not tamper-proof: someone who rewrites the whole chain from the edit on is not caught.

Atomicity: the previous hash is read and the new row written by ONE INSERT ... SELECT
statement, in the store's write transaction (BEGIN IMMEDIATE), so two engines on the same
store can never both extend the same record (no fork). The hash is computed by a Python
function registered on the store's writing connection.

Any str is recorded: a lone surrogate in a detail (an undecodable file name) is escaped
as the store escapes it (agent/store/text.py), before hashing, so verify sees what was hashed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import weakref
from typing import Any

from .store import Store
from .store.text import clean, clean_json

_FN = "livhana_audit_hash"
_PAGE = 5000
# One lock per Store object: appends from one process are serialised without blocking others.
_locks: weakref.WeakKeyDictionary[Store, asyncio.Lock] = weakref.WeakKeyDictionary()
_registered: weakref.WeakSet[Store] = weakref.WeakSet()

_INSERT = f"""
INSERT INTO audit (id, ts, actor, action, task_id, detail, prev_hash, hash)
SELECT n.id, ?1, ?2, ?3, ?4, ?5, n.prev, {_FN}(n.prev, n.id, ?1, ?2, ?3, ?4, ?5)
FROM (SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0),
                 COALESCE((SELECT MAX(id) FROM audit), 0)) + 1 AS id,
             COALESCE((SELECT hash FROM audit ORDER BY id DESC LIMIT 1), '') AS prev) AS n
"""


ARG_CHARS = 500  # per argument in a tool_call record; whole-file contents are summarised


def call_args(args: dict[str, Any]) -> dict[str, Any]:
    """What a tool was called with, for its `tool_call` record: every argument, strings cut
    to ARG_CHARS, a file's content as its size and hash (the diff holds the rest). The
    caller's audit() redacts it like every detail."""
    out: dict[str, Any] = {}
    for key, value in list((args or {}).items())[:20]:
        if key == "content" and isinstance(value, str):
            digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
            out[key] = f"<{len(value)} characters, sha256 {digest}>"
        elif isinstance(value, str):
            out[key] = value if len(value) <= ARG_CHARS else value[:ARG_CHARS] + "…[cut]"
        elif isinstance(value, bool | int | float) or value is None:
            out[key] = value
        else:
            text = canonical(value)
            out[key] = text if len(text) <= ARG_CHARS else text[:ARG_CHARS] + "…[cut]"
    return out


def canonical(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return clean_json(text)


def record_hash(
    prev: str, rid: int, ts: float, actor: str, action: str, task_id: str | None, detail: str
) -> str:
    """The chain hash. `detail` is the stored JSON text, hashed exactly as stored."""
    fields = {"id": rid, "ts": ts, "actor": actor, "action": action, "task_id": task_id,
              "detail": detail}  # fmt: skip
    return hashlib.sha256((prev + canonical(fields)).encode()).hexdigest()


async def _prepare(store: Store) -> asyncio.Lock:
    lock = _locks.setdefault(store, asyncio.Lock())
    if store not in _registered:
        await store.create_function(_FN, 7, record_hash)
        _registered.add(store)
    return lock


async def append(
    store: Store, actor: str, action: str, task_id: str | None, detail: dict[str, Any]
) -> None:
    lock = await _prepare(store)
    params = (time.time(), clean(actor), clean(action), task_id and clean(task_id), canonical(detail))
    async with lock:
        await store.execute(_INSERT, params)


async def verify(store: Store) -> tuple[bool, str]:
    prev_hash, prev_id, count = "", 0, 0
    while True:
        rows = await store.fetch(
            "SELECT id, ts, actor, action, task_id, detail, prev_hash, hash FROM audit "
            "WHERE id > ? ORDER BY id LIMIT ?",
            [prev_id, _PAGE],
        )
        for r in rows:
            rid = r["id"]
            if rid != prev_id + 1:
                gone = f"{prev_id + 1}" if rid == prev_id + 2 else f"{prev_id + 1}-{rid - 1}"
                return False, f"audit record {gone} is missing (id gap before record {rid})"
            if r["prev_hash"] != prev_hash:
                return False, f"audit chain broken at record {rid} (prev_hash does not match)"
            want = record_hash(
                r["prev_hash"], rid, r["ts"], r["actor"], r["action"], r["task_id"], r["detail"]
            )
            if r["hash"] != want:
                return False, f"audit record {rid} was altered (hash mismatch)"
            prev_hash, prev_id, count = r["hash"], rid, count + 1
        if len(rows) < _PAGE:
            break
    seq = await store.fetch("SELECT seq FROM sqlite_sequence WHERE name = 'audit'")
    if seq and int(seq[0]["seq"]) > prev_id:
        last = int(seq[0]["seq"])
        gone = f"{prev_id + 1}" if last == prev_id + 1 else f"{prev_id + 1}-{last}"
        return False, f"audit record {gone} is missing (log truncated after record {prev_id})"
    return True, f"{count} records verified"
