"""Undoing a task exactly.

- `--to-step N`: the task's worktree returns to the checkpoint taken after step N.
- not applied: the worktree and its branch are discarded.
- applied: the operator's workspace returns to its pre-apply state, or gets a revert
  commit when newer commits (or a push) sit on top. Operator changes are never discarded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import workspace
from .errors import UsageError

if TYPE_CHECKING:
    from .engine import Engine


async def rollback_task(
    engine: Engine, task: dict[str, Any], to_step: int | None, by: str
) -> dict[str, Any]:
    task_id = task["id"]
    if to_step is not None:
        return await _to_step(engine, task, to_step, by)
    if task["state"] == ev.ROLLED_BACK:
        raise UsageError(f"task {task_id} was already rolled back")
    if task["state"] in ev.LIVE_STATES:
        await engine.cancel(task_id, by=by)
        await engine.wait(task_id)
        task = await engine.store.get_task(task_id) or task
    await engine.bus.adopt(task_id)
    engine._states[task_id] = task["state"]
    ws = Path(task["workspace"])
    applied = task["options"].get("applied")
    if applied:
        result = await engine.safety.unapply(ws, applied)
        message = result.get("message", "restored the pre-apply state")
    else:
        if task.get("worktree"):
            tree = workspace.TaskTree(
                Path(task["worktree"]),
                task.get("branch"),
                task.get("base_commit"),
                bool(task.get("branch")),
            )
            async with engine.worktree_locks.setdefault(str(ws), asyncio.Lock()):
                await workspace.discard(ws, tree)
        message = "discarded the task's worktree and branch; the workspace was never changed"
    await engine.audit(by, "rollback", task_id, {"applied": bool(applied), "message": message})
    engine.bus.emit(task_id, ev.ROLLBACK, message=message, applied=bool(applied), by=by)
    await engine.transition(task_id, ev.ROLLED_BACK, message)
    await engine.bus.flush()
    return {"task_id": task_id, "message": message}


async def _to_step(engine: Engine, task: dict[str, Any], step: int, by: str) -> dict[str, Any]:
    task_id = task["id"]
    if task["state"] in ev.LIVE_STATES and task["state"] != ev.AWAITING_APPROVAL:
        raise UsageError(f"task {task_id} is {task['state']}; cancel it before rolling back a step")
    if task["options"].get("applied"):
        raise UsageError(f"task {task_id} was applied; roll back the whole task instead")
    if not task.get("worktree") or not Path(task["worktree"]).exists():
        raise UsageError(f"task {task_id} has no worktree left to roll back")
    cps = engine.safety.checkpoints_for(task_id, Path(task["worktree"]))
    points = await cps.list()
    events = await engine.events(task_id)
    by_commit = {e["commit"]: e["step"] for e in events if e["type"] == ev.CHECKPOINT}
    eligible = [
        p
        for p in points
        if by_commit.get(str(p["commit"]), -1) <= step and str(p["commit"]) in by_commit
    ]
    if not eligible:
        raise UsageError(f"task {task_id} has no checkpoint at or before step {step}")
    target = eligible[-1]
    await cps.restore(str(target["commit"]))
    await engine.bus.adopt(task_id)
    message = f"worktree restored to the checkpoint after step {by_commit[str(target['commit'])]}"
    await engine.audit(by, "rollback", task_id, {"to_step": step, "commit": target["commit"]})
    engine.bus.emit(
        task_id, ev.ROLLBACK, message=message, to_step=step, commit=target["commit"], by=by
    )
    await engine.bus.flush()
    return {"task_id": task_id, "message": message}
