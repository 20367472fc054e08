"""Running one task from the queue to its end state."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import workspace
from .errors import CockpitError, TaskStopped
from .fileswitch import ApplyError, to_the_end
from .gitcmd import is_git_repo
from .loop import run_agent
from .outcome import shortfall_reason
from .run import TaskRun, limits_for

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)


async def execute(engine: Engine, task_id: str) -> None:
    run: TaskRun | None = None
    tree: workspace.TaskTree | None = None
    lock = None
    try:
        task = await engine.store.get_task(task_id)
        assert task is not None
        ws = workspace.Path(task["workspace"])
        if not await is_git_repo(ws):  # a plain folder is copied: one task at a time on it
            lock = engine._plain_locks.lock(str(ws))
            await lock.acquire()
        async with engine.worktree_locks.setdefault(str(ws), asyncio.Lock()):
            tree = await workspace.prepare(ws, task_id, engine.config.worktrees_dir)
        await engine.store.update_task(
            task_id,
            branch=tree.branch,
            worktree=str(tree.path),
            base_commit=tree.base_commit,
            started_at=time.time(),
        )
        await engine.transition(task_id, ev.PLANNING)
        model = engine._model_factory(task["model"])
        run = TaskRun(
            engine, task, model, engine.tools, tree, limits_for(engine.config, task["options"])
        )
        run.checkpoints = engine.safety.checkpoints_for(task_id, tree.path)
        engine._runs[task_id] = run
        await engine.checkpoint(run, "start")
        outcome = await run_agent(run)
        await _save_learnings(engine, task_id, outcome.learnings)
        await workspace.commit_all(tree, f"livhana: {task['title'][:60]} (task {task_id})")
        patch, files = await _changes(engine, run, tree)
        if outcome.shortfall:  # a call was denied or a deploy failed: not succeeded, not applied
            reason = shortfall_reason(outcome.shortfall, tree, files)
            await _finish(engine, task_id, ev.FAILED, reason, run, tree)
            return
        if not files and tree.is_git:  # nothing to review or apply: leave no worktree behind
            async with engine.worktree_locks.setdefault(str(ws), asyncio.Lock()):
                await workspace.discard(ws, tree)
        if not task["options"].get("apply", True) or not files:
            note = (
                f"changes on branch {tree.branch}" if files and tree.branch else "no file changes"
            )
            await engine.transition(task_id, ev.SUCCEEDED)
            await engine._complete(task_id, True, f"{outcome.summary}\n({note})", files)
            return
        refused = await engine.safety.links_outside(ws, tree, task, files)
        summary = f"Apply {len(files)} changed file(s) to {ws}"
        detail = {"diff": patch, "files": files, "branch": tree.branch}
        if refused:  # the apply refuses them: the operator sees so before deciding
            summary += f"; refused: {len(refused)} symlink(s) pointing outside the workspace"
            detail["refused_links"] = refused
        approved = await engine.request_approval(run, "apply", summary, detail)
        if not approved:
            by = run.last_decision  # the operator, nobody (stdin closed), the timeout, a rule
            reason = f"changes not applied (denied by {by}); kept on branch {tree.branch}"
            await engine.transition(task_id, ev.CANCELLED, reason)
            await engine._complete(task_id, False, f"{outcome.summary}\n({reason})", files)
            return
        engine.finishing.add(task_id)  # a stop now would leave a half-applied workspace
        # A rollback to a step while the request waited changed what lands: list that.
        _patch, files = await _changes(engine, run, tree, final=False)
        await engine.transition(task_id, ev.APPLYING)
        # Not even a cancel of this worker (the process shutting down) cuts it in half.
        await to_the_end(_apply(engine, run, task, tree, files, outcome.summary))
    except TaskStopped as stop:
        await _finish(engine, task_id, stop.state, stop.reason, run, tree)
    except asyncio.CancelledError:
        state, reason = engine.stop_reasons.get(task_id, (ev.CANCELLED, "cancelled"))
        await _finish(engine, task_id, state, reason, run, tree)
    except CockpitError as exc:
        # The error's class is recorded so front ends can tell a dead model API (exit 5)
        # from a bad config (2) or a plain failure (1).
        await _finish(engine, task_id, ev.FAILED, str(exc), run, tree, type(exc).__name__)
    except Exception as exc:  # a bug of ours: fail the task, keep the engine
        log.error("task %s crashed:\n%s", task_id, traceback.format_exc())
        reason = f"internal error: {type(exc).__name__}: {exc}"
        await _finish(engine, task_id, ev.FAILED, reason, run, tree, "InternalError")
    finally:
        if run is not None:
            await run.procs.kill_all()
            await run.model.aclose()
        if lock is not None:
            lock.release()


async def _apply(
    engine: Engine,
    run: TaskRun,
    task: dict[str, Any],
    tree: workspace.TaskTree,
    files: list[str],
    summary: str,
) -> None:
    """Apply, then record it. The apply is journaled, and its journal is closed only once
    the record says "applied": a crash in between is settled by the next start
    (agent/recovery.py), so the record never lags behind the workspace."""
    task_id = task["id"]
    try:
        record = await engine.safety.apply(workspace.Path(task["workspace"]), tree, task, files)
    except ApplyError as exc:
        if stop := engine.stop_reasons.get(task_id):  # a Ctrl-C cut the apply short
            raise TaskStopped(stop[0], f"{stop[1]} while applying: {exc}") from exc
        raise
    op = record.pop("journal", None)
    try:
        await engine.store.update_task(task_id, options={**task["options"], "applied": record})
        # Whoever decided: the operator, or a rule (approve=auto) acting for nobody.
        await engine.audit(run.last_decision or "operator", "apply", task_id, record)
        await engine.transition(task_id, ev.SUCCEEDED)
        await engine._complete(task_id, True, summary, files)
    except BaseException:
        engine.safety.release(op)
        raise
    engine.safety.settle(op)


async def _changes(
    engine: Engine, run: TaskRun, tree: workspace.TaskTree, final: bool = True
) -> tuple[str, list[str]]:
    """The task's change as a patch and the files it touches."""
    if tree.is_git:
        return await workspace.diff(tree)
    # A copied plain folder: the change is what its checkpoints saw.
    start = run.checkpoint_steps[0]["commit"]
    if final:
        await engine.checkpoint(run, "final")
    return await run.checkpoints.diff(start), await run.checkpoints.changed_files(start)


