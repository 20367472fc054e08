"""The engine: one per process (cockpit or daemon), many tasks at once, the store as truth.

Tasks queue and run up to `max_concurrent` at a time (agent/dispatch.py), each in its own
worktree, and every state change is an event. Control that may come from another process
(cancel, stop, re-arm, approval decisions) arrives through store rows picked up by
`control.control_loop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from . import approvals, control, insights, pausing, workspace
from . import events as ev
from .approvals import ApprovalDesk
from .bus import EventBus
from .config import Config, task_caps_problem
from .dispatch import dispatch_loop
from .errors import StopActive, StoreError, StoreFull, TaskStopped, UsageError
from .learnings.book import LearningBook
from .models import model_factory_for
from .models.base import Model
from .run import TaskRun
from .safety import Safety
from .store import Store
from .text import marked
from .tools import load_tools
from .wslock import WorkspaceLocks

log = logging.getLogger(__name__)
ROW_REFRESH_S = 0.5
RECORD_TRIES = 3  # a task's row write waits this many lock timeouts before giving up
APPROVE_MODES = ("ask", "auto", "deny")


class Engine:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        role: str = "tui",
        model_factory: Callable[[str], Model] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.role = role
        self.engine_id = f"{role}-{uuid.uuid4().hex[:8]}"
        self.safety = Safety(config, store)
        self.bus = EventBus(store, self.safety.redact, owner=self.engine_id)
        self.desk = ApprovalDesk(store)
        self.learnbook = LearningBook(store, config.learnings, audit=self.safety.audit)
        self.tools = load_tools()
        self.stopped = False
        self._model_factory = model_factory or model_factory_for(config)
        self._runs: dict[str, TaskRun] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._states: dict[str, str] = {}
        self.stop_reasons: dict[str, tuple[str, str]] = {}
        self._queue: list[str] = []
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(config.engine.max_concurrent)
        # Cross-process (a lock file per workspace in the data dir), dict-like for the worker.
        self._plain_locks = WorkspaceLocks(config.data_dir)
        # `git worktree add/remove` on one repository must not overlap: a concurrent add can
        # read another's half-made .git/worktrees entry and fail ("failed to read commondir").
        self.worktree_locks: dict[str, asyncio.Lock] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._orphans: set[asyncio.Future[None]] = set()  # end-state writes of unstarted tasks
        self._command_cursor = 0
        self.paused: dict[str, asyncio.Event] = {}  # held tasks (agent/pausing.py)
        self.finishing: set[str] = set()  # tasks ending or applying: not to be cancelled now
        # Tasks whose end could not be written (a full disk): task id -> the store's error.
        self.unrecorded: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    async def open(
        cls, config: Config, role: str = "tui", model_factory: Callable[[str], Model] | None = None
    ) -> Engine:
        store = await Store.open(config.store_path)
        engine = cls(config, store, role=role, model_factory=model_factory)
        try:
            await engine.start()
        except BaseException:
            await store.close()
            raise
        return engine

    async def start(self) -> None:
        await self.safety.load()
        control.watch_store(self)
        await self.store.register_engine(
            self.engine_id, os.getpid(), socket.gethostname(), self.role
        )
        self._command_cursor = await self.store.last_command_id()
        self.stopped = bool((await self.store.get_setting("emergency_stop", {})).get("engaged"))
        await self.bus.start()
        await control.recover(self)
        self._loops = [
            asyncio.create_task(dispatch_loop(self), name="dispatch"),
            asyncio.create_task(control.control_loop(self), name="control"),
        ]

    async def close(self, reason: str = "engine shut down") -> None:
        for task in self._loops:
            task.cancel()
        for task_id in list(self._workers):  # running or still preparing: both end now
            await control.halt_task(self, task_id, (ev.INTERRUPTED, reason))
        for worker in list(self._workers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
        await asyncio.gather(*self._orphans, return_exceptions=True)
        for task_id in self._queue:
            await self.transition(task_id, ev.INTERRUPTED, reason)
            await self._complete(task_id, False, f"interrupted: {reason}")
        await self.bus.close()
        try:
            await self.store.remove_engine(self.engine_id)
        except StoreError as exc:  # its lock goes with the store: it reads as gone anyway
            log.warning("engine row not removed: %s", exc)
        await self.store.close()

    # -- public API ------------------------------------------------------------------------
    async def submit(
        self,
        title: str,
        workspace_dir: Path | str,
        *,
        approve: str = "ask",
        model: str | None = None,
        max_steps: int | None = None,
        max_cost: float | None = None,
        apply: bool = True,
    ) -> str:
        # Undecodable argv bytes arrive as lone surrogates: written out (\xe9), not dropped.
        # Redacted before anything keeps or shows it (store, events, audit, commit messages).
        title = self.safety.redactor.redact(marked(" ".join(str(title).split())))
        if not title:
            raise UsageError("the task is empty: describe what the agent should do")
        if len(title) > 10_000:
            raise UsageError("the task is longer than 10,000 characters")
        if problem := task_caps_problem(max_steps, max_cost):
            raise UsageError(problem)
        if approve not in APPROVE_MODES:
            raise UsageError(f"approve mode must be one of {', '.join(APPROVE_MODES)}")
        if self.stopped:
            raise StopActive("emergency stop is engaged: re-arm before starting new work")
        ws = await workspace.check_workspace(Path(workspace_dir), self.config.worktrees_dir)
        task_id = uuid.uuid4().hex[:12]
        options = {"max_steps": max_steps, "max_cost": max_cost, "apply": apply}
        await self.store.create_task(
            {
                "id": task_id,
                "title": title,
                "workspace": str(ws),
                "state": ev.QUEUED,
                "approve_mode": approve,
                "model": model or self.config.engine.model,
                "engine_id": self.engine_id,
                "options": options,
            }
        )
        await self.bus.own(task_id)
        self._states[task_id] = ev.QUEUED
        self.bus.emit(task_id, ev.STATUS, state=ev.QUEUED, title=title, workspace=str(ws))
        await self.safety.audit(
            "operator", "submit", task_id, {"title": title, "workspace": str(ws)}
        )
        self._queue.append(task_id)
        self._wake.set()
        return task_id

    async def get(self, task_id: str) -> dict[str, Any] | None:
        return await self.store.get_task(task_id)

    async def list(self, **filters: Any) -> list[dict[str, Any]]:
        return await self.store.list_tasks(**filters)

    async def events(self, task_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
        await self.bus.flush()
        return await self.store.task_events(task_id, after_seq)

    def subscribe(
        self, task_id: str | None = None, transient: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """Events as emitted; `transient=True` adds live `delta` notifications (agent/bus.py)."""
        return self.bus.subscribe(task_id, transient=transient)

    async def wait(self, task_id: str) -> dict[str, Any]:
        """Until the task reaches an end state (whoever runs it)."""
        while True:
            worker = self._workers.get(task_id)
            if worker:
                try:
                    await asyncio.shield(worker)
                except asyncio.CancelledError:
                    # The worker being cancelled is expected (a cancel or stop); our own
                    # caller being cancelled (a timeout, Ctrl-C) must propagate, or wait()
                    # holds it until the task ends.
                    me = asyncio.current_task()
                    if me is not None and me.cancelling():
                        raise
            task = await self.store.get_task(task_id)
            if task is None:
                raise UsageError(f"no task {task_id}")
            if task["state"] in ev.END_STATES:
                with contextlib.suppress(StoreError):  # kept for the flush loop
                    await self.bus.flush()
                return task
            if (
                task_id in self.unrecorded
                and task_id not in self._workers
                and self._states.get(task_id) in ev.END_STATES
            ):
                # It ended here, but the store could not be told (a full disk).
                raise StoreError(
                    f"task {task_id} ended {self._states.get(task_id, '')} but that could not "
                    f"be recorded: {self.unrecorded[task_id]}"
                )
            await asyncio.sleep(0.1)

    async def cancel(self, task_id: str, by: str = "operator") -> None:
        task = await self._require(task_id)
        task_id = task["id"]
        if task["state"] in ev.END_STATES:
            raise UsageError(f"task {task_id} already ended ({task['state']})")
        await self.safety.audit(by, "cancel", task_id, {})
        if task_id in self._states:
            await control.halt_task(self, task_id, (ev.CANCELLED, f"cancelled by {by}"))
        else:
            await self.store.add_command("cancel", task_id, {"by": by})

    async def pause(self, task_id: str, by: str = "operator") -> None:
        """Hold the task before its next model or tool call (state unchanged)."""
        await pausing.request(self, task_id, True, by)

    async def resume(self, task_id: str, by: str = "operator") -> None:
        await pausing.request(self, task_id, False, by)

    async def activity(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each task's latest step and whether it is paused (agent/activity.py)."""
        from .activity import now_doing

        return await now_doing(self, task_ids)

    async def recent_approvals(self, limit: int = 100) -> list[dict[str, Any]]:
        """Requests in every state, newest first, with who decided them."""
        return await self.store.approvals(None, limit=limit)

    async def pending_approvals(self) -> list[dict[str, Any]]:
        return await self.store.approvals("pending")

    async def decide(
        self, approval_id: int, approved: bool, by: str = "operator", reason: str = ""
    ) -> dict[str, Any]:
        """First decider wins: the decided row, or AlreadyDecided naming who won."""
        return await approvals.decide(self, approval_id, approved, by, reason)

    async def decide_task(self, task_id: str, approved: bool, by: str = "operator") -> int:
        """Decide every pending request of a task (the CLI's approve/deny TASK_ID): how many
        this call decided; AlreadyDecided (naming the winners) for any it lost."""
        task = await self._require(task_id)
        return len(await approvals.decide_task(self, task, approved, by))

    async def rollback(
        self, task_id: str, to_step: int | None = None, by: str = "operator"
    ) -> dict[str, Any]:
        from .rollback import rollback_task

        task = await self._require(task_id)
        return await rollback_task(self, task, to_step, by)

    async def emergency_stop(self, by: str = "operator") -> None:
        await control.engage_stop(self.store, by, self.engine_id)
        await control.halt_all(self, by)

    async def rearm(self, by: str = "operator") -> None:
        await control.lift_stop(self.store, by, self.engine_id)
        self.stopped = False
        self._wake.set()

    # -- learnings (agent/learnings/book.py) ------------------------------------------------
    async def learnings(self, query: str | None = None) -> list[dict[str, Any]]:
        """Every learning (merged lessons, active and retired) with its teachings."""
        return await self.learnbook.rows(query)

    async def learnings_by_kind(self) -> dict[str, list[str]]:
        """The active learnings as `{"patterns", "improvements", "nextSteps"}` (the seed's)."""
        return await self.learnbook.by_kind()

    async def learning_stats(self, query: str | None = None) -> list[dict[str, Any]]:
        """Each learning with provenance and measured effect (`learnings --stats --json`)."""
        return await self.learnbook.stats(query)

    async def learning_counts(self) -> dict[str, int]:
        """Distinct learnings by state, and how many teachings were merged into them."""
        return await self.learnbook.counts()

    async def change_learning(
        self, learning_id: int, action: str, *, text: str = "", reason: str = "",
        by: str = "operator",
    ) -> dict[str, Any]:
        """pin, unpin, edit (`text`), retire or restore one learning; audited."""
        return await self.learnbook.change(
            learning_id, action, by, text=self.safety.redact(text), reason=reason
        )

    async def learnings_for_task(self, task_id: str, title: str) -> dict[str, Any]:
        """The learnings a starting task is given (pinned, relevant, or none for a
        holdout), recorded with it for measuring their effect."""
        task = await self.store.get_task(task_id)
        return await self.learnbook.select(task_id, title, (task or {}).get("workspace", ""))

    # -- views for panels and the API (agent/insights.py) ----------------------------------
    def capabilities(self) -> list[dict[str, Any]]:
        return insights.capabilities(self)

    async def recent_tool_use(self) -> dict[str, dict[str, Any]]:
        return await insights.recent_tool_use(self)

    async def metrics(self, days: int = 14) -> dict[str, Any]:
        return await insights.metrics(self, days)

    async def health(self, ping: bool = False) -> dict[str, Any]:
        return await insights.health(self, ping)

    async def budget(self) -> dict[str, Any]:
        return await insights.budget(self)

    async def audit_verify(self) -> tuple[bool, str]:
        from .audit import verify

        return await verify(self.store)

    @property
    def policy_mode(self) -> str:
        return self.safety.policy.mode

    async def set_policy(self, tool: str, decision: str, by: str = "operator") -> None:
        self.safety.set_policy(tool, decision)
        await self.safety.audit(by, "policy", None, {"tool": tool, "decision": decision})

    async def set_policy_mode(self, mode: str, by: str = "operator") -> None:
        self.safety.set_mode(mode)
        await self.safety.audit(by, "policy_mode", None, {"mode": mode})

    # -- what TaskRun calls ----------------------------------------------------------------
    async def emit(self, task_id: str, type_: str, **payload: Any) -> None:
        self.bus.emit(task_id, type_, **payload)

    def state_of(self, task_id: str) -> str:
        return self._states.get(task_id, "")

    async def transition(self, task_id: str, state: str, reason: str = "") -> None:
        old = self._states.get(task_id, "")
        if old == state:
            return
        if old and not ev.can_transition(old, state):
            log.warning("odd transition %s -> %s for %s", old, state, task_id)
        self._states[task_id] = state
        fields: dict[str, Any] = {"state": state}
        run = self._runs.get(task_id)
        if run is not None:  # the row's counters are written per model call: settle them
            fields.update(steps=run.steps, tokens=run.tokens, cost_usd=round(run.cost, 6))
        if state in ev.END_STATES:
            fields["finished_at"] = time.time()
            if reason and state != ev.SUCCEEDED:
                fields["error"] = self.safety.redact(reason)  # may quote tool output
        if not await self.record_task(task_id, **fields):
            return  # taken over by another engine: its record stands
        payload = {"state": state, "previous": old}
        if reason:
            payload["reason"] = reason
        self.bus.emit(task_id, ev.STATUS, **payload)

    async def request_approval(
        self, run: TaskRun, kind: str, summary: str, detail: dict[str, Any]
    ) -> bool:
        return await approvals.ask(self, run, kind, summary, detail)

    async def analyse(self, root: Path) -> dict[str, Any]:
        from .run import workspace_summary

        return await asyncio.to_thread(workspace_summary, root)

    async def relevant_learnings(
        self, title: str, limit: int = 8, workspace: str | None = None
    ) -> list[str]:
        """The active learnings most relevant to `title`: a look, nothing recorded."""
        return await self.learnbook.relevant(title, limit, workspace)

    async def record_usage(self, run: TaskRun, model: str, usage: dict[str, Any]) -> None:
        await self.store.add_usage(run.task_id, model, usage)
        # The row's counters are for listings (the usage events carry every change live):
        # refresh them at most every ROW_REFRESH_S; transitions settle the final numbers.
        now = time.monotonic()
        if now - run.row_written_at >= ROW_REFRESH_S:
            run.row_written_at = now
            await self.store.update_task(
                run.task_id, tokens=run.tokens, cost_usd=round(run.cost, 6), steps=run.steps
            )
        self.bus.emit(
            run.task_id,
            ev.USAGE,
            model=model,
            total_cost_usd=round(run.cost, 6),
            total_tokens=run.tokens,
            **usage,
        )
        if await self.safety.over_daily_budget(usage.get("cost_usd", 0.0)):
            raise TaskStopped(
                ev.FAILED, "daily budget reached; raise engine.daily_budget_usd or wait"
            )

    def policy_decision(self, tool: Any, args: dict[str, Any]) -> tuple[str, str]:
        return self.safety.decide(tool.name, args)

    async def audit(
        self, actor: str, action: str, task_id: str | None, detail: dict[str, Any]
    ) -> None:
        await self.safety.audit(actor, action, task_id, detail)

    async def checkpoint(self, run: TaskRun, label: str) -> str | None:
        commit = await run.checkpoints.snapshot(label)
        if commit:
            run.checkpoint_steps.append({"step": run.steps, "commit": commit, "label": label})
            self.bus.emit(run.task_id, ev.CHECKPOINT, step=run.steps, commit=commit, label=label)
        return commit

    # -- internals -------------------------------------------------------------------------
    async def _require(self, task_id: str) -> dict[str, Any]:
        task = await self.store.get_task(task_id)
        if task is None:
            raise UsageError(f"no task {task_id!r} (see `livhana-cockpit tasks`)")
        return task

    async def _complete(
        self, task_id: str, success: bool, summary: str, changes: list[str] | None = None
    ) -> None:
        if self.bus.lost(task_id):
            return
        self.bus.emit(task_id, ev.COMPLETE, success=success, changes=changes or [], summary=summary)
        # The summary is the model's own text, which may echo a secret it saw.
        await self.record_task(task_id, summary=self.safety.redact(summary), changes=changes or [])
        try:
            await self.bus.flush()
        except StoreError as exc:  # kept: the flush loop (or close) tries again
            log.warning("task %s: events not stored yet: %s", task_id, exc)

    async def record_task(self, task_id: str, **fields: Any) -> bool:
        """Write the task's row as its owner: False if another engine took it over. A
        store still locked after a few waits, or a full disk, is remembered, not raised:
        the task still ends here, and `wait` says it could not be recorded."""
        if self.bus.lost(task_id):
            return False
        owner = self.engine_id if self.bus.owns(task_id) else None
        written, error = False, None
        for _ in range(RECORD_TRIES):
            try:
                written, error = await self.store.update_task(task_id, owner=owner, **fields), None
                break
            except StoreFull as exc:
                error = exc
                break
            except StoreError as exc:  # locked: another process holds the store that long
                error = exc
        if error is not None:
            if task_id not in self.unrecorded:  # once per task: the cause does not change
                log.error("task %s: %s", task_id, error)
            self.unrecorded[task_id] = str(error)
            return True
        if owner is not None and not written:
            self.bus.mark_lost(task_id)  # stops it here (control.task_lost)
            return False
        return True
