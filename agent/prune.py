"""Pruning what ended tasks leave on disk, by the `[gc]` policy of config.toml.

A task leaves three things behind: its worktree (`<data dir>/worktrees/<id>`, with git's
admin dir for it in the operator's repository), its branch `livhana/<id>` in the operator's
repository, and its shadow checkpoints (`<data dir>/shadow/<id>`). They are kept while
someone may want them (review a branch, roll back to a step) and pruned once the task has
ended more than `keep_days` ago:

    [gc]
    keep_days = 14    # 0: as soon as a task has ended
    auto = "daily"    # "daily": at most once a day, "start": at each start (of the cockpit
                      # or the daemon, once no task of theirs runs), "off": only `gc`

Never removed:
- anything of a task that has not ended, or that has a journal left (an apply or
  rollback cut short by a crash: recovery needs the task as it is);
- what the rollback of an applied task needs. For a git workspace that is the task's
  record in the store alone (`options.applied`: the pre-apply commit and the applied
  commit, both in the operator's own history; a rollback moves HEAD back or makes a revert
  commit from them), so its worktree, branch and checkpoints do go. For a plain folder it
  is the snapshots of the workspace before and after the apply (`shadow/<id>/workspace`,
  the record's `shadow_dir`), kept until the task is rolled back; the rest goes;
- anything the operator made: a branch holding a commit the engine did not make (author
  or committer other than Liv Hana), a branch checked out in another worktree, a worktree
  holding a file changed after the task's last recorded activity. Then the task's
  worktree, branch and checkpoints are all kept, and the report says why;
- anything no task in the store names, and any path outside the data dir.

    report = await pruner.collect(dry_run=True)
    # {"dry_run", "keep_days", "removed": [item], "kept": [item], "freed_bytes", "tasks"}
    # item: {"task_id", "what": "worktree"|"branch"|"checkpoints", "where", "bytes", "why"}
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import workspace
from .diskuse import LAST_RUN, forget, tree_bytes
from .errors import CockpitError
from .fileswitch import to_the_end
from .gitcmd import IDENTITY, Git

if TYPE_CHECKING:
    from .changes import Changes
    from .config import Config
    from .safety import Safety
    from .store import Store
    from .wslock import WorkspaceLocks

log = logging.getLogger(__name__)

DAY_S = 86_400.0
SLACK_S = 5.0  # a file written this long after the last recorded activity is the operator's
START_DELAY_S = 10.0  # auto: wait this long after an engine starts before looking
CALM_CHECK_S = 60.0  # auto: how often it looks again for a calm moment / a new day
AUTO_ROLES = ("tui", "daemon")  # the engines an operator keeps running; not one-shot CLIs
LOCK = ".gc.lock"  # beside the store: one gc at a time per data dir


class Pruner:
    """Prunes the leftovers of ended tasks (`collect`), from the CLI's `gc` or, by the
    `[gc] auto` policy, on its own in a cockpit's or daemon's engine (`loop`)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        safety: Safety,
        changes: Changes,
        locks: WorkspaceLocks,
        engine_id: str,
        role: str,
    ) -> None:
        self.config, self.store, self.safety, self.changes = config, store, safety, changes
        self.locks, self.engine_id, self.role = locks, engine_id, role

    async def collect(self, dry_run: bool = False, by: str = "operator") -> dict[str, Any]:
        """Prune (or, with `dry_run`, list) the leftovers of ended tasks past the policy."""
        config = self.config
        keep_days = float(config.gc.keep_days)
        cutoff = time.time() - keep_days * DAY_S
        journaled = _journaled_tasks(self.changes.journal_dir)
        removed: list[dict[str, Any]] = []
        kept: list[dict[str, Any]] = []
        tasks = 0
        with _exclusive(config.data_dir) as mine:
            if not mine:
                raise CockpitError("another gc is running on this data dir; try again when it ends")
            for task in await self._ended():
                ended = task.get("finished_at") or task.get("updated_at") or 0
                if ended > cutoff:
                    continue
                found = await self._leftovers(task)
                if not found:
                    continue
                tasks += 1
                why = await self._keep_reason(task, found, journaled)
                if why:
                    kept += [{**item, "why": why} for item in found]
                    continue
                needed = self._needed_for_rollback(task)
                for item in found:
                    if item["what"] == "checkpoints" and needed:
                        held = await _size(Path(needed))
                        why = (f"the rollback of applied task {task['id'][:8]} needs these "
                               "snapshots of the workspace")  # fmt: skip
                        kept.append({**item, "where": needed, "bytes": held, "why": why})
                        item.update(bytes=max(0, item["bytes"] - held),
                                    where=f"{item['where']} (all but {Path(needed).name}/)")
                if not dry_run:
                    try:
                        await to_the_end(self._remove(task, found, needed))
                    except (CockpitError, OSError) as exc:
                        kept += [{**item, "why": f"could not remove: {exc}"} for item in found]
                        continue
                removed += found
            freed = sum(i["bytes"] for i in removed)
            report = {"dry_run": dry_run, "keep_days": keep_days, "removed": removed,
                      "kept": kept, "freed_bytes": freed, "tasks": tasks}  # fmt: skip
            if not dry_run:
                last = {"at": time.time(), "freed_bytes": freed, "removed": len(removed), "by": by}
                await self.store.set_setting(LAST_RUN, last)
                forget(config.data_dir)
                if removed:
                    pruned = sorted({i["task_id"] for i in removed})
                    await self.safety.audit(by, "gc", None, {"freed_bytes": freed, "tasks": pruned})
        return report

    async def _ended(self) -> list[dict[str, Any]]:
        rows = await self.store.fetch(
            f"SELECT id FROM tasks WHERE state IN ({', '.join('?' for _ in ev.END_STATES)}) "
            "AND (worktree IS NOT NULL OR branch IS NOT NULL) ORDER BY finished_at",
            list(ev.END_STATES),
        )
        out = []
        for row in rows:
            task = await self.store.get_task(row["id"])
            if task is not None and task["state"] in ev.END_STATES:
                out.append(task)
        return out

    async def _leftovers(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        """What the task left that still exists (never a path outside the data dir)."""
        config, tid = self.config, task["id"]
        found: list[dict[str, Any]] = []
        if task.get("worktree"):
            path = Path(task["worktree"])
            if _inside(path, config.worktrees_dir) and (path.exists() or path.is_symlink()):
                found.append(_item(tid, "worktree", str(path), await _size(path)))
        if task.get("branch") and await _branch_tip(task):
            found.append(_item(tid, "branch", f"{task['branch']} in {task['workspace']}", 0))
        shadow = self.changes.shadow_dir(tid)
        if _inside(shadow, config.data_dir / "shadow") and shadow.exists():
            found.append(_item(tid, "checkpoints", str(shadow), await _size(shadow)))
        return found

    async def _keep_reason(
        self, task: dict[str, Any], found: list[dict[str, Any]], journaled: set[str]
    ) -> str:
        """Why nothing of this task may go ("" when it may)."""
        if task["id"] in journaled or "*" in journaled:
            return "a journal of an apply or rollback of it is left (the next start settles it)"
        if task.get("branch") and any(i["what"] == "branch" for i in found):
            if where := await _checked_out_elsewhere(task):
                return f"its branch is checked out at {where}"
            if mine := await _foreign_commits(task):
                return f"its branch holds {mine} commit(s) you made"
        worktree = next((Path(i["where"]) for i in found if i["what"] == "worktree"), None)
        if worktree is not None:
            last = await self._last_activity(task)
            if changed := await asyncio.to_thread(_changed_after, worktree, last + SLACK_S):
                return f"its worktree has {changed} changed after the task's last activity"
        return ""

    async def _last_activity(self, task: dict[str, Any]) -> float:
        """The task's last recorded moment: its end, or a later event (a step rollback)."""
        rows = await self.store.fetch(
            "SELECT MAX(ts) AS ts FROM events WHERE task_id = ?", [task["id"]]
        )
        last = rows[0]["ts"] if rows and rows[0]["ts"] else 0.0
        return max(float(last), float(task.get("finished_at") or 0.0))

    def _needed_for_rollback(self, task: dict[str, Any]) -> str | None:
        """The path an applied task's rollback reads under the data dir (None: none)."""
        applied = task["options"].get("applied") or {}
        if task["state"] != ev.SUCCEEDED or applied.get("kind") != "plain":
            return None
        needed = applied.get("shadow_dir")
        if needed and _inside(Path(needed), self.changes.shadow_dir(task["id"])):
            return str(needed)
        return None

    async def _remove(
        self, task: dict[str, Any], found: list[dict[str, Any]], needed: str | None
    ) -> None:
        ws = Path(task["workspace"])
        whats = {i["what"] for i in found}
        if whats & {"worktree", "branch"}:
            tree = await workspace.tree_for(task)
            if "worktree" not in whats:  # already gone: only git's bookkeeping and the branch
                tree.path = Path(task["worktree"] or self.config.worktrees_dir / task["id"])
            async with self.locks.worktree(str(ws)):
                await workspace.discard(ws, tree)
            if "branch" in whats and await _branch_tip(task):
                raise CockpitError(f"branch {task['branch']} could not be deleted")
        if "checkpoints" in whats:
            await asyncio.to_thread(_remove_shadow, self.changes.shadow_dir(task["id"]), needed)

    async def loop(self) -> None:
        """The `[gc] auto` policy, in a cockpit's or a daemon's engine: once no task of this
        engine is live, at its start ("start") or when the last gc is a day old ("daily")."""
        mode = self.config.gc.auto
        if mode == "off" or self.role not in AUTO_ROLES:
            return
        await asyncio.sleep(START_DELAY_S)
        while True:
            if await self._due(mode) and await self._calm():
                try:
                    report = await self.collect(by=f"auto ({self.role})")
                except CockpitError as exc:
                    log.info("automatic gc skipped: %s", exc)
                except Exception as exc:  # never takes the engine down
                    log.warning("automatic gc failed: %s", exc)
                else:
                    if report["removed"]:
                        log.info("gc: removed %d item(s) of %d ended task(s), %d bytes freed",
                                 len(report["removed"]), report["tasks"], report["freed_bytes"])
                if mode == "start":
                    return
            await asyncio.sleep(CALM_CHECK_S)

    async def _due(self, mode: str) -> bool:
        if mode == "start":
            return True
        last = await self.store.get_setting(LAST_RUN, {}) or {}
        return time.time() - float(last.get("at") or 0) >= DAY_S

    async def _calm(self) -> bool:
        live = await self.store.list_tasks(states=ev.LIVE_STATES, limit=500)
        return not any(t.get("engine_id") == self.engine_id for t in live)


def _item(task_id: str, what: str, where: str, size: int) -> dict[str, Any]:
    return {"task_id": task_id, "what": what, "where": where, "bytes": size}


def _inside(path: Path, folder: Path) -> bool:
    """`path` is strictly inside `folder` (lexically, symlinks not followed: a worktree
    path recorded elsewhere, or `..` in it, is never ours to remove)."""
    path, folder = Path(os.path.abspath(path)), Path(os.path.abspath(folder))
    return path != folder and path.is_relative_to(folder) and ".." not in path.parts


async def _size(path: Path) -> int:
    return await asyncio.to_thread(tree_bytes, path)


async def _branch_tip(task: dict[str, Any]) -> str:
    out = await Git(Path(task["workspace"])).text(
        "rev-parse", "-q", "--verify", f"refs/heads/{task['branch']}^{{commit}}", check=False
    )
    return out.strip()


def _journaled_tasks(journal_dir: Path) -> set[str]:
    """Tasks with a journal left (an apply or rollback a crash cut short)."""
    tasks: set[str] = set()
    with contextlib.suppress(OSError):
        for path in journal_dir.glob("*.json"):
            try:
                tasks.add(str(json.loads(path.read_text(encoding="utf-8")).get("task_id") or ""))
            except (OSError, ValueError):
                tasks.add("*")  # unreadable: which task it holds is unknown, so keep all
    return tasks


async def _checked_out_elsewhere(task: dict[str, Any]) -> str:
    raw = await Git(Path(task["workspace"])).out("worktree", "list", "--porcelain", "-z",
                                                 check=False)  # fmt: skip
    path = ""
    own = os.path.abspath(task.get("worktree") or "")
    for field in raw.decode(errors="surrogateescape").split("\0"):
        if field.startswith("worktree "):
            path = field[len("worktree "):]
        elif field == f"branch refs/heads/{task['branch']}" and os.path.abspath(path) != own:
            return path
    return ""


async def _foreign_commits(task: dict[str, Any]) -> int:
    """Commits on the task's branch (since its base) that the engine did not make."""
    base = task.get("base_commit")
    spec = [f"{base}..refs/heads/{task['branch']}"] if base else [f"refs/heads/{task['branch']}"]
    out = await Git(Path(task["workspace"])).text(
        "log", "--no-merges", "--format=%ae %ce", *spec, "--", check=False
    )
    ours = f"{IDENTITY[1]} {IDENTITY[1]}"
    return sum(1 for line in out.splitlines() if line.strip() and line.strip() != ours)


def _changed_after(root: Path, since: float) -> str:
    """A file or folder under `root` (its `.git` aside) modified after `since`, or ""."""
    for path, st in _walk(root):
        if st.st_mtime > since:
            return str(path.relative_to(root))
    return ""


def _walk(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if folder == root and entry.name == ".git":
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            yield Path(entry.path), st


def _remove_shadow(shadow: Path, needed: str | None) -> None:
    if needed is None:
        shutil.rmtree(shadow, ignore_errors=True)
        return
    keep = Path(needed)
    for entry in list(shadow.iterdir()):
        if entry == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[bool]:
    """One gc at a time per data dir, across processes (a lock file beside the store)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


