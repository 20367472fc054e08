"""The engine: one per process (cockpit or daemon), many tasks at once, the store as truth.

`Engine` is the composition root: it builds the parts, wires them, and offers the public
API the cockpit, the CLI, the daemon and the HTTP API use. Each part owns its state behind
a small interface, and none reaches into another or back up to the engine:

    tasks     agent/dispatch.py   the queue: which task starts when, the running workers
    worker    agent/worker.py     one task from the queue to its end state; hosts its run
    control   agent/control.py    the emergency stop, cancel, pause; other processes' rows
    desk      agent/approvals.py  the approval desk: requests, decisions, first one wins
    changes   agent/changes.py    apply to the operator's workspace, and undo (journaled)
    rollback  agent/rollback.py   undoing a task, or its steps after N
    recovery  agent/recovery.py   after a crash: dead engines' tasks, cut-short applies
    views     agent/views.py      read-only views for the panels (metrics, health, ...)
    radar     agent/conflicts.py  live tasks changing the same files, changes landed on them
    rebaser   agent/rebase.py     the apply request, and the rebase it offers on a conflict
    pruner    agent/prune.py      removing what ended tasks left on disk ([gc])

Below them: the task book (agent/taskbook.py: each task's state, row and status events),
the event bus, the store, safety (policy, redaction, audit, budgets) and the tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import events as ev
from . import workspace
from .activity import now_doing
from .approvals import ApprovalDesk
from .audit import verify
from .bus import EventBus, Subscription
from .changes import Changes
from .config import Config, task_caps_problem
from .conflicts import Radar
from .control import Control
from .dispatch import Dispatcher
from .errors import StopActive, StoreError, UsageError
from .learnings.book import LearningBook
from .models import model_factory_for
from .models.base import Model
from .pausing import Pauses
from .prune import Pruner
from .rebase import Rebaser
from .recovery import Recovery
from .rollback import Rollback
from .safety import Safety
from .store import Store
from .taskbook import TaskBook
from .text import marked
from .tools import load_tools
from .views import Views
from .worker import Worker
from .wslock import WorkspaceLocks

log = logging.getLogger(__name__)
APPROVE_MODES = ("ask", "auto", "deny")
LOOPS_CLOSE_S = 4.0  # how long `close` lets its loops (a scheduler) finish after the cancel


class Scheduler(Protocol):
    """Timed work (issue 10's daily/weekly/monthly jobs): the engine runs it beside its
    own loops from `start` until `close`."""

    async def run(self) -> None: ...


@dataclass(frozen=True)
class LiveTask:
    """What this engine holds of a task right now: a snapshot, for tests and tools."""

    state: str
    queued: bool  # waiting for a slot (or for a re-arm)
    running: bool  # it has a worker: preparing its worktree, or its run is under way
    steps: int
    process_groups: tuple[int, ...]  # its commands' process groups, alive now
    waiting_on: tuple[int, ...]  # the approval requests it waits on
    paused: bool


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
        self.engine_id = engine_id = f"{role}-{uuid.uuid4().hex[:8]}"
        self._model_factory = model_factory = model_factory or model_factory_for(config)
        self.safety = safety = Safety(config, store)
        self.bus = bus = EventBus(store, safety.redact, owner=engine_id)
        # The row's counters of a running task come from its run (the worker's).
        self.book = book = TaskBook(
            store, bus, safety.redact, engine_id, counters=lambda t: self.worker.counters(t)
        )
        self.tools = load_tools()
        self.locks = WorkspaceLocks(config.data_dir)
        self.desk = ApprovalDesk(config, store, bus, book, safety)
        self.changes = Changes(config)
        self.pauses = Pauses(store, bus, book, safety, engine_id)
        self.radar = Radar(store, self.changes)
        self.rebaser = Rebaser(store, bus, book, safety, self.changes, self.radar, self.desk)
        # Learnings: picked for each task, measured, changed by the operator (agent/learnings/).
        self.learnbook = LearningBook(store, config.learnings, audit=safety.audit)
        self.worker = Worker(config, store, bus, book, self.desk, safety, self.changes,
                             self.locks, self.pauses, self.tools, model_factory,
                             self.rebaser, self.learnbook)  # fmt: skip
        self.tasks = Dispatcher(self.worker, book, bus, safety, config.engine.max_concurrent)
        self.control = Control(config, store, bus, book, self.tasks, self.worker, self.desk,
                               self.pauses, safety, engine_id)  # fmt: skip
        self.recovery = Recovery(store, bus, book, self.desk, safety, self.changes, self.locks,
                                 engine_id)  # fmt: skip
        self.rollbacks = Rollback(store, bus, book, safety, self.changes, self.locks,
                                  self.recovery, self._stop_and_wait)  # fmt: skip
        self.views = Views(config, store, bus, safety, self.tools, model_factory,
                           lambda: self.tasks.held)  # fmt: skip
        self.pruner = Pruner(config, store, safety, self.changes, self.locks, engine_id, role)
        self.scheduler: Scheduler | None = None  # timed jobs: see `attach_scheduler`
        self._loops: list[asyncio.Task[None]] = []
        self.exporter: Any = None  # the BigQuery export (agent/export), when configured

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
        await self.store.register_engine(
            self.engine_id, os.getpid(), socket.gethostname(), self.role
        )
        await self.control.start()
        await self.bus.start()
        await self.recovery.journals()  # first: an apply cut short is finished or undone
        await self.recovery.dead_engines()
        loops = {"dispatch": self.tasks.loop(), "control": self.control.loop(),
                 "gc": self.pruner.loop()}  # [gc] auto (agent/prune.py)  # fmt: skip
        if self.scheduler is not None:
            loops["scheduler"] = self.scheduler.run()
        self._loops = [asyncio.create_task(work, name=name) for name, work in loops.items()]
        if self.config.bigquery.enabled:  # lazy: the client loads only when configured
            from .export import start_export

            self.exporter = start_export(self)

    def attach_scheduler(self, scheduler: Scheduler) -> None:
        """Run `scheduler` beside the engine's own loops, from now (or from `start`) until
        `close`: the slot for timed jobs (issue 10's daily/weekly/monthly runs)."""
        self.scheduler = scheduler
        if self._loops:  # started already
            self._loops.append(asyncio.create_task(scheduler.run(), name="scheduler"))

    async def close(self, reason: str = "engine shut down") -> None:
        if self.exporter is not None:  # never waits on BigQuery (agent/export/warehouse.py)
            await self.exporter.stop()
        for task in self._loops:
            task.cancel()
        if self._loops:  # a scheduler records its runs as interrupted on the way out
            await asyncio.wait(self._loops, timeout=LOOPS_CLOSE_S)
        await self.control.interrupt_all(reason)
        await self.bus.close()
        try:
            await self.store.remove_engine(self.engine_id)
        except StoreError as exc:  # its lock goes with the store: it reads as gone anyway
            log.warning("engine row not removed: %s", exc)
        await self.store.close()

    # -- tasks -----------------------------------------------------------------------------
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
        by: str = "operator",
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
        self.book.enter(task_id, ev.QUEUED)
        self.bus.emit(task_id, ev.STATUS, state=ev.QUEUED, title=title, workspace=str(ws))
        await self.safety.audit(by, "submit", task_id, {"title": title, "workspace": str(ws)})
        self.tasks.enqueue(task_id)
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
    ) -> Subscription:
        """Events as emitted; `transient=True` adds live `delta` notifications (agent/bus.py)."""
        return self.bus.subscribe(task_id, transient=transient)

    async def wait(self, task_id: str) -> dict[str, Any]:
        """Until the task reaches an end state (whoever runs it)."""
        while True:
            await self.tasks.join(task_id)
            task = await self.store.get_task(task_id)
            if task is None:
                raise UsageError(f"no task {task_id}")
            if task["state"] in ev.END_STATES:
                with contextlib.suppress(StoreError):  # kept for the flush loop
                    await self.bus.flush()
                return task
            unrecorded = self.book.unrecorded(task_id)
            state = self.book.state_of(task_id)
            if unrecorded and not self.tasks.is_running(task_id) and state in ev.END_STATES:
                # It ended here, but the store could not be told (a full disk).
                raise StoreError(
                    f"task {task_id} ended {state} but that could not be recorded: {unrecorded}"
                )
            await asyncio.sleep(0.1)

    def state_of(self, task_id: str) -> str:
        """The task's state as this engine knows it ("" for one it never held)."""
        return self.book.state_of(task_id)

    def live(self, task_id: str) -> LiveTask | None:
        """What this engine holds of the task now; None for one it never held."""
        if not self.book.holds(task_id):
            return None
        run = self.worker.run_of(task_id)
        return LiveTask(
            state=self.book.state_of(task_id),
            queued=task_id in self.tasks.queued(),
            running=self.tasks.is_running(task_id),
            steps=run.steps if run else 0,
            process_groups=tuple(run.procs.pgids) if run else (),
            waiting_on=tuple(self.desk.pending_of(task_id)),
            paused=self.pauses.is_paused(task_id),
        )

    async def activity(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each task's latest step and whether it is paused (agent/activity.py)."""
        return await now_doing(self.store, self.bus, task_ids)

    # -- control (agent/control.py) --------------------------------------------------------
    @property
    def stopped(self) -> bool:
        """The emergency stop is engaged: new work is held until re-armed."""
        return self.control.stopped

    async def cancel(self, task_id: str, by: str = "operator") -> None:
        await self.control.cancel(await self._require(task_id), by)

    async def pause(self, task_id: str, by: str = "operator") -> None:
        """Hold the task before its next model or tool call (state unchanged)."""
        await self.control.pause(task_id, True, by)

    async def resume(self, task_id: str, by: str = "operator") -> None:
        await self.control.pause(task_id, False, by)

    async def emergency_stop(self, by: str = "operator") -> None:
        await self.control.emergency_stop(by)

    async def rearm(self, by: str = "operator") -> None:
        await self.control.rearm(by)

    # -- approvals (agent/approvals.py) ----------------------------------------------------
    async def recent_approvals(self, limit: int = 100) -> list[dict[str, Any]]:
        """Requests in every state, newest first, with who decided them."""
        return await self.store.approvals(None, limit=limit)

    async def pending_approvals(self) -> list[dict[str, Any]]:
        return await self.store.approvals("pending")

    async def decide(
        self, approval_id: int, approved: bool, by: str = "operator", reason: str = ""
    ) -> dict[str, Any]:
        """First decider wins: the decided row, or AlreadyDecided naming who won."""
        return await self.desk.decide(approval_id, approved, by, reason)

    async def decide_task(
        self, task_id: str, approved: bool, by: str = "operator", reason: str = ""
    ) -> int:
        """Decide every pending request of a task (the CLI's approve/deny TASK_ID): how many
        this call decided; AlreadyDecided (naming the winners) for any it lost."""
        task = await self._require(task_id)
        return len(await self.desk.decide_task(task, approved, by, reason))

    # -- rollback (agent/rollback.py) ------------------------------------------------------
    async def rollback(
        self, task_id: str, to_step: int | None = None, by: str = "operator"
    ) -> dict[str, Any]:
        task = await self._require(task_id)
        return await self.rollbacks.run(task, to_step, by)

    async def _stop_and_wait(self, task_id: str, by: str) -> None:
        await self.cancel(task_id, by=by)
        await self.wait(task_id)

    # -- learnings (agent/learnings/book.py) ------------------------------------------------
    async def learnings(self, query: str | None = None) -> list[dict[str, Any]]:
        """Every learning (merged lessons, active and retired) with its teachings; a
        teammate's (pulled from BigQuery) carry their `origin`."""
        from .export.pull import annotate

        return await annotate(self.store, await self.learnbook.rows(query))

    async def export_status(self) -> dict[str, Any]:
        """The BigQuery export: lag, what waits, the last error (System Health)."""
        return await self.views.export_status()

    async def learnings_by_kind(self) -> dict[str, list[str]]:
        """The active learnings as `{"patterns", "improvements", "nextSteps"}` (the seed's)."""
        return await self.learnbook.by_kind()

    async def learning_stats(self, query: str | None = None) -> list[dict[str, Any]]:
        """Each learning with provenance and measured effect (`learnings --stats --json`,
        the Self-Improvement panel): id, text, category, source_task, uses, success_with,
        success_without, state, and the confidence interval and verdict behind them."""
        from .export.pull import annotate

        stats = await self.learnbook.stats(query)
        for s in stats:  # annotate tells ours from a teammate's by the tasks that taught it
            s["task_ids"] = [t for t in s["source_tasks"] if t]
        for s in await annotate(self.store, stats):
            s.pop("task_ids")
        return stats

    async def learning_counts(self) -> dict[str, int]:
        """Distinct learnings by state, and how many teachings were merged into them."""
        return await self.learnbook.counts()

    async def change_learning(
        self, learning_id: int, action: str, *, text: str = "", reason: str = "",
        by: str = "operator",
    ) -> dict[str, Any]:
        """pin, unpin, edit (`text`), retire or restore one learning; audited."""
        return await self.learnbook.change(
            learning_id, action, by, text=self.safety.redact(text),
            reason=self.safety.redact(reason),  # typed by a person, who may paste a key
        )

    async def relevant_learnings(
        self, title: str, limit: int = 8, workspace: str | None = None
    ) -> list[str]:
        """The active learnings most relevant to `title`: a look, nothing recorded."""
        return await self.learnbook.relevant(title, limit, workspace)

    def make_model(self, spec: str | None = None) -> Model:
        """A model made the way tasks get theirs (scripted in tests, Anthropic otherwise),
        for calls outside a task: the self-improvement jobs (agent/improve/)."""
        return self._model_factory(spec or self.config.engine.model)

    # -- conflicts between tasks, and the disk they use -------------------------------------
    async def conflicts(self, max_age: float = 0.0) -> dict[str, list[dict[str, Any]]]:
        """Live tasks that change files another live task on their workspace changes, or
        that a change landed on since they started: task id -> what (agent/conflicts.py).
        `max_age`: an answer that many seconds old will do (panels polling)."""
        return await self.radar.all(max_age)

    async def rebase(self, task_id: str, by: str = "operator") -> dict[str, Any]:
        """Have a task waiting to apply rebased onto its workspace's HEAD by its worker, which
        then asks to apply what would land now (agent/rebase.py); the decided request."""
        return await self.rebaser.request(task_id, by)

    async def keep(self, task_id: str, by: str = "operator") -> dict[str, Any]:
        """Leave a task waiting to apply on its branch, unapplied; the decided request."""
        return await self.rebaser.keep(task_id, by)

    async def gc(self, dry_run: bool = False, by: str = "operator") -> dict[str, Any]:
        """Prune (or list) what ended tasks left past [gc] keep_days (agent/prune.py)."""
        return await self.pruner.collect(dry_run, by)

    async def disk_usage(self) -> dict[str, Any]:
        """Bytes the tasks' worktrees, checkpoints, journals and the store take in the data
        dir (agent/diskuse.py; pruned by agent/prune.py)."""
        from .diskuse import disk_usage

        return await disk_usage(self.config, self.store)

    # -- views for panels and the API (agent/views.py) -------------------------------------
    def capabilities(self) -> list[dict[str, Any]]:
        return self.views.capabilities()

    async def recent_tool_use(self) -> dict[str, dict[str, Any]]:
        return await self.views.recent_tool_use()

    async def metrics(self, days: int = 14) -> dict[str, Any]:
        return await self.views.metrics(days)

    async def health(self, ping: bool = False) -> dict[str, Any]:
        return await self.views.health(ping)

    async def budget(self) -> dict[str, Any]:
        return await self.views.budget()

    async def audit_verify(self) -> tuple[bool, str]:
        return await verify(self.store)

    # -- policy and audit ------------------------------------------------------------------
    @property
    def policy_mode(self) -> str:
        return self.safety.policy.mode

    async def set_policy(self, tool: str, decision: str, by: str = "operator") -> None:
        self.safety.set_policy(tool, decision)
        await self.safety.audit(by, "policy", None, {"tool": tool, "decision": decision})

    async def set_policy_mode(self, mode: str, by: str = "operator") -> None:
        self.safety.set_mode(mode)
        await self.safety.audit(by, "policy_mode", None, {"mode": mode})

    async def emit(self, task_id: str, type_: str, **payload: Any) -> None:
        """An event into a task's stream (redacted, numbered, stored)."""
        self.bus.emit(task_id, type_, **payload)

    async def audit(
        self, actor: str, action: str, task_id: str | None, detail: dict[str, Any]
    ) -> None:
        await self.safety.audit(actor, action, task_id, detail)

    # -- internals -------------------------------------------------------------------------
    async def _require(self, task_id: str) -> dict[str, Any]:
        task = await self.store.get_task(task_id)
        if task is None:
            raise UsageError(f"no task {task_id!r} (see `livhana-cockpit history`)")
        return task
