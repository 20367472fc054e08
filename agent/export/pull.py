"""Teammates' learnings, pulled from the shared dataset into this store (so this machine's
agent is given them like its own), each marked with where it came from (`learning_origins`:
the teammate's user@host and machine id). The local store stays the local truth: a pulled
learning is a row in `learnings` with no task of ours, and is never exported back.

A teammate's learning changes as they use it: the newest version wins; one they retired is
removed here too.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ..store import Store, lessons, to_json
from .sources import TEXT_CAP

RETIRED = {"retired", "deleted"}
CATEGORIES = {"pattern", "improvement", "nextStep"}


def _clean(text: Any, cap: int = TEXT_CAP) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= cap else text[: cap - 1] + "…"


async def store_pulled(store: Store, rows: list[dict[str, Any]], redact: Any) -> int:
    """Bring the pulled rows in (one transaction): how many learnings were added, changed or
    removed here."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:  # oldest first: the newest version of each learning wins
        if row.get("learning_key") and row.get("text"):
            latest[str(row["learning_key"])] = row
    now = time.time()
    prepared = []
    for key, row in latest.items():
        category = str(row.get("category") or "pattern")
        detail = {k: row.get(k) for k in ("uses", "given_to", "success_with", "success_without",
                                          "state", "task_id", "effect")}  # fmt: skip
        prepared.append((key, str(row["row_id"]), str(row.get("state") or "active"),
                         category if category in CATEGORIES else "pattern",
                         redact(_clean(row["text"])), float(row.get("created_at") or now),
                         _clean(row.get("origin") or "unknown", 200),
                         _clean(row.get("machine_id") or "", 64), to_json(redact(detail))))  # fmt: skip

    def work(db: sqlite3.Connection) -> int:
        changed = 0
        for key, row_id, state, category, text, created, origin, machine, detail in prepared:
            found = db.execute("SELECT learning_id, remote_row FROM learning_origins "
                               "WHERE remote_key = ?", [key]).fetchone()  # fmt: skip
            if found is not None and found[1] == row_id:
                continue  # this version is here already
            if state in RETIRED:
                if found is not None:
                    lesson = db.execute("SELECT lesson_id FROM learnings WHERE id = ?",
                                        [found[0]]).fetchone()  # fmt: skip
                    db.execute("DELETE FROM learnings WHERE id = ?", [found[0]])
                    db.execute("DELETE FROM learning_origins WHERE learning_id = ?", [found[0]])
                    # Its lesson, if no one else taught it, is retired (never deleted: the
                    # engine's relevance index learns of changes by `changed_at`).
                    db.execute(
                        "UPDATE lessons SET state = 'retired', reason = ?, changed_by = ?, "
                        "changed_at = ? WHERE id = ? AND state = 'active' AND NOT EXISTS "
                        "(SELECT 1 FROM learnings WHERE lesson_id = lessons.id)",
                        [f"retired by {origin}, who taught it", origin, now,
                         lesson[0] if lesson else None])  # fmt: skip
                    changed += 1
                continue
            if found is None:
                # Through the lessons (agent/store/lessons.py): a teammate's advice that one
                # here already says is merged into it, and counts once.
                lessons.save(db, None, [(category, text)], now, origin=origin)
                learning_id = db.execute("SELECT MAX(id) FROM learnings").fetchone()[0]
                db.execute("UPDATE learnings SET created_at = ? WHERE id = ?",
                           [created, learning_id])  # when they learned it
                db.execute(
                    "INSERT INTO learning_origins (learning_id, origin, machine_id, remote_key, "
                    "remote_row, detail, pulled_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [learning_id, origin, machine, key, row_id, detail, now])  # fmt: skip
            else:
                db.execute("UPDATE learnings SET category = ?, text = ? WHERE id = ?",
                           [category, text, found[0]])  # fmt: skip
                # Its lesson says it in their new words, unless others taught it too or the
                # operator edited it here.
                db.execute(
                    "UPDATE lessons SET category = ?, text = ?, changed_at = ? "
                    "WHERE id = (SELECT lesson_id FROM learnings WHERE id = ?) AND edited = 0 "
                    "AND (SELECT COUNT(*) FROM learnings WHERE lesson_id = lessons.id) = 1",
                    [category, text, now, found[0]])  # fmt: skip
                db.execute("UPDATE learning_origins SET origin = ?, remote_row = ?, detail = ?, "
                           "pulled_at = ? WHERE learning_id = ?",
                           [origin, row_id, detail, now, found[0]])  # fmt: skip
            changed += 1
        return changed

    return await store.transaction(work) if prepared else 0


async def annotate(store: Store, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark each learning (as `store.learnings()` lists them) with the teammates it came
    from: `origin` (the first, None for our own) and `origins` (all)."""
    rows = await store.fetch(
        "SELECT l.category, l.text, o.origin FROM learning_origins AS o "
        "JOIN learnings AS l ON l.id = o.learning_id ORDER BY o.learning_id")  # fmt: skip
    by_lesson: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        by_lesson.setdefault((r["category"], r["text"]), []).append(r["origin"])
    for item in items:
        origins = list(dict.fromkeys(by_lesson.get((item.get("category"), item.get("text")), [])))
        item["origins"] = origins
        # A lesson one of our own tasks taught too is ours: `origins` still says who else.
        item["origin"] = origins[0] if origins and not item.get("task_ids") else None
    return items
