"""After a crash: settle what a stopped process left behind.

- Tasks left live by an engine that is provably gone become `interrupted` (`dead_engines`).
  Death is proven, never guessed: an engine is dead when the lock it holds while alive can
  be taken (agent/store/liveness.py). A paused process or a busy event loop keeps it; the
  heartbeat is only for display. A task is taken from a dead engine by one atomic update
  (two recovering engines: one wins); the loser stops it without writing more
  (agent/control.py `task_lost`).
- Applies and rollbacks whose process died mid-way (`journals`). Each left a journal
  (agent/journal.py) in the data dir. On every engine start, and before a `rollback` of the
  task, each orphaned journal is finished (past its commit point) or undone (before it) by
  agent/applyback.py, and then the task's record is made to say which: its state,
  `options.applied`, a `warning` event naming what happened, and an audit entry by
  "recovery". A task whose apply was undone ends `interrupted`, with the workspace as
  before; one whose apply was finished ends `succeeded`, with `options.applied`, so
  `rollback` undoes it like any other. A rollback that was undone leaves the task as it
  was (applied): running `rollback` again does all of it.

    messages = await recovery.journals()             # every orphan
    messages = await recovery.journals(task_id)      # that task's only
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import applyback, workspace
from . import events as ev
from .journal import Journal, orphans
from .worker import drop_if_unchanged

if TYPE_CHECKING:
    from .approvals import ApprovalDesk
    from .bus import EventBus
    from .changes import Changes
    from .safety import Safety
    from .store import Store
    from .taskbook import TaskBook
    from .wslock import WorkspaceLocks

log = logging.getLogger(__name__)


class Recovery:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        book: TaskBook,
        desk: ApprovalDesk,
        safety: Safety,
        changes: Changes,
        locks: WorkspaceLocks,
        engine_id: str,
    ) -> None:
        self.store, self.bus, self.book, self.desk = store, bus, book, desk
        self.safety, self.changes, self.locks = safety, changes, locks
        self.engine_id = engine_id

    async def dead_engines(self) -> None:
        """Tasks left live by an engine that is provably gone become `interrupted`."""
        store = self.store
        # Tasks first, engines second: an engine registers before it makes a task and leaves
        # its row until its tasks have ended, so a task seen here whose engine has no row
        # any more was left behind by a dead one (or has ended since: take_over says so).
        tasks = await store.list_tasks(states=ev.LIVE_STATES, limit=10_000)
        engines = {e["id"]: e for e in await store.engines()}
        dead: dict[str | None, bool] = {}
        for task in tasks:
            owner = task["engine_id"]
            if owner == self.engine_id:
                continue
            if owner not in dead:
                row = engines.get(owner) if owner else None
                dead[owner] = row is None or not store.engine_alive(row)
            if not dead[owner] or not await store.take_over(task["id"], owner, self.engine_id):
                continue  # alive, or another engine recovering at the same moment got it
            await self.bus.own(task["id"])
            self.book.enter(task["id"], task["state"])
            why = "the process running it stopped"
            await self.book.transition(task["id"], ev.INTERRUPTED, why)
            # Its open requests can never be acted on now: out of the approval queue.
            for row in await store.approvals("pending", task_id=task["id"]):
                await self.desk.close(task["id"], row["id"], "interrupted", why, row["kind"])
            await self.book.complete(task["id"], False, f"interrupted: {why}")
            await self._drop_unchanged_tree(task)
        for engine_id, row in engines.items():  # gone engines leave no row or lock file behind
            if engine_id != self.engine_id and (dead.get(engine_id) or not store.engine_alive(row)):
                await store.remove_engine(engine_id)

    async def journals(self, task_id: str | None = None) -> list[str]:
        messages = []
        for journal in orphans(self.changes.journal_dir, task_id):
            try:
                outcome = await applyback.recover(journal)
            except Exception as exc:  # the workspace may be gone, git broken: say so, keep it
                log.error("could not recover %s (%s): %s", journal.op, journal.path, exc)
                journal.release()
                continue
            try:
                await self._record(journal, outcome)
            except Exception as exc:  # e.g. a full disk: the journal stays, the next start retries
                log.error("could not record the recovery of %s: %s", journal.op, exc)
                journal.release()
                continue
            journal.close()
            messages.append(outcome["message"])
        return messages

    async def _record(self, journal: Journal, outcome: dict[str, Any]) -> None:
        data = journal.data
        task_id = str(data.get("task_id") or "")
        task = await self.store.get_task(task_id) if task_id else None
        what = outcome["outcome"]
        message = f"{_cause(data)}; {outcome['message']}"
        log.warning("task %s: %s", task_id or "?", message)
        detail = {"journal": journal.op, "outcome": what, "message": message,
                  "kept": outcome["kept"]}  # fmt: skip
        if task is None:  # a journal of another store: the workspace is settled, nothing to record
            return
        await self.book.adopt(task_id, task["state"])
        self.bus.emit(task_id, ev.WARNING, message=message, recovered=what)
        if data["kind"] == "apply":
            await self._record_apply(task, outcome, message, detail)
        else:
            await self._record_rollback(task, outcome, message, detail)
        await self.bus.flush()

    async def _record_apply(
        self, task: dict[str, Any], outcome: dict[str, Any], message: str, detail: Any
    ) -> None:
        task_id, what = task["id"], outcome["outcome"]
        record = {k: v for k, v in outcome["result"].items() if k != "journal"}
        if what == "finished":
            options = {**task["options"], "applied": record}
            await self.store.update_task(task_id, options=options, error=None)
            await self.safety.audit("recovery", "apply", task_id, {**record, **detail})
            if task["state"] != ev.SUCCEEDED:
                await self.book.transition(task_id, ev.SUCCEEDED)
                await self.book.complete(task_id, True, message, list(record.get("files", [])))
            return
        await self.safety.audit("recovery", "apply_undone", task_id, detail)
        if task["state"] in ev.LIVE_STATES:  # applying when its process died
            branch = (
                f"; the task's change stays on branch {task['branch']}" if task["branch"] else ""
            )
            await self.book.transition(task_id, ev.INTERRUPTED, message + branch)
            await self.book.complete(task_id, False, f"interrupted: {message}{branch}")

    async def _record_rollback(
        self, task: dict[str, Any], outcome: dict[str, Any], message: str, detail: Any
    ) -> None:
        task_id, what = task["id"], outcome["outcome"]
        result = outcome["result"]
        if what != "finished":
            await self.safety.audit("recovery", "rollback_undone", task_id, detail)
            return
        await self.safety.audit("recovery", "rollback", task_id, {"applied": True, **detail,
                                "action": result.get("action")})  # fmt: skip
        if task["state"] != ev.ROLLED_BACK:
            self.bus.emit(task_id, ev.ROLLBACK, message=result.get("message", message),
                          applied=True, by="recovery")  # fmt: skip
            await self.book.transition(task_id, ev.ROLLED_BACK, result.get("message", message))

    async def _drop_unchanged_tree(self, task: dict[str, Any]) -> None:
        """An interrupted task that changed nothing leaves no worktree or branch behind (one
        with changes stays, for review or rollback), like a task that ends by itself."""
        worktree = task.get("worktree")
        if not worktree or not task.get("branch") or not Path(worktree).is_dir():
            return  # not prepared, a plain folder's copy, or gone: never drop a branch blind
        tree = await workspace.tree_for(task)
        await drop_if_unchanged(self.store, self.locks, task["id"], tree, None)  # never raises


async def needs_recovery(store: Store, data_dir: Path) -> bool:
    """Whether a stopped process left something for the next start to settle: an apply
    or rollback journal, or a live task whose engine is provably gone. Read-only, so a
    command that only shows the store starts an engine (and writes) only then."""
    if any((Path(data_dir) / "journal").glob("*.json")):
        return True
    live = await store.list_tasks(states=ev.LIVE_STATES, limit=10_000)
    if not live:
        return False
    engines = {e["id"]: e for e in await store.engines()}
    return any(
        t["engine_id"] not in engines or not store.engine_alive(engines[t["engine_id"]])
        for t in live
    )


def _cause(data: dict[str, Any]) -> str:
    word = "applying" if data.get("kind") == "apply" else "rolling back"
    return f"the process {word} this task (pid {data.get('pid', '?')}) stopped mid-way"
