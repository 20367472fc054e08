"""Undoing a task exactly.

- `--to-step N`: the task's worktree returns to the checkpoint taken after step N, its
  branch gets a commit holding that tree (apply merges the branch), and a pending apply
  request is refreshed to show what will land now.
- not applied: the worktree and its branch are discarded.
- applied: the operator's workspace returns to its pre-apply state, or gets a revert
  commit when newer commits (or a push) sit on top. Operator changes are never discarded.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import workspace
from .errors import UsageError
from .fileswitch import to_the_end
from .gitcmd import git

if TYPE_CHECKING:
    from .bus import EventBus
    from .changes import Changes
    from .checkpoints import Checkpoints
    from .recovery import Recovery
    from .safety import Safety
    from .store import Store
    from .taskbook import TaskBook
    from .wslock import WorkspaceLocks

# Stop a live task and wait until it has ended: (task id, by whom).
StopTask = Callable[[str, str], Awaitable[None]]


class Rollback:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        book: TaskBook,
        safety: Safety,
        changes: Changes,
        locks: WorkspaceLocks,
        recovery: Recovery,
        stop_task: StopTask,
    ) -> None:
        self.store, self.bus, self.book, self.safety = store, bus, book, safety
        self.changes, self.locks, self.recovery = changes, locks, recovery
        self._stop_task = stop_task

    async def run(self, task: dict[str, Any], to_step: int | None, by: str) -> dict[str, Any]:
        """Undo the task (or its steps after `to_step`): what was done, in words."""
        task_id = task["id"]
        if to_step is not None:
            return await self._to_step(task, to_step, by)
        # An apply or rollback of this task cut short by a crash is settled first (finished or
        # undone, agent/recovery.py): what follows then starts from a true record.
        if settled := await self.recovery.journals(task_id):
            task = await self.store.get_task(task_id) or task
        if task["state"] == ev.ROLLED_BACK:
            raise UsageError(f"task {task_id} was already rolled back")
        stopped_now = task["state"] in ev.LIVE_STATES
        if stopped_now:
            await self._stop_task(task_id, by)
            task = await self.store.get_task(task_id) or task
        await self.book.adopt(task_id, task["state"])
        applied = task["options"].get("applied")
        if applied:  # a Ctrl-C meanwhile waits for it: a rollback is never left half-done
            result = await to_the_end(self._unapply(task, applied, by))
            return _after(settled, result)
        # Never applied: only its leftovers go. A task that ended failed, cancelled or
        # interrupted by itself keeps that outcome (and its error): the rollback changes
        # nothing about how it went. One that succeeded (its result was the branch now
        # discarded) or that this rollback stopped is rolled back.
        keeps = not stopped_now and task["state"] in (ev.FAILED, ev.CANCELLED, ev.INTERRUPTED)
        discarded = await self._discard(task)
        if keeps and not discarded:
            raise UsageError(
                f"task {task_id} ({task['state']}) never changed the workspace and left nothing "
                "behind: there is nothing to roll back"
            )
        if keeps:
            message = (
                f"discarded the task's worktree and branch; it stays {task['state']}, and nothing "
                "of it is in the workspace"
            )
        else:
            message = "discarded the task's worktree and branch; the workspace was never changed"
        await self.safety.audit(by, "rollback", task_id, {"applied": False, "message": message})
        self.bus.emit(task_id, ev.ROLLBACK, message=message, applied=False, by=by)
        if not keeps:
            await self.book.transition(task_id, ev.ROLLED_BACK, message)
        await self.bus.flush()
        return _after(settled, {"task_id": task_id, "message": message})

    async def _unapply(
        self, task: dict[str, Any], applied: dict[str, Any], by: str
    ) -> dict[str, Any]:
        """Undo an applied task in the workspace, then record it; the journal of the rollback
        is closed only once the record says so (a crash in between: agent/recovery.py)."""
        task_id = task["id"]
        result = await self.changes.unapply(Path(task["workspace"]), applied, task_id)
        op = result.pop("journal", None)
        message = result["message"]
        try:
            detail = {"applied": True, "message": message, "action": result["action"],
                      "revert_commit": result.get("revert_commit")}  # fmt: skip
            await self.safety.audit(by, "rollback", task_id, detail)
            self.bus.emit(task_id, ev.ROLLBACK, message=message, applied=True, by=by)
            await self.book.transition(task_id, ev.ROLLED_BACK, message)
            await self.bus.flush()
        except BaseException:
            self.changes.release(op)
            raise
        self.changes.settle(op)
        return {"task_id": task_id, "message": message}

    async def _discard(self, task: dict[str, Any]) -> bool:
        """Remove the task's worktree and branch; whether there was anything to remove."""
        ws = Path(task["workspace"])
        if not task.get("worktree"):
            return False  # never prepared: nothing was made
        worktree, branch = Path(task["worktree"]), task.get("branch")
        there = worktree.exists()
        if branch and not there:
            ref = f"refs/heads/{branch}"
            out = await git("rev-parse", "--verify", "-q", ref, cwd=ws, check=False)
            there = bool(out.strip())
        if not there:
            return False
        tree = await workspace.tree_for(task)
        async with self.locks.worktree(str(ws)):
            await workspace.discard(ws, tree)
        return True

    async def _to_step(self, task: dict[str, Any], step: int, by: str) -> dict[str, Any]:
        task_id = task["id"]
        if task["state"] == ev.ROLLED_BACK:
            raise UsageError(
                f"task {task_id} was rolled back already; there is no step to return to"
            )
        if task["state"] in ev.LIVE_STATES and task["state"] != ev.AWAITING_APPROVAL:
            raise UsageError(
                f"task {task_id} is {task['state']}; cancel it before rolling back a step"
            )
        if task["options"].get("applied"):
            raise UsageError(f"task {task_id} was applied; roll back the whole task instead")
        if not task.get("worktree") or not Path(task["worktree"]).exists():
            raise UsageError(f"task {task_id} has no worktree left to roll back")
        cps = self.changes.checkpoints_for(task_id, Path(task["worktree"]))
        points = await cps.list()
        await self.bus.flush()
        events = await self.store.task_events(task_id)
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
        await self.bus.adopt(task_id)
        back_to = by_commit[str(target["commit"])]
        message = f"worktree restored to the checkpoint after step {back_to}"
        tree = await workspace.tree_for(task)
        branch_commit = None
        if tree.is_git:
            # What apply merges is the task branch, not the worktree: the branch gets a new
            # commit with the restored tree. A commit, not a reset: the later steps stay in the
            # branch's history (and in the checkpoints), so this rollback is itself reversible.
            before = await workspace.tree_head(tree)
            branch_commit = await workspace.commit_all(
                tree, f"livhana: back to step {back_to} (task {task_id})"
            )
            if branch_commit and branch_commit != before:
                message += f"; branch {tree.branch} now holds it (commit {branch_commit[:10]})"
            else:
                branch_commit = None
        refreshed = await self._refresh_apply_request(task, tree, cps, str(points[0]["commit"]))
        if refreshed:
            message += f"; the pending apply request now shows {refreshed}"
        await self.safety.audit(
            by,
            "rollback",
            task_id,
            {"to_step": step, "commit": target["commit"], "branch_commit": branch_commit},
        )
        self.bus.emit(
            task_id,
            ev.ROLLBACK,
            message=message,
            to_step=step,
            commit=target["commit"],
            branch_commit=branch_commit,
            by=by,
        )
        await self.bus.flush()
        return {"task_id": task_id, "message": message}

    async def _refresh_apply_request(
        self,
        task: dict[str, Any],
        tree: workspace.TaskTree,
        cps: Checkpoints,
        start: str,
    ) -> str:
        """A task waiting for its apply approval must be approved for what will land now: its
        pending request gets the new diff and file list (same id: a decision already on its way
        applies to the current state, which the operator can see again)."""
        rows = await self.store.approvals("pending", task_id=task["id"])
        pending = [r for r in rows if r["kind"] == "apply"]
        if not pending:
            return ""
        if tree.is_git:
            patch, files = await workspace.diff(tree)
        else:
            patch = workspace.clip_diff(await cps.diff(start))
            files = await cps.changed_files(start)
        refused = await self.changes.links_outside(Path(task["workspace"]), tree, task, files)
        for row in pending:
            summary = f"Apply {len(files)} changed file(s) to {task['workspace']}"
            if refused:
                summary += f"; refused: {len(refused)} symlink(s) pointing outside the workspace"
            detail = {**row["detail"], "diff": patch, "files": files,
                      "refreshed": "rolled back a step"}  # fmt: skip
            detail["refused_links"] = refused
            summary, detail = self.safety.redact(summary), self.safety.redact(detail)
            await self.store.execute(
                "UPDATE approvals SET summary = ?, detail = ? WHERE id = ? AND state = 'pending'",
                [summary, json.dumps(detail, default=str), row["id"]],
            )
            # Shown again: the approval queue and `run --approve ask` re-read the request.
            self.bus.emit(
                task["id"],
                ev.APPROVAL_REQUESTED,
                approval_id=row["id"],
                kind="apply",
                summary=summary,
                detail=detail,
                risk=row["risk"],
                refreshed=True,
            )
        return f"{len(files)} file(s): {', '.join(files[:5]) or 'no changes'}"


def _after(settled: list[str], result: dict[str, Any]) -> dict[str, Any]:
    """The operator learns first what was settled from a crash, then what this did."""
    if settled:
        result["message"] = f"first, after a crash: {'; '.join(settled)}. Then: " + result[
            "message"
        ]
    return result
