"""The store's side of learnings (agent/learnings/): lessons, their teachings, their uses.

A lesson is one piece of advice. Every time a task teaches something, a `learnings` row
keeps that teaching as it was said, by whom, and points at its lesson: the lesson that
already says the same (agent/learnings/similar.py: same category and workspace, similar
enough), or a new one. The merge is decided inside the write transaction, so two
processes teaching the same thing at once still make one lesson.

The functions taking a `sqlite3.Connection` run in the store's writer thread, inside
one transaction (Store._write); the SQL strings are for the reader.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..errors import UsageError

ACTIVE, RETIRED = "active", "retired"
STATES = (ACTIVE, RETIRED)
ACTIONS = ("pin", "unpin", "edit", "retire", "restore")
MAX_TEXT = 500  # what the loop keeps of one learning (agent/loop.py parse_learnings)

LESSON_COLUMNS = (
    "s.id, s.category, s.text, s.workspace, s.source_task, s.origin, s.state, s.pinned, "
    "s.reason, s.changed_by, s.edited, s.created_at, s.last_taught_at, s.changed_at, "
    "s.restored_at"
)

# A lesson no one teaches any more (a teammate's, withdrawn: agent/export/pull.py) is
# kept, retired, for the relevance index to drop, and is no longer listed or counted.
TAUGHT = "EXISTS (SELECT 1 FROM learnings AS t WHERE t.lesson_id = lessons.id)"

# Each lesson with its teachings (oldest first) and the uses counted before uses were
# recorded per task (`learnings.uses`, a plain counter in stores made before this).
WITH_TEACHINGS = (
    f"SELECT {LESSON_COLUMNS}, COUNT(l.id) AS taught, COALESCE(SUM(l.uses), 0) AS legacy_uses, "
    "json_group_array(l.task_id) AS task_ids, json_group_array(l.text) AS said "
    "FROM lessons AS s LEFT JOIN (SELECT * FROM learnings ORDER BY id) AS l "
    "ON l.lesson_id = s.id {where} GROUP BY s.id HAVING COUNT(l.id) > 0 "
    "ORDER BY s.last_taught_at DESC, s.id DESC "
    "LIMIT ?"
)

# How the tasks a lesson was relevant to ended, given it or not.
OUTCOMES = (
    "SELECT u.lesson_id, u.given, COALESCE(t.state, '') AS state, COUNT(*) AS n "
    "FROM lesson_uses AS u LEFT JOIN tasks AS t ON t.id = u.task_id {where} "
    "GROUP BY u.lesson_id, u.given, t.state"
)

# The latest tasks each lesson was given to.
GIVEN_TO = (
    "SELECT lesson_id, task_id, state FROM (SELECT u.lesson_id, u.task_id, "
    "COALESCE(t.state, '') AS state, ROW_NUMBER() OVER "
    "(PARTITION BY u.lesson_id ORDER BY u.created_at DESC, u.task_id) AS rn "
    "FROM lesson_uses AS u LEFT JOIN tasks AS t ON t.id = u.task_id WHERE u.given = 1 {more}) "
    "WHERE rn <= ?"
)


def save(
    db: sqlite3.Connection,
    task_id: str | None,
    items: list[tuple[str, str]],
    now: float,
    *,
    origin: str = "local",
    workspace: str | None = None,
    merge_at: float | None = None,
) -> list[dict[str, Any]]:
    """Record each (category, text) taught by `task_id`: merged into the lesson of the same
    category and workspace that says the same (the most similar, at least `merge_at`),
    else a new lesson. Returns, per item, its lesson id and whether it was merged."""
    from ..learnings.similar import MERGE_AT, similarity  # the stemmer loads on first use

    merge_at = MERGE_AT if merge_at is None else merge_at
    if workspace is None and task_id:
        row = db.execute("SELECT workspace FROM tasks WHERE id = ?", [task_id]).fetchone()
        workspace = row[0] if row else None
    known: dict[str, list[tuple[int, str]]] = {}
    out = []
    for category, text in items:
        if category not in known:
            known[category] = [
                (int(r[0]), str(r[1]))
                for r in db.execute(
                    "SELECT id, text FROM lessons WHERE category = ? AND workspace IS ? "
                    "ORDER BY id",
                    [category, workspace],
                )
            ]
        best_id, best = None, 0.0
        for lesson_id, said in known[category]:
            score = similarity(text, said)
            if score > best:
                best_id, best = lesson_id, score
        merged = best_id is not None and best >= merge_at
        if merged:
            lesson_id = best_id
            db.execute(
                "UPDATE lessons SET last_taught_at = ?, changed_at = ? WHERE id = ?",
                [now, now, lesson_id],
            )
        else:
            cur = db.execute(
                "INSERT INTO lessons (category, text, workspace, source_task, origin, "
                "created_at, last_taught_at, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [category, text, workspace, task_id, origin, now, now, now],
            )
            lesson_id = int(cur.lastrowid or 0)
            known[category].append((lesson_id, text))
        db.execute(
            "INSERT INTO learnings (task_id, category, text, created_at, lesson_id) "
            "VALUES (?, ?, ?, ?, ?)",
            [task_id, category, text, now, lesson_id],
        )
        out.append({"lesson_id": lesson_id, "category": category, "text": text,
                    "merged": merged, "similarity": round(best, 3)})
    return out


def record_selection(
    db: sqlite3.Connection,
    task_id: str,
    workspace: str,
    holdout: bool,
    rows: list[tuple[int, bool, float]],
    now: float,
) -> None:
    """What a task was given: (lesson id, given, relevance) for every lesson relevant to
    it, and whether it was a holdout."""
    db.execute(
        "INSERT OR REPLACE INTO task_learnings (task_id, workspace, holdout, created_at) "
        "VALUES (?, ?, ?, ?)",
        [task_id, workspace, int(holdout), now],
    )
    db.executemany(
        "INSERT OR REPLACE INTO lesson_uses (lesson_id, task_id, given, score, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [(lesson_id, task_id, int(given), score, now) for lesson_id, given, score in rows],
    )


def change(
    db: sqlite3.Connection,
    lesson_id: int,
    action: str,
    by: str,
    now: float,
    text: str = "",
    reason: str = "",
) -> dict[str, Any]:
    """The operator's (or the engine's) change to one lesson, checked against its current
    state in the same transaction. Returns the lesson's row as it is now."""
    row = db.execute("SELECT state, pinned, text FROM lessons WHERE id = ?", [lesson_id]).fetchone()
    if row is None:
        raise UsageError(f"no learning {lesson_id} (see `livhana-cockpit learnings`)")
    state, pinned, old_text = row[0], bool(row[1]), row[2]
    fields: dict[str, Any]
    if action == "pin":
        if state == RETIRED:
            raise UsageError(f"learning {lesson_id} is retired: restore it before pinning")
        if pinned:
            raise UsageError(f"learning {lesson_id} is already pinned")
        fields = {"pinned": 1}
    elif action == "unpin":
        if not pinned:
            raise UsageError(f"learning {lesson_id} is not pinned")
        fields = {"pinned": 0}
    elif action == "edit":
        text = " ".join(text.split())
        if not text:
            raise UsageError("the new text is empty: say what the learning should read")
        if len(text) > MAX_TEXT:
            raise UsageError(f"a learning holds at most {MAX_TEXT} characters, got {len(text)}")
        if text == old_text:
            raise UsageError(f"learning {lesson_id} already reads so: nothing changed")
        fields = {"text": text, "edited": 1}
    elif action == "retire":
        if state == RETIRED:
            raise UsageError(f"learning {lesson_id} is already retired")
        fields = {"state": RETIRED, "pinned": 0, "reason": reason or f"retired by {by}"}
    elif action == "restore":
        if state != RETIRED:
            raise UsageError(f"learning {lesson_id} is not retired")
        fields = {"state": ACTIVE, "reason": reason or f"restored by {by}", "restored_at": now}
    else:
        raise UsageError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    fields.update(changed_by=by, changed_at=now)
    sets = ", ".join(f"{k} = ?" for k in fields)
    db.execute(f"UPDATE lessons SET {sets} WHERE id = ?", [*fields.values(), lesson_id])
    found = db.execute(
        f"SELECT {LESSON_COLUMNS} FROM lessons AS s WHERE s.id = ?", [lesson_id]
    ).fetchone()
    names = [c.strip().removeprefix("s.") for c in LESSON_COLUMNS.split(",")]
    return dict(zip(names, found, strict=True))


def retire_if_active(
    db: sqlite3.Connection, lesson_id: int, reason: str, by: str, now: float,
    since: float | None,
) -> bool:
    """The automatic retirement: only a lesson still active, not pinned, and not restored
    by the operator after `since` (the evidence it was judged on) is retired."""
    cur = db.execute(
        "UPDATE lessons SET state = ?, reason = ?, changed_by = ?, changed_at = ? "
        "WHERE id = ? AND state = ? AND pinned = 0 AND restored_at IS ?",
        [RETIRED, reason, by, now, lesson_id, ACTIVE, since],
    )
    return cur.rowcount == 1
