"""Conflict radar: tasks on one workspace that change the same files.

Two kinds of overlap are found, for every live task (whichever process runs it):
- with another live task on the same workspace: both change a path (`live`);
- with a change that landed in the workspace since the task started: a commit in
  `base..HEAD` of the operator's repository touches a path the task changes (`landed`),
  named by the task it applied, or as the commit it is.

What a task changes is read without touching anything it uses: its shadow checkpoints
(first checkpoint against the one the worktree matches now: what it changed so far,
shell edits included) and its branch against its base (what an apply would take). No
index, no lock, no worktree is touched; the model's tree is never read by git.

    radar = Radar(store, changes)
    found = await radar.all()            # {task_id: [clash, ...]} for live tasks
    clash = {"task_id": "ab12..."|None, "title", "state", "applied": bool,
             "commit": sha|None, "paths": [...]}

`note(clashes)` says it in one line for an apply card; `describe` in a few for its detail.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import events as ev
from .checkpoints import BASE_REF, BRANCH
from .errors import CockpitError
from .gitcmd import Git, git_env
from .worktreeinclude import recorded

if TYPE_CHECKING:
    from .changes import Changes
    from .store import Store

MAX_PATHS = 2000  # paths kept per task (a task rewriting the whole tree overlaps anyway)
LANDED_COMMITS = 50  # newest commits since a task's base looked at


class Radar:
    """Which live tasks overlap, read from the store, the tasks' checkpoints and branches.
    Any process can ask: the tasks of every engine on the data dir are seen."""

    def __init__(self, store: Store, changes: Changes) -> None:
        self.store, self.changes = store, changes
        # task id -> (signature, paths): recomputed only when the signature moves (a
        # checkpoint, a restore, a state change, a rebase): the cockpit's polling costs no git.
        self._paths: dict[str, tuple[tuple[Any, ...], frozenset[str]]] = {}
        self._last: tuple[float, dict[str, list[dict[str, Any]]]] | None = None

    async def all(self, max_age: float = 0.0) -> dict[str, list[dict[str, Any]]]:
        """Every live task that overlaps with something, and with what (see the module
        doc). `max_age`: a result computed that recently will do (a panel polling)."""
        if self._last is not None and time.monotonic() - self._last[0] <= max_age:
            return self._last[1]
        found = await self._scan()
        self._last = (time.monotonic(), found)
        return found

    async def _live(self) -> list[dict[str, Any]]:
        return await self.store.list_tasks(states=ev.LIVE_STATES, limit=500)

    async def _scan(self) -> dict[str, list[dict[str, Any]]]:
        live = await self._live()
        by_ws: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for task in live:
            by_ws[task["workspace"]].append(task)
        found: dict[str, list[dict[str, Any]]] = {}
        for ws, tasks in by_ws.items():
            paths = {t["id"]: await self.task_paths(t) for t in tasks}
            for i, a in enumerate(tasks):
                for b in tasks[i + 1 :]:
                    common = paths[a["id"]] & paths[b["id"]]
                    if common:
                        found.setdefault(a["id"], []).append(_live(b, common))
                        found.setdefault(b["id"], []).append(_live(a, common))
            for task in tasks:
                if task.get("base_commit") and paths[task["id"]]:
                    landed = await self.landed_since(ws, task["base_commit"], paths[task["id"]])
                    if landed:
                        found.setdefault(task["id"], []).extend(landed)
        alive = {t["id"] for t in live}
        for gone in [t for t in self._paths if t not in alive]:
            del self._paths[gone]
        return found

    async def for_task(self, task: dict[str, Any], paths: Iterable[str] | None = None
                       ) -> list[dict[str, Any]]:  # fmt: skip
        """What one task overlaps with now: other live tasks on its workspace, and changes
        that landed since its base. `paths`: the task's own, when the caller knows them."""
        mine = frozenset(paths) if paths is not None else await self.task_paths(task)
        if not mine:
            return []
        clashes: list[dict[str, Any]] = []
        for other in await self._live():
            if other["id"] == task["id"] or other["workspace"] != task["workspace"]:
                continue
            if common := mine & await self.task_paths(other):
                clashes.append(_live(other, common))
        if task.get("base_commit"):
            clashes += await self.landed_since(task["workspace"], task["base_commit"], mine)
        return clashes

    async def task_paths(self, task: dict[str, Any]) -> frozenset[str]:
        """The paths a task changes (so far): its checkpoints' and its branch's, without
        the ignored files `.worktreeinclude` gave it."""
        shadow = self.changes.shadow_dir(task["id"])
        signature = (_stamp(shadow / BASE_REF), _stamp(shadow / BRANCH), task["state"],
                     task.get("base_commit"), task.get("branch"))  # fmt: skip
        cached = self._paths.get(task["id"])
        if cached is not None and cached[0] == signature:
            return cached[1]
        paths: set[str] = set()
        try:
            paths |= await _checkpointed(shadow)
            if task.get("branch") and task.get("base_commit"):
                paths |= await _on_branch(Path(task["workspace"]), task["base_commit"],
                                          task["branch"])  # fmt: skip
        except (CockpitError, OSError):
            pass  # a workspace gone, a branch discarded: what could be read is what it changes
        if task.get("worktree") and task.get("branch"):
            paths -= {os.fsdecode(p) for p in await _included(task)}
        found = frozenset(sorted(paths)[:MAX_PATHS])
        self._paths[task["id"]] = (signature, found)
        return found

    async def landed_since(
        self, workspace: str, base: str, paths: Iterable[str]
    ) -> list[dict[str, Any]]:
        """Commits in `base..HEAD` of the workspace that touch `paths`, one clash per
        commit (newest first), named by the task whose apply made it when there is one."""
        commits = await _commits_touching(Path(workspace), base, set(paths))
        if not commits:
            return []
        appliers = await self._appliers(workspace)
        out = []
        for sha, subject, touched in commits:
            task = appliers.get(sha)
            out.append({
                "task_id": task["id"] if task else None,
                "title": task["title"] if task else subject,
                "state": "applied" if task else "committed",
                "applied": True, "commit": sha, "paths": sorted(touched),
            })  # fmt: skip
        return out

    async def _appliers(self, workspace: str) -> dict[str, dict[str, Any]]:
        """Applied commit -> the task that made it, for the workspace's recent applied tasks."""
        rows = await self.store.fetch(
            "SELECT id, title, options FROM tasks WHERE workspace = ? AND state = ? "
            "ORDER BY finished_at DESC LIMIT 200",
            [workspace, ev.SUCCEEDED],
        )
        found = {}
        for row in rows:
            try:
                applied = (json.loads(row["options"] or "{}") or {}).get("applied") or {}
            except ValueError:
                continue
            if applied.get("applied_commit"):
                found[str(applied["applied_commit"])] = row
        return found