async def _finish(
    engine: Engine,
    task_id: str,
    state: str,
    reason: str,
    run: TaskRun | None,
    tree: workspace.TaskTree | None,
    kind: str = "",
) -> None:
    # From here the task ends its own way: a cancel or stop arriving meanwhile must not
    # cut this short (it would lose the end state and reason half-way through).
    engine.finishing.add(task_id)
    if tree is not None:
        await drop_if_unchanged(engine, task_id, tree, run)
    if state == ev.FAILED:
        engine.bus.emit(task_id, ev.ERROR, message=reason, **({"kind": kind} if kind else {}))
        if kind:
            task = await engine.store.get_task(task_id)
            options = {**(task or {}).get("options", {}), "error_kind": kind}
            await engine.record_task(task_id, options=options)  # never raises: ending anyway
    await engine.transition(task_id, state, reason)
    await engine._complete(task_id, False, reason, sorted(run.changed) if run else [])


async def drop_if_unchanged(
    engine: Engine, task_id: str, tree: workspace.TaskTree, run: TaskRun | None
) -> None:
    """A task that ended without success and without a single change leaves nothing
    behind: no worktree, no branch (one with changes stays, for review or rollback)."""
    try:
        ws = workspace.Path((await engine.store.get_task(task_id) or {}).get("workspace", ""))
        if tree.is_git:
            changed = await workspace.has_changes(tree)
        elif run is not None and run.checkpoint_steps:  # a copied plain folder
            start = run.checkpoint_steps[0]["commit"]
            await engine.checkpoint(run, "final")
            changed = bool(await run.checkpoints.changed_files(start))
        else:
            changed = run is not None  # no start checkpoint to compare with: keep it
        if changed:
            return
        async with engine.worktree_locks.setdefault(str(ws), asyncio.Lock()):
            await workspace.discard(ws, tree)
    except Exception as exc:  # cleanup must never change how the task ended
        log.warning("task %s: could not remove its unchanged worktree: %s", task_id, exc)


async def _save_learnings(engine: Engine, task_id: str, learnings: dict[str, list[str]]) -> None:
    categories = {"patterns": "pattern", "improvements": "improvement", "nextSteps": "nextStep"}
    # The model's own words: redacted before the store, like events (it may echo a secret).
    items = [
        (categories[key], engine.safety.redact(text))
        for key, texts in learnings.items()
        for text in texts
    ]
    if not items:
        return
    saved = await engine.store.add_learnings(task_id, items)
    # How many said what an earlier learning already says (merged into it: counted once).
    merged = sum(1 for item in saved if item["merged"])
    engine.bus.emit(task_id, ev.LEARNING, **learnings, merged=merged)
