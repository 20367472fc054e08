"""What live tasks are doing now: their latest step and whether they are paused.

Read from the store, so a daemon's tasks count too and a viewer that was away (or just
started) sees the truth, not only the events it happened to receive.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .pausing import paused_tasks

if TYPE_CHECKING:
    from .bus import EventBus
    from .store import Store


async def now_doing(
    store: Store, bus: EventBus, task_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """task id -> {"step", "action", "target", "ts", "paused"} (step 0: no step yet)."""
    await bus.flush()
    paused = await paused_tasks(store, task_ids)
    out: dict[str, dict[str, Any]] = {}
    for task_id in task_ids:
        # Newest first along the (task_id, seq) index: stops at the latest step.
        rows = await store.fetch(
            "SELECT ts, data FROM events WHERE task_id = ? AND type = 'step' "
            "ORDER BY seq DESC LIMIT 1",
            [task_id],
        )
        step: dict[str, Any] = json.loads(rows[0]["data"]) if rows else {}
        out[task_id] = {
            "step": int(step.get("step") or 0),
            "action": str(step.get("action") or ""),
            "target": str(step.get("target") or ""),
            "ts": rows[0]["ts"] if rows else None,
            "paused": task_id in paused,
        }
    return out