def _live(other: dict[str, Any], common: Iterable[str]) -> dict[str, Any]:
    return {"task_id": other["id"], "title": other["title"], "state": other["state"],
            "applied": False, "commit": None, "paths": sorted(common)}  # fmt: skip


def _stamp(path: Path) -> tuple[int, int]:
    """A ref file's change stamp ((0, 0) when it does not exist): every checkpoint and
    restore rewrites it."""
    try:
        st = os.stat(path)
    except OSError:
        return 0, 0
    return st.st_mtime_ns, st.st_ino


async def _checkpointed(shadow: Path) -> set[str]:
    """Paths that differ between the task's first checkpoint and the one its tree matches."""
    if not (shadow / "HEAD").exists():
        return set()
    g = Git(shadow, git_dir=shadow, env=git_env(isolated=True))
    roots = (await g.text("rev-list", "--max-parents=0", BRANCH, check=False)).split()
    now = (await g.text("rev-parse", "-q", "--verify", f"{BASE_REF}^{{commit}}", check=False)).strip()
    if not roots or not now:
        return set()
    raw = await g.out("diff-tree", "-r", "-z", "--no-renames", "--name-only", roots[-1], now)
    return _names(raw)


async def _on_branch(ws: Path, base: str, branch: str) -> set[str]:
    raw = await Git(ws).out(
        "diff-tree", "-r", "-z", "--no-renames", "--name-only", base, f"refs/heads/{branch}",
        check=False,
    )  # fmt: skip
    return _names(raw)


