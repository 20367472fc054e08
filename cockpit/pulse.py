"""How the cockpit notices that someone else changed the store.

The event bus brings most changes as events, but not all: a rollback or a decision made
from the CLI on a task this cockpit submitted, a policy set by another cockpit, a learning
used. So twice a second the app asks SQLite one cheap question (a few MAX/COUNT over small
or indexed tables, plus the policy file's mtime); when the answer moves, the visible panel
refreshes, and the app recounts live tasks and waiting requests. The whole cost is one
read per half second, and a change shows within a second wherever it was made."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.engine import Engine

PULSE_S = 0.5
SIGNATURE = (
    "SELECT (SELECT COALESCE(MAX(id), 0) FROM events) AS events, "
    "(SELECT COALESCE(MAX(updated_at), 0) FROM tasks) AS tasks, "
    "(SELECT COUNT(*) FROM approvals WHERE state = 'pending') AS pending, "
    "(SELECT COALESCE(MAX(COALESCE(decided_at, created_at)), 0) FROM approvals) AS decided, "
    "(SELECT COUNT(*) + COALESCE(SUM(uses), 0) FROM learnings) AS learnings, "
    "(SELECT COALESCE(MAX(id), 0) FROM audit) AS audit"
)


async def signature(engine: Engine) -> tuple[Any, ...]:
    """What moves whenever anything a panel shows changes."""
    rows = await engine.store.fetch(SIGNATURE)
    policy = 0.0
    with contextlib.suppress(OSError):
        policy = engine.config.policy_path.stat().st_mtime
    return (*rows[0].values(), policy) if rows else (policy,)
