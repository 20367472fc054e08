"""Where a task works: its own git worktree on branch livhana/<task-id>, so parallel tasks
never touch each other or the operator's tree. A workspace that is not a git repo is
copied to a scratch folder instead (tasks on it run one at a time: agent/wslock.py).

A task worktree is the model's to write, its `.git` file included. So the engine never lets
git find the repository from inside it: every call names the worktree's admin dir in the
operator's repository (`<common>/worktrees/<name>`, which the sandbox cannot write), found
from the operator's checkout at `prepare` and again by `tree_for` in any later process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CockpitError, UsageError
from .gitcmd import Git, GitError, git, is_git_repo
from .worktreeinclude import copy_included, recorded

COPY_IGNORE = shutil.ignore_patterns(".git", "node_modules", ".venv", "venv", "__pycache__")
DIFF_LIMIT = 60_000  # the approval card shows a bounded patch


@dataclass
class TaskTree:
    path: Path
    branch: str | None
    base_commit: str | None
    is_git: bool
    # The worktree's admin dir in the operator's repository (None: a plain folder's copy,
    # or not found). Never read from `path/.git`: see the module doc.
    git_dir: Path | None = None

    @property
    def common_dir(self) -> Path | None:
        """The operator's repository (objects, refs, config) this worktree belongs to."""
        return None if self.git_dir is None else self.git_dir.parent.parent


async def check_workspace(workspace: Path, worktrees_dir: Path | None = None) -> Path:
    """The workspace, resolved, or a UsageError before any task is created for it."""
    workspace = workspace.expanduser()
    if not workspace.exists():
        raise UsageError(f"workspace {workspace} does not exist")
    if not workspace.is_dir():
        raise UsageError(f"workspace {workspace} is not a directory")
    workspace = workspace.resolve()
    if worktrees_dir is not None and workspace.is_relative_to(worktrees_dir.resolve()):
        # The model wrote it, its .git included: git must not even look for a repo there.
        raise UsageError(
            f"workspace {workspace} is a task's worktree (written by the agent); run tasks "
            "on your own checkout, and review a task there: git diff HEAD livhana/<task-id>"
        )
    if await is_git_repo(workspace) and not await head_commit(workspace):
        raise UsageError(_NO_COMMITS.format(workspace=workspace))
    return workspace


_NO_COMMITS = "workspace {workspace} is a git repo with no commits yet; commit once first"


async def head_commit(workspace: Path) -> str:
    """The commit HEAD names in the operator's checkout `workspace`, "" when there is none."""
    return (await git("rev-parse", "--verify", "-q", "HEAD", cwd=workspace, check=False)).strip()


async def _common_dir(repo: Git) -> Path:
    return Path(
        (await repo.text("rev-parse", "--path-format=absolute", "--git-common-dir")).strip()
    )


def _admin_dir(common: Path, worktree: Path) -> Path | None:
    """The admin dir git made for `worktree` in the repository whose common dir is `common`:
    the one whose `gitdir` file names `worktree/.git`. That file is git's, outside the
    worktree; `worktree/.git` itself (the model's to replace, even by a symlink) is never read."""
    want = _dotgit(worktree)
    base = common / "worktrees"
    try:
        candidates = [base / worktree.name, *sorted(base.iterdir())]
    except OSError:
        return None
    for admin in candidates:
        try:
            named = Path((admin / "gitdir").read_text().strip())
        except OSError:
            continue
        if _dotgit(named.parent) == want:
            return admin
    return None


def _dotgit(worktree: Path) -> str:
    return os.path.join(os.path.realpath(worktree), ".git")


def _tree_git(tree: TaskTree) -> Git:
    if tree.git_dir is None:
        raise GitError(f"the git dir of worktree {tree.path} is unknown (was it pruned?)")
    return Git(tree.path, git_dir=tree.git_dir, work_tree=tree.path)


async def tree_for(task: Mapping[str, Any]) -> TaskTree:
    """The TaskTree of a task recorded in the store (another process, a later start)."""
    path, branch = Path(task["worktree"]), task.get("branch")
    git_dir = None
    if branch:
        try:
            git_dir = _admin_dir(await _common_dir(Git(Path(task["workspace"]))), path)
        except (CockpitError, OSError):
            git_dir = None  # the operator's repository moved or is gone: nothing to name
    return TaskTree(path, branch, task.get("base_commit"), bool(branch), git_dir)


async def prepare(workspace: Path, task_id: str, worktrees_dir: Path) -> TaskTree:
    # Absolute: git resolves a relative path against the workspace, not our cwd.
    worktrees_dir = worktrees_dir.expanduser().absolute()
    target = worktrees_dir / task_id
    worktrees_dir.mkdir(parents=True, exist_ok=True)
    if await is_git_repo(workspace):
        head = await head_commit(workspace)
        if not head:  # checked at submit too; the repo may have changed since
            raise UsageError(_NO_COMMITS.format(workspace=workspace))
        branch = f"livhana/{task_id}"
        repo = Git(workspace)
        await repo.run("worktree", "add", "-q", "-b", branch, str(target), head)
        admin = await _found_admin(repo, target)
        await copy_included(workspace, target, admin)  # .worktreeinclude (agent/worktreeinclude.py)
        return TaskTree(target, branch, head, True, admin)
    own = worktrees_dir.parent.resolve()  # the data dir: never copy it into itself

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = set(COPY_IGNORE(folder, names))
        return skipped | {n for n in names if (Path(folder) / n).resolve() == own}

    await asyncio.to_thread(shutil.copytree, workspace, target, ignore=ignore, symlinks=True)
    return TaskTree(target, None, None, False)


