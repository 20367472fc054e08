"""A task id as the operator types it: the whole id, or a unique prefix (like git), with a
one-line answer that says what to do when it names no task, several tasks, or is too
short to stay unique."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.errors import UsageError

if TYPE_CHECKING:
    from agent.store import Store

MIN_PREFIX = 4  # shorter prefixes would soon mean another task than they mean today
WHERE = "see `livhana-cockpit history` for every task's id"


async def resolve(store: Store, typed: str) -> str:
    """The full id `typed` names; UsageError (exit 2) otherwise, in one line."""
    typed = typed.strip()
    if not typed:
        raise UsageError(f"no task id given ({WHERE})")
    if await store.fetch("SELECT id FROM tasks WHERE id = ?", [typed]):
        return typed
    pattern = typed.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = await store.fetch(
        "SELECT id FROM tasks WHERE id LIKE ? ESCAPE '\\' ORDER BY created_at DESC LIMIT 4",
        [pattern],
    )
    if not rows:
        raise UsageError(f"no task '{typed}' ({WHERE})")
    if len(rows) > 1:
        count = (await store.fetch(
            "SELECT COUNT(*) AS n FROM tasks WHERE id LIKE ? ESCAPE '\\'", [pattern]
        ))[0]["n"]  # fmt: skip
        shown = ", ".join(r["id"] for r in rows[:3]) + (", …" if count > 3 else "")
        raise UsageError(f"ambiguous: {count} tasks start with {typed} ({shown}); "
                         "type more of the id")  # fmt: skip
    if len(typed) < MIN_PREFIX:
        raise UsageError(f"task id '{typed}' is too short: type at least {MIN_PREFIX} "
                         f"characters of it ({rows[0]['id']})")  # fmt: skip
    return str(rows[0]["id"])
