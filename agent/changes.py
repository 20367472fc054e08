"""A task's change, into the operator's workspace and out again: the engine's side of
applying and undoing (agent/applyback.py does the git and file work, journaled by
agent/journal.py so a crash is finished or undone at the next start: agent/recovery.py).

One apply or rollback at a time per workspace in this process (another process is kept
out by git's index.lock, and a plain folder by its workspace lock, agent/wslock.py). The
task's checkpoints (agent/checkpoints.py) live here too: a plain folder's change is what
they saw, and a rollback to a step restores one.

    record = await changes.apply(workspace, tree, task, files)   # record["journal"]: open
    changes.settle(record.pop("journal"))       # once the outcome is recorded (else release)
    result = await changes.unapply(workspace, record, task_id)    # the same, undone
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from . import applyback, applyplain
from .checkpoints import Checkpoints
from .config import Config
from .workspace import TaskTree


class Changes:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._change_locks: dict[str, asyncio.Lock] = {}

    def shadow_dir(self, task_id: str) -> Path:
        return self.config.data_dir / "shadow" / task_id

    def checkpoints_for(self, task_id: str, work_tree: Path) -> Checkpoints:
        return Checkpoints(work_tree, self.shadow_dir(task_id))

    @property
    def journal_dir(self) -> Path:
        """Where applies and rollbacks journal themselves (agent/journal.py)."""
        return self.config.data_dir / "journal"

    async def apply(
        self, ws: Path, tree: TaskTree, task: dict[str, Any], plain_files: list[str] | None = None
    ) -> dict[str, Any]:
        """Apply the task's change; the record's "journal" names the journal kept open until
        the caller recorded the outcome (`settle`), or failed to (`release`)."""
        async with self._changing(ws):
            return await self._apply(ws, tree, task, plain_files)

    def _changing(self, ws: Path) -> asyncio.Lock:
        """One apply or rollback at a time per workspace in this process (another process
        is kept out by git's index.lock, and a plain folder by its workspace lock)."""
        return self._change_locks.setdefault(str(ws), asyncio.Lock())

    async def _apply(
        self, ws: Path, tree: TaskTree, task: dict[str, Any], plain_files: list[str] | None
    ) -> dict[str, Any]:
        if tree.is_git and tree.branch and tree.base_commit:
            return await applyback.apply(
                ws, tree.branch, tree.base_commit, title=task["title"], task_id=task["id"],
                journal_dir=self.journal_dir, keep_journal=True,
            )  # fmt: skip
        # A copied plain folder: the task's change is its tree now against its first
        # checkpoint (taken on the fresh copy). That checkpoint is also what the workspace
        # held when the task started: a file the operator changed since is refused, as the
        # git path refuses a file with uncommitted edits.
        plain_files, expected = await self._plain_change(task["id"], tree, plain_files)
        files = await asyncio.to_thread(applyplain.read_files, tree.path, plain_files)
        return await applyback.apply_plain(
            ws,
            files,
            self.shadow_dir(task["id"]) / "workspace",
            expected=expected,
            label=f"task {task['id']}",
            journal_dir=self.journal_dir,
            task_id=task["id"],
            keep_journal=True,
        )

    async def _plain_change(
        self, task_id: str, tree: TaskTree, plain_files: list[str] | None
    ) -> tuple[list[str], dict[str, Any] | None]:
        cps = self.checkpoints_for(task_id, tree.path)
        points = await cps.list()
        if not points:
            return list(plain_files or []), None
        start = str(points[0]["commit"])
        files = await cps.changed_files(start)  # fresh: a step rollback counts
        return files, await applyplain.checkpoint_files(cps.shadow_dir, tree.path, start, files)

    async def links_outside(
        self, ws: Path, tree: TaskTree, task: dict[str, Any], files: list[str]
    ) -> list[str]:
        """The task's new symlinks pointing out of the workspace ("path -> target"): the
        apply refuses them; the apply request shows them."""
        if tree.is_git and tree.branch and tree.base_commit:
            return await applyback.task_links_outside(ws, tree.branch, tree.base_commit)
        found = await asyncio.to_thread(applyplain.read_files, tree.path, files)
        return await asyncio.to_thread(applyplain.links_outside, ws, found)

    async def unapply(self, ws: Path, record: dict[str, Any], task_id: str = "") -> dict[str, Any]:
        async with self._changing(ws):
            return await applyback.rollback_applied(
                ws, record, journal_dir=self.journal_dir, task_id=task_id, keep_journal=True
            )

    def settle(self, op: str | None) -> None:
        """The outcome of an apply/rollback is recorded: its journal goes."""
        applyback.settle(op)

    def release(self, op: str | None) -> None:
        """Recording the outcome failed: the journal stays for the next start to settle."""
        applyback.release(op)
