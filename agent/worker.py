"""Running one task from the queue to its end state, and hosting its run.

The worker prepares the task's worktree, runs the agent loop (agent/loop.py) through a
`TaskRun`, asks for the apply and applies, and ends the task however it ends (a stop, a
limit, a crash of ours). It is the run's host (agent/run.py `RunHost`): events, state,
approvals, usage, pause gates and policy reach the run through it. It owns what is alive
per running task: its run, the reason it was stopped with, whether it is finishing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import workspace
from .applyback import commit_message
from .errors import CockpitError, TaskStopped
from .fileswitch import ApplyError, to_the_end
from .gitcmd import is_git_repo
from .loop import run_agent
from .outcome import shortfall_reason
from .run import TaskRun, limits_for

if TYPE_CHECKING:
    from .approvals import ApprovalDesk, Decision
    from .bus import EventBus
    from .changes import Changes
    from .config import Config
    from .learnings.book import LearningBook
    from .models.base import Model
    from .pausing import Pauses
    from .rebase import Rebaser
    from .safety import Safety
    from .store import Store
    from .taskbook import TaskBook
    from .tools.base import Tool
    from .wslock import WorkspaceLocks

log = logging.getLogger(__name__)
ROW_REFRESH_S = 0.5  # how often a running task's row gets its counters (events carry each change)


class Worker:
    def __init__(
        self,
        config: Config,
        store: Store,
        bus: EventBus,
        book: TaskBook,
        desk: ApprovalDesk,
        safety: Safety,
        changes: Changes,
        locks: WorkspaceLocks,
        pauses: Pauses,
        tools: dict[str, Tool],
        model_factory: Callable[[str], Model],
        rebaser: Rebaser,
        learnbook: LearningBook,
    ) -> None:
        self.config, self.store, self.bus, self.book = config, store, bus, book
        self.desk, self.safety, self.changes, self.locks = desk, safety, changes, locks
        self.pauses, self.tools, self.model_factory = pauses, tools, model_factory
        self.rebaser = rebaser  # the apply request, and the rebase it offers (agent/rebase.py)
        self.learnbook = learnbook  # which learnings a task is given (agent/learnings/)
        self._runs: dict[str, TaskRun] = {}
        # Remembered by task, not only on its run: a task still preparing its worktree has
        # no run yet, and its worker must still end with this reason.
        self._stop_reasons: dict[str, tuple[str, str]] = {}
        self._finishing: set[str] = set()  # ending or applying: not to be cancelled now
        self._row_written: dict[str, float] = {}  # when each task row got its counters

    # -- the running tasks, for the dispatcher and control -----------------------------------
    def run_of(self, task_id: str) -> TaskRun | None:
        return self._runs.get(task_id)

    def counters(self, task_id: str) -> dict[str, Any] | None:
        run = self._runs.get(task_id)
        return run.counters() if run is not None else None

    def stop(self, task_id: str, reason: tuple[str, str]) -> TaskRun | None:
        """The task is to end with `reason` ((state, why)): its run stops at its next check.
        Its run, if it has one yet (its processes and requests are the caller's to end)."""
        self._stop_reasons[task_id] = reason
        run = self._runs.get(task_id)
        if run is not None:
            run.stop_reason = reason
        return run

    def finishing(self, task_id: str) -> bool:
        """Ending or applying: a cancel now would cut its end (or its apply) in half."""
        return task_id in self._finishing

    def forget(self, task_id: str) -> tuple[str, str]:
        """Its worker is gone: drop what was kept for it. The reason it was stopped with
        (cancelled, when nobody said why)."""
        self._runs.pop(task_id, None)
        self._finishing.discard(task_id)
        self._row_written.pop(task_id, None)
        self.pauses.forget(task_id)
        return self._stop_reasons.pop(task_id, (ev.CANCELLED, "cancelled"))

    # -- what a run asks of its host (agent/run.py RunHost) ----------------------------------
    async def emit(self, task_id: str, type_: str, **payload: Any) -> None:
        self.bus.emit(task_id, type_, **payload)

    def stream(self, task_id: str, kind: str, text: str) -> None:
        self.bus.delta(task_id, kind, text)

    def end_stream(self, task_id: str) -> None:
        self.bus.end_deltas(task_id)

    def state_of(self, task_id: str) -> str:
        return self.book.state_of(task_id)

    async def transition(self, task_id: str, state: str, reason: str = "") -> None:
        await self.book.transition(task_id, state, reason)

    async def hold(self, task_id: str) -> bool:
        return await self.pauses.hold(task_id)

    def policy(self, tool: str, args: dict[str, Any]) -> tuple[str, str]:
        return self.safety.decide(tool, args)

    async def ask(
        self, task_id: str, approve_mode: str, kind: str, summary: str, detail: dict[str, Any]
    ) -> Decision:
        return await self.desk.ask(task_id, approve_mode, kind, summary, detail)

    async def audit(
        self, actor: str, action: str, task_id: str | None, detail: dict[str, Any]
    ) -> None:
        await self.safety.audit(actor, action, task_id, detail)

    async def record_usage(
        self, task_id: str, model: str, usage: dict[str, Any], counters: dict[str, Any]
    ) -> None:
        await self.store.add_usage(task_id, model, usage)
        # The row's counters are for listings (the usage events carry every change live):
        # refresh them at most every ROW_REFRESH_S; transitions settle the final numbers.
        now = time.monotonic()
        if now - self._row_written.get(task_id, -1e9) >= ROW_REFRESH_S:
            self._row_written[task_id] = now
            await self.store.update_task(task_id, **counters)
        self.bus.emit(
            task_id,
            ev.USAGE,
            model=model,
            total_cost_usd=counters["cost_usd"],
            total_tokens=counters["tokens"],
            **usage,
        )
        if await self.safety.over_daily_budget(usage.get("cost_usd", 0.0)):
            raise TaskStopped(
                ev.FAILED, "daily budget reached; raise engine.daily_budget_usd or wait"
            )

    async def learnings_for(self, task_id: str, title: str) -> dict[str, Any]:
        """The learnings a starting task is given (pinned, relevant, or none for a
        holdout), recorded with it for measuring their effect (agent/learnings/book.py)."""
        task = await self.store.get_task(task_id)
        return await self.learnbook.select(task_id, title, (task or {}).get("workspace", ""))

    def worktree_lock(self, repo: str) -> asyncio.Lock:
        return self.locks.worktree(repo)

    # -- one task, from the queue to its end ------------------------------------------------
    async def execute(self, task_id: str) -> None:
        run: TaskRun | None = None
        tree: workspace.TaskTree | None = None
        lock = None
        try:
            task = await self.store.get_task(task_id)
            assert task is not None
            ws = workspace.Path(task["workspace"])
            if not await is_git_repo(ws):  # a plain folder is copied: one task at a time on it
                lock = self.locks.lock(str(ws))
                await lock.acquire()
            async with self.locks.worktree(str(ws)):
                tree = await workspace.prepare(ws, task_id, self.config.worktrees_dir)
            await self.store.update_task(
                task_id,
                branch=tree.branch,
                worktree=str(tree.path),
                base_commit=tree.base_commit,
                started_at=time.time(),
            )
            await self.book.transition(task_id, ev.PLANNING)
            model = self.model_factory(task["model"])
            limits = limits_for(self.config, task["options"])
            checkpoints = self.changes.checkpoints_for(task_id, tree.path)
            run = TaskRun(self, task, model, self.tools, tree, limits, checkpoints)
            self._runs[task_id] = run
            await run.checkpoint("start")
            outcome = await run_agent(run)
            await self._save_learnings(task_id, outcome.learnings)
            await workspace.commit_all(tree, commit_message(task["title"], task_id))
            patch, files = await self._changes(run, tree)
            # A call was denied or a deploy failed: not succeeded, not applied.
            if outcome.shortfall:
                reason = shortfall_reason(outcome.shortfall, tree, files)
                await self._finish(task_id, ev.FAILED, reason, run, tree)
                return
            if not files and tree.is_git:  # nothing to review or apply: leave no worktree behind
                async with self.locks.worktree(str(ws)):
                    await workspace.discard(ws, tree)
            if not task["options"].get("apply", True) or not files:
                note = (
                    f"changes on branch {tree.branch}"
                    if files and tree.branch
                    else "no file changes"
                )
                await self.book.transition(task_id, ev.SUCCEEDED)
                await self.book.complete(task_id, True, f"{outcome.summary}\n({note})", files)
                return
            # The card names what else changes these files; a change that landed on them
            # meanwhile is offered a rebase first (agent/rebase.py).
            approved = await self.rebaser.ask_apply(run, task, tree, patch, files)
            if not approved:
                by = run.last_decision  # the operator, nobody (stdin closed), the timeout, a rule
                reason = f"changes not applied (denied by {by}); kept on branch {tree.branch}"
                await self.book.transition(task_id, ev.CANCELLED, reason)
                await self.book.complete(task_id, False, f"{outcome.summary}\n({reason})", files)
                return
            self._finishing.add(task_id)  # a stop now would leave a half-applied workspace
            # A rollback to a step while the request waited changed what lands: list that.
            _patch, files = await self._changes(run, tree, final=False)
            await self.book.transition(task_id, ev.APPLYING)
            # Not even a cancel of this worker (the process shutting down) cuts it in half.
            await to_the_end(self._apply(run, task, tree, files, outcome.summary))
        except TaskStopped as stop:
            await self._finish(task_id, stop.state, stop.reason, run, tree)
        except asyncio.CancelledError:
            state, reason = self._stop_reasons.get(task_id, (ev.CANCELLED, "cancelled"))
            await self._finish(task_id, state, reason, run, tree)
        except CockpitError as exc:
            # The error's class is recorded so front ends can tell a dead model API (exit 5)
            # from a bad config (2) or a plain failure (1).
            await self._finish(task_id, ev.FAILED, str(exc), run, tree, type(exc).__name__)
        except Exception as exc:  # a bug of ours: fail the task, keep the engine
            log.error("task %s crashed:\n%s", task_id, traceback.format_exc())
            reason = f"internal error: {type(exc).__name__}: {exc}"
            await self._finish(task_id, ev.FAILED, reason, run, tree, "InternalError")
        finally:
            if run is not None:
                await run.procs.kill_all()
                await run.model.aclose()
            if lock is not None:
                lock.release()

    async def _apply(
        self,
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
            record = await self.changes.apply(workspace.Path(task["workspace"]), tree, task, files)
        except ApplyError as exc:
            if stop := self._stop_reasons.get(task_id):  # a Ctrl-C cut the apply short
                raise TaskStopped(stop[0], f"{stop[1]} while applying: {exc}") from exc
            if tree.branch:  # the refusal is not the end of the work: say where it is kept
                raise ApplyError(
                    f"{exc}; the task's change stays on branch {tree.branch} "
                    f"(merge it yourself once that is sorted: git merge {tree.branch})"
                ) from exc
            raise
        op = record.pop("journal", None)
        try:
            await self.store.update_task(task_id, options={**task["options"], "applied": record})
            # Whoever decided: the operator, or a rule (approve=auto) acting for nobody.
            await self.safety.audit(run.last_decision or "operator", "apply", task_id, record)
            await self.book.transition(task_id, ev.SUCCEEDED)
            await self.book.complete(task_id, True, summary, files)
        except BaseException:
            self.changes.release(op)
            raise
        self.changes.settle(op)
        try:  # the workspace's other pending apply requests now overlap with this change
            await self.rebaser.refresh_cards(task["workspace"], skip=task_id)
        except Exception as exc:  # a note on other cards must never change how this one ended
            log.warning("task %s: other apply requests not refreshed: %s", task_id, exc)

    async def _changes(
        self, run: TaskRun, tree: workspace.TaskTree, final: bool = True
    ) -> tuple[str, list[str]]:
        """The task's change as a patch and the files it touches."""
        if tree.is_git:
            return await workspace.diff(tree)
        # A copied plain folder: the change is what its checkpoints saw.
        start = run.checkpoint_steps[0]["commit"]
        if final:
            await run.checkpoint("final")
        return await run.checkpoints.diff(start), await run.checkpoints.changed_files(start)

    async def _finish(
        self,
        task_id: str,
        state: str,
        reason: str,
        run: TaskRun | None,
        tree: workspace.TaskTree | None,
        kind: str = "",
    ) -> None:
        # From here the task ends its own way: a cancel or stop arriving meanwhile must not
        # cut this short (it would lose the end state and reason half-way through).
        self._finishing.add(task_id)
        if tree is not None:
            await drop_if_unchanged(self.store, self.locks, task_id, tree, run)
        if state == ev.FAILED:
            self.bus.emit(task_id, ev.ERROR, message=reason, **({"kind": kind} if kind else {}))
            if kind:
                task = await self.store.get_task(task_id)
                options = {**(task or {}).get("options", {}), "error_kind": kind}
                await self.book.record(task_id, options=options)  # never raises: ending anyway
        await self.book.transition(task_id, state, reason)
        await self.book.complete(task_id, False, reason, sorted(run.changed) if run else [])

    async def _save_learnings(self, task_id: str, learnings: dict[str, list[str]]) -> None:
        categories = {"patterns": "pattern", "improvements": "improvement", "nextSteps": "nextStep"}
        # The model's own words: redacted before the store, like events (it may echo a secret).
        items = [
            (categories[key], self.safety.redact(text))
            for key, texts in learnings.items()
            for text in texts
        ]
        if not items:
            return
        saved = await self.store.add_learnings(task_id, items)
        # How many said what an earlier learning already says (merged into it: counted once).
        merged = sum(1 for item in saved if item["merged"])
        self.bus.emit(task_id, ev.LEARNING, **learnings, merged=merged)


async def drop_if_unchanged(
    store: Store,
    locks: WorkspaceLocks,
    task_id: str,
    tree: workspace.TaskTree,
    run: TaskRun | None,
) -> None:
    """A task that ended without success and without a single change leaves nothing
    behind: no worktree, no branch (one with changes stays, for review or rollback)."""
    try:
        ws = workspace.Path((await store.get_task(task_id) or {}).get("workspace", ""))
        if tree.is_git:
            changed = await workspace.has_changes(tree)
        elif run is not None and run.checkpoint_steps:  # a copied plain folder
            start = run.checkpoint_steps[0]["commit"]
            await run.checkpoint("final")
            changed = bool(await run.checkpoints.changed_files(start))
        else:
            changed = run is not None  # no start checkpoint to compare with: keep it
        if changed:
            return
        async with locks.worktree(str(ws)):
            await workspace.discard(ws, tree)
    except Exception as exc:  # cleanup must never change how the task ended
        log.warning("task %s: could not remove its unchanged worktree: %s", task_id, exc)