async def _found_admin(repo: Git, worktree: Path) -> Path:
    admin = _admin_dir(await _common_dir(repo), worktree)
    if admin is None:
        raise GitError(f"git worktree add made no admin dir for {worktree}")
    return admin


async def add_baseline(tree: TaskTree, path: Path) -> TaskTree:
    """A detached worktree of the task's base commit at `path` (for a baseline test run)."""
    repo = _tree_git(tree)
    await repo.run("worktree", "add", "-q", "--detach", str(path), str(tree.base_commit))
    return TaskTree(path, None, tree.base_commit, True, await _found_admin(repo, path))


async def tree_head(tree: TaskTree) -> str:
    """The commit the task's branch is at ("" when unknown)."""
    out = await _tree_git(tree).text("rev-parse", "--verify", "-q", "HEAD", check=False)
    return out.strip()


async def commit_all(tree: TaskTree, message: str) -> str | None:
    """Commit everything in the task's worktree to its branch; returns the commit or None.
    Plumbing, not `git commit`: no hook, no status of nested repositories."""
    if not tree.is_git:
        return None
    g = _tree_git(tree)
    await _stage(g, tree)
    head, base_tree = (await g.text("rev-parse", "HEAD^{commit}", "HEAD^{tree}")).split()
    staged = (await g.text("write-tree")).strip()
    if staged == base_tree:
        return head
    commit = (await g.text("commit-tree", staged, "-p", head, "-m", message)).strip()
    await g.run("update-ref", "-m", f"commit: {message.splitlines()[0]}", "HEAD", commit, head)
    return commit


async def _stage(g: Git, tree: TaskTree) -> None:
    """Stage the task's work: everything, except the ignored files `.worktreeinclude`
    copied in (dropped from the index whatever the worktree's `.gitignore` says now)."""
    await g.stage_all()
    if included := recorded(tree.git_dir):
        await g.run(
            "update-index", "-z", "--force-remove", "--stdin", stdin=b"\0".join(included) + b"\0"
        )


async def has_changes(tree: TaskTree) -> bool:
    """Whether the task's git worktree differs from its base (committed or not)."""
    if not tree.path.exists():
        return False
    g = _tree_git(tree)
    status = await g.out(
        "status", "--porcelain", "-z", "--untracked-files=all", "--ignore-submodules=dirty"
    )
    return bool(status.strip(b"\0")) or await tree_head(tree) != tree.base_commit


async def diff(tree: TaskTree, limit: int = DIFF_LIMIT) -> tuple[str, list[str]]:
    """The task's change against its base, as a patch and a list of paths."""
    if tree.is_git and tree.base_commit:
        g = _tree_git(tree)
        await _stage(g, tree)
        base = tree.base_commit
        # No external diff, no textconv: the worktree's attributes are the model's.
        patch = await g.text(
            "diff", "--cached", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", base
        )
        names = await g.text("diff", "--cached", "--name-only", "-z", base)
        files = [n for n in names.split("\0") if n]
    else:
        patch, files = "", []
    return clip_diff(patch, limit), files


def clip_diff(patch: str, limit: int = DIFF_LIMIT) -> str:
    if len(patch) <= limit:
        return patch
    return patch[:limit] + f"\n[... diff truncated, {len(patch) - limit} more characters ...]\n"


async def discard(workspace: Path, tree: TaskTree) -> None:
    """Remove the task's worktree and branch (rollback before apply). Works whatever the
    model did to the worktree's `.git`: the directory goes first, then git forgets it."""
    await _remove_worktree(Git(workspace), tree)
    if tree.is_git and tree.branch:
        await Git(workspace).run("branch", "-D", tree.branch, check=False)


async def remove_baseline(task_tree: TaskTree, baseline: TaskTree) -> None:
    await _remove_worktree(_tree_git(task_tree), baseline)


async def _remove_worktree(repo: Git, tree: TaskTree) -> None:
    # Our own rmtree, never `git worktree remove` on a live worktree: git would validate
    # (read) its `.git` and, without --force, run `git status` in it. rmtree does not
    # follow symlinks.
    if tree.path.exists():
        await asyncio.to_thread(_rmtree, tree.path)
    if not tree.is_git:
        return
    await repo.run("worktree", "remove", "--force", "--force", str(tree.path), check=False)
    admin = tree.git_dir
    if admin is not None and admin.parent.name == "worktrees" and admin.is_dir():
        await asyncio.to_thread(shutil.rmtree, admin, True)  # git did not know it by path


def _rmtree(path: Path) -> None:
    """rmtree that also gets through directories the model made unreadable (chmod 000)."""

    tried: set[str] = set()

    def unlock(func: Any, failed: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed) and failed not in tried:
                tried.add(failed)
                os.chmod(failed, 0o700)
                shutil.rmtree(failed, onerror=unlock)
            else:
                func(failed)

    shutil.rmtree(path, onerror=unlock)
