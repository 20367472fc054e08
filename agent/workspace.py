"""Where a task works: its own git worktree on branch livhana/<task-id>, so parallel tasks
never touch each other or the operator's tree. A workspace that is not a git repo is
copied to a scratch folder instead (tasks on it run one at a time; see Engine)."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .gitcmd import git, is_git_repo

COPY_IGNORE = shutil.ignore_patterns(".git", "node_modules", ".venv", "venv", "__pycache__")
DIFF_LIMIT = 60_000  # the approval card shows a bounded patch


@dataclass
class TaskTree:
    path: Path
    branch: str | None
    base_commit: str | None
    is_git: bool


async def check_workspace(workspace: Path) -> Path:
    """The workspace, resolved, or a UsageError before any task is created for it."""
    workspace = workspace.expanduser()
    if not workspace.exists():
        raise UsageError(f"workspace {workspace} does not exist")
    if not workspace.is_dir():
        raise UsageError(f"workspace {workspace} is not a directory")
    workspace = workspace.resolve()
    if await is_git_repo(workspace) and not await head_commit(workspace):
        raise UsageError(_NO_COMMITS.format(workspace=workspace))
    return workspace


_NO_COMMITS = "workspace {workspace} is a git repo with no commits yet; commit once first"


async def head_commit(workspace: Path) -> str:
    """The commit HEAD names in `workspace` (a repo or a worktree), "" when there is none."""
    return (await git("rev-parse", "--verify", "-q", "HEAD", cwd=workspace, check=False)).strip()


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
        await git("worktree", "add", "-q", "-b", branch, str(target), head, cwd=workspace)
        return TaskTree(target, branch, head, True)
    own = worktrees_dir.parent.resolve()  # the data dir: never copy it into itself

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = set(COPY_IGNORE(folder, names))
        return skipped | {n for n in names if (Path(folder) / n).resolve() == own}

    await asyncio.to_thread(shutil.copytree, workspace, target, ignore=ignore, symlinks=True)
    return TaskTree(target, None, None, False)


async def commit_all(tree: TaskTree, message: str) -> str | None:
    """Commit everything in the task's worktree to its branch; returns the commit or None."""
    if not tree.is_git:
        return None
    await git("add", "-A", cwd=tree.path)
    status = await git("status", "--porcelain", cwd=tree.path)
    if status.strip():
        await git("commit", "-q", "-m", message, cwd=tree.path)
    return (await git("rev-parse", "HEAD", cwd=tree.path)).strip()


async def has_changes(tree: TaskTree) -> bool:
    """Whether the task's git worktree differs from its base (committed or not)."""
    if not tree.path.exists():
        return False
    status = await git("status", "--porcelain", "--untracked-files=all", cwd=tree.path)
    head = (await git("rev-parse", "HEAD", cwd=tree.path)).strip()
    return bool(status.strip()) or head != tree.base_commit


async def diff(tree: TaskTree, limit: int = DIFF_LIMIT) -> tuple[str, list[str]]:
    """The task's change against its base, as a patch and a list of paths."""
    if tree.is_git and tree.base_commit:
        await git("add", "-A", cwd=tree.path)
        patch = await git("diff", "--cached", "--binary", tree.base_commit, cwd=tree.path)
        names = await git("diff", "--cached", "--name-only", tree.base_commit, cwd=tree.path)
        files = [n for n in names.splitlines() if n]
    else:
        patch, files = "", []
    return clip_diff(patch, limit), files


def clip_diff(patch: str, limit: int = DIFF_LIMIT) -> str:
    if len(patch) <= limit:
        return patch
    return patch[:limit] + f"\n[... diff truncated, {len(patch) - limit} more characters ...]\n"


async def discard(workspace: Path, tree: TaskTree) -> None:
    """Remove the task's worktree and branch (rollback before apply)."""
    if tree.is_git:
        await git("worktree", "remove", "--force", str(tree.path), cwd=workspace, check=False)
        if tree.branch:
            await git("branch", "-D", tree.branch, cwd=workspace, check=False)
    if tree.path.exists():
        await asyncio.to_thread(shutil.rmtree, tree.path, True)