async def _included(task: dict[str, Any]) -> list[bytes]:
    from .workspace import tree_for

    try:
        return recorded((await tree_for(task)).git_dir)
    except (CockpitError, OSError):
        return []


def _names(raw: bytes) -> set[str]:
    return {p for p in raw.decode(errors="surrogateescape").split("\0") if p}


async def _commits_touching(ws: Path, base: str, wanted: set[str]
                            ) -> list[tuple[str, str, set[str]]]:  # fmt: skip
    """(sha, subject, paths of `wanted` it touched) for commits in `base..HEAD`, newest first."""
    if not wanted:
        return []
    repo = Git(ws)
    code, _, _ = await repo.run("merge-base", "--is-ancestor", base, "HEAD", check=False)
    if code != 0:
        return []  # HEAD moved off the base (a branch switch): apply says so itself
    raw = await repo.out(
        "log", f"-n{LANDED_COMMITS}", "-z", "--no-renames", "--name-only", "--format=%x01%H %s",
        f"{base}..HEAD", check=False,
    )  # fmt: skip
    commits: list[tuple[str, str, set[str]]] = []
    for record in raw.decode(errors="surrogateescape").split("\x01")[1:]:
        # "<sha> <subject>\0\n<path>\0<path>\0" (no paths for a merge commit)
        head, _, files = record.partition("\0")
        sha, _, subject = head.partition(" ")
        touched = {f.lstrip("\n") for f in files.split("\0") if f.lstrip("\n")} & wanted
        if touched:
            commits.append((sha, subject, touched))
    return commits


# -- words for the cockpit, the CLI and the apply card --------------------------------------
def who(clash: dict[str, Any], state: bool = True) -> str:
    """'task 1a2b3c4d (running)', 'task 1a2b3c4d (applied)', 'commit 9f8e7d6c5b "Fix"'.
    `state=False`: a live task's state left out (an apply card outlives it)."""
    if clash.get("task_id"):
        if not state and not clash["applied"]:
            return f"task {clash['task_id'][:8]}"
        return f"task {clash['task_id'][:8]} ({str(clash['state']).replace('_', ' ')})"
    return f"commit {str(clash.get('commit'))[:10]} \"{_short(clash.get('title') or '', 40)}\""


def note(clashes: list[dict[str, Any]]) -> str:
    """One line for a summary: 'CONFLICT: task 1a2b3c4d also changes app.py'."""
    if not clashes:
        return ""
    first = clashes[0]
    verb = "changed" if first["applied"] else "also changes"
    more = f" (+{len(clashes) - 1} more)" if len(clashes) > 1 else ""
    return f"CONFLICT: {who(first, False)} {verb} {_paths(first['paths'])}{more}"


def describe(clashes: list[dict[str, Any]]) -> str:
    """A few lines for the detail pane: each overlap, and what the operator can do."""
    lines = []
    for c in clashes:
        if c["applied"]:
            lines.append(f"{who(c)} landed since this task started and changed "
                         f"{_paths(c['paths'], 8)}")  # fmt: skip
        else:
            lines.append(f"{who(c, False)} also changes {_paths(c['paths'], 8)}")
    if any(c["applied"] for c in clashes):
        lines.append("approving does not apply over it: you then choose to rebase this task "
                     "onto the new HEAD (see what would land, then approve) or to keep it on "
                     "its branch; `livhana-cockpit rebase TASK_ID` does the first now")
    else:
        lines.append("whichever applies second is offered a rebase onto the first, or to "
                     "stay on its branch")
    return "\n".join(lines)


def _paths(paths: list[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
