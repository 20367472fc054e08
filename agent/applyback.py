"""Apply a task's result to the operator's workspace, and undo it, never losing their work.

Git workspaces:
    record = await apply(workspace, "livhana/<id>", base_commit, title="...", task_id="<id>")
    result = await rollback_applied(workspace, record)   # {"action": "reset"|"revert"|"none",
                                                         #  "message": what happened, 1 line}

`apply` makes one commit "livhana: <title> (task <id>)" on the current branch with the task
branch's changes since `base_commit` (3-way merged if the operator committed meanwhile). It
uses plumbing (merge-tree, commit-tree, compare-and-swap update-ref) and rewrites only the
task's files in index and work tree, so the operator's other staged/unstaged work is kept
exactly. One-line ApplyError, nothing changed, when: the operator has uncommitted changes to a
file the task changed; a merge/rebase is in progress; HEAD no longer contains `base_commit`;
the task conflicts with newer commits. The task branch must hold the work as commits.
Record: {"kind": "git", "workspace", "branch", "pre_apply_head", "applied_commit" (None if
nothing to apply), "files", "message"}.

`rollback_applied`: HEAD still the applied commit and no remote-tracking branch contains it →
HEAD moves back to `pre_apply_head`, restoring only the task's files ("reset"). Newer commits
or pushed → a `git revert` commit ("revert"); pushed history is never rewritten. Refused,
nothing changed, if the operator edited a task file since, or the revert conflicts.

Non-git workspaces (checkpoints in a shadow dir):
    record = await apply_plain(workspace, {"a.py": b"...", "old.py": None}, shadow_dir)
    result = await rollback_applied(workspace, record)   # dispatches to rollback_plain
`apply_plain` snapshots the workspace, writes the files (None deletes), snapshots again;
rollback restores the task's files from the pre-apply snapshot ("restore"), refusing if the
operator changed one since. `expected` ({path: bytes|None}: what the task started from)
makes apply refuse if the operator changed such a file meanwhile.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import gitcmd
from .checkpoints import Checkpoints
from .errors import CockpitError

AUTHOR = gitcmd.IDENTITY
_Out = tuple[int, bytes]  # (returncode, stdout — or stdout+stderr on failure)


class ApplyError(CockpitError):
    """Apply or rollback refused or failed; nothing was changed. One line for the operator.
    Exit 2 (like bad input): the operator's workspace needs their action first."""

    exit_code = 2


class _Repo:
    """The operator's repository, through agent/gitcmd.py (its environment and safe options)."""

    def __init__(self, top: Path, git_dir: Path, env: dict[str, str]) -> None:
        self.top, self.git_dir, self.env = top, git_dir, env

    @classmethod
    async def open(cls, workspace: Path) -> _Repo:
        env = gitcmd.git_env(committer=False)
        code, out, _ = await gitcmd.run(
            ["rev-parse", "--show-toplevel", "--absolute-git-dir"],
            cwd=Path(workspace), env=env, check=False,
        )  # fmt: skip
        lines = out.decode().splitlines()
        if code != 0 or len(lines) < 2:
            raise ApplyError(f"{workspace} is not a git work tree; use apply_plain for it")
        repo = cls(Path(lines[0]), Path(lines[1]), env)
        # The agent authors its commits; the operator commits them if they have an identity.
        if not (await repo.out("config", "user.email", check=False)).strip():
            env.update(GIT_COMMITTER_NAME=AUTHOR[0], GIT_COMMITTER_EMAIL=AUTHOR[1])
        return repo

    async def run(self, *args: str, stdin: bytes | None = None, check: bool = True) -> _Out:
        code, out, err = await gitcmd.run(
            args, cwd=self.top, env=self.env, stdin=stdin, check=check
        )
        return code, out + err if code else out

    async def out(self, *args: str, check: bool = True) -> str:
        return (await self.run(*args, check=check))[1].decode(errors="surrogateescape").strip()

    async def rev(self, ref: str) -> str | None:
        return await self.out("rev-parse", "-q", "--verify", ref, check=False) or None

    async def changed(self, a: str, b: str) -> list[str]:
        raw = await self.run("diff-tree", "-r", "-z", "--no-renames", "--name-only", a, b)
        return [p for p in raw[1].decode(errors="surrogateescape").split("\0") if p]

    async def dirty(self, paths: list[str]) -> list[str]:
        """Which of `paths` have uncommitted changes (staged, unstaged, untracked or ignored)."""
        if not paths:
            return []
        spec = ["--", *paths] if len(paths) <= 1000 else []  # argv limit: filter afterwards
        raw = await self.run(
            "--literal-pathspecs", "status", "--porcelain", "-z", "--no-renames",
            "--untracked-files=all", "--ignored=matching", *spec,
        )  # fmt: skip
        found = {e[3:] for e in raw[1].decode(errors="surrogateescape").split("\0") if len(e) > 3}
        dirs = tuple(f for f in found if f.endswith("/"))  # an ignored dir is listed whole
        return sorted(p for p in paths if p in found or p.startswith(dirs))

    async def sync(self, source: str, paths: list[str]) -> None:
        """Make index and work tree match `source` for `paths` only (deletes absent ones)."""
        if paths:
            await self.run(
                "--literal-pathspecs", "restore", f"--source={source}", "--staged", "--worktree",
                "--pathspec-from-file=-", "--pathspec-file-nul", stdin="\0".join(paths).encode(),
            )  # fmt: skip

    async def move_head(self, new: str, old: str, paths: list[str], why: str) -> None:
        """Compare-and-swap HEAD (never clobbers a concurrent commit), then sync the files."""
        await self.run("update-ref", "-m", why, "HEAD", new, old)
        try:
            await self.sync(new, paths)
        except CockpitError:
            await self.run("update-ref", "-m", f"{why} (undone)", "HEAD", old, new, check=False)
            raise

    def busy(self) -> str | None:
        return next((what for name, what in _BUSY.items() if (self.git_dir / name).exists()), None)


_BUSY = {"MERGE_HEAD": "a merge", "CHERRY_PICK_HEAD": "a cherry-pick", "REVERT_HEAD": "a revert",
         "rebase-merge": "a rebase", "rebase-apply": "a rebase or am"}  # fmt: skip


def _list(paths: list[str], limit: int = 3) -> str:
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


async def apply(
    workspace: Path, task_branch: str, base_commit: str, *, title: str = "", task_id: str = ""
) -> dict[str, Any]:
    repo = await _Repo.open(workspace)
    if what := repo.busy():
        raise ApplyError(f"apply refused: {what} is in progress in {repo.top}; finish it first")
    head = await repo.rev("HEAD^{commit}")
    tip = await repo.rev(f"{task_branch}^{{commit}}")
    base = await repo.rev(f"{base_commit}^{{commit}}")
    if head is None:
        raise ApplyError(f"apply refused: {repo.top} has no commits yet")
    if tip is None or base is None:
        raise ApplyError(f"apply refused: unknown task branch {task_branch} or base {base_commit}")
    task_id = task_id or task_branch.rsplit("/", 1)[-1]
    message = f"livhana: {title or 'task ' + task_id} (task {task_id})"
    branch = await repo.out("symbolic-ref", "-q", "--short", "HEAD", check=False)
    record: dict[str, Any] = {"kind": "git", "workspace": str(repo.top), "branch": branch or None}
    record.update(pre_apply_head=head, applied_commit=None, files=[], message=message)
    files = await repo.changed(base, tip)
    if not files:
        return record
    if dirty := await repo.dirty(files):
        raise ApplyError(
            f"apply refused: you have uncommitted changes to {_list(dirty)}, which the task "
            "also changed; commit or stash them, then apply again"
        )
    if head == base:
        tree = await repo.out("rev-parse", f"{tip}^{{tree}}")
    else:
        code, _ = await repo.run("merge-base", "--is-ancestor", base, head, check=False)
        if code != 0:
            raise ApplyError(
                f"apply refused: HEAD no longer contains the task's base {base[:10]} "
                "(branch switched or history rewritten)"
            )
        code, raw = await repo.run("merge-tree", "--write-tree", "--name-only", "-z", head, tip,
                                   check=False)  # fmt: skip
        # -z output: tree id, conflicted paths, an empty field, then messages.
        parts = raw.decode(errors="surrogateescape").split("\0")
        if code == 1:
            clash = parts[1 : parts.index("", 1)] if "" in parts[1:] else parts[1:2]
            raise ApplyError(
                "apply refused: the task's changes conflict with newer commits in "
                f"{_list(sorted(set(clash)) or ['?'])}"
            )
        if code != 0:
            raise ApplyError(f"apply failed: git merge-tree: {raw.decode(errors='replace')[:200]}")
        tree = parts[0].strip()
    if tree == await repo.out("rev-parse", "HEAD^{tree}"):
        return record  # the workspace already has exactly these changes
    commit = await repo.out("commit-tree", tree, "-p", head, "-m", message)
    changed = await repo.changed(head, commit)
    await repo.move_head(commit, head, changed, f"livhana: apply task {task_id}")
    record.update(applied_commit=commit, files=changed)
    return record


async def rollback_applied(workspace: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    if record.get("kind") == "plain":
        return await rollback_plain(workspace, record)
    applied, pre = record.get("applied_commit"), record.get("pre_apply_head")
    if not applied:
        return {"action": "none", "files": [], "message": _NOTHING}
    repo = await _Repo.open(workspace)
    if what := repo.busy():
        raise ApplyError(f"rollback refused: {what} is in progress in {repo.top}; finish it first")
    head = await repo.rev("HEAD^{commit}")
    if head is None or await repo.rev(f"{applied}^{{commit}}") is None:
        raise ApplyError(f"rollback refused: applied commit {applied[:10]} is not in {repo.top}")
    code, _ = await repo.run("merge-base", "--is-ancestor", applied, head, check=False)
    if code != 0:
        raise ApplyError(
            f"rollback refused: applied commit {applied[:10]} is not on the current branch "
            "(reset away or branch switched); nothing was changed"
        )
    files = await repo.changed(f"{applied}^", applied)
    if dirty := await repo.dirty(files):
        raise ApplyError(
            f"rollback refused: you changed {_list(dirty)} since the task was applied; "
            "commit or stash that first"
        )
    pushed = await repo.out("branch", "-r", "--contains", applied)
    if head == applied and not pushed and await repo.rev(f"{applied}^") == pre:
        await repo.move_head(pre, applied, files, f"livhana: roll back {applied[:10]}")
        message = (
            f"restored the pre-apply state: HEAD back at {pre[:10]}, the task's "
            f"{len(files)} file(s) as they were; your uncommitted work is untouched"
        )
        return {"action": "reset", "head": pre, "files": files, "message": message}
    # Newer commits on top, or already pushed: never rewrite, add a revert commit instead.
    code, _ = await repo.run("diff", "--cached", "--quiet", check=False)
    if code != 0:
        raise ApplyError(
            "rollback refused: a revert commit is needed but you have staged changes; "
            "commit or unstage them first"
        )
    code, raw = await repo.run("revert", "--no-edit", applied, check=False)
    if code != 0:
        await repo.run("revert", "--abort", check=False)
        raise ApplyError(
            f"rollback refused: reverting {applied[:10]} conflicts with later commits; "
            "revert it by hand"
        )
    reason = "pushed" if pushed else "newer commits on top"
    why = "it was pushed" if pushed else "newer commits sit on top of it"
    revert = await repo.out("rev-parse", "HEAD")
    subject = await repo.out("log", "-1", "--format=%s", revert)
    message = (
        f"made revert commit {revert[:10]} ({subject}) on top of HEAD, because {why}; "
        f"history is kept, the task's {len(files)} file(s) are back as before the apply"
    )
    return {"action": "revert", "revert_commit": revert, "reason": reason, "files": files,
            "message": message}  # fmt: skip


def _confined(root: Path, rel: str) -> Path:
    path = Path(rel)
    full = root / path
    bad = path.is_absolute() or not path.parts or {"..", ".git"} & set(path.parts)
    if bad or not full.resolve().is_relative_to(root):  # resolve: symlinks may escape too
        raise ApplyError(f"apply refused: {rel!r} is outside the workspace")
    return full


async def apply_plain(
    workspace: Path,
    files: Mapping[str, bytes | None],
    shadow_dir: Path,
    *,
    expected: Mapping[str, bytes | None] | None = None,
    label: str = "",
) -> dict[str, Any]:
    root = Path(workspace).resolve()
    targets = {rel: _confined(root, rel) for rel in files}
    if expected is not None:
        changed = [rel for rel, want in expected.items() if _read(_confined(root, rel)) != want]
        if changed:
            raise ApplyError(
                f"apply refused: {_list(sorted(changed))} changed since the task started; "
                "the task's version would overwrite it"
            )
    cp = Checkpoints(root, shadow_dir)
    pre = await cp.snapshot(f"before apply {label}".strip()) or await cp.current()
    for rel, data in files.items():
        path = targets[rel]
        if data is None:
            if path.is_file() or path.is_symlink():
                path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.livhana-tmp")
            tmp.write_bytes(data)
            if path.exists():  # keep the file's mode (an executable stays executable)
                os.chmod(tmp, path.stat().st_mode)
            os.replace(tmp, path)
    applied = await cp.snapshot(f"applied {label}".strip())
    return {
        "kind": "plain", "workspace": str(root), "shadow_dir": str(Path(shadow_dir).resolve()),
        "pre_apply_checkpoint": pre, "applied_checkpoint": applied, "files": sorted(files),
    }  # fmt: skip


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


async def rollback_plain(workspace: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    applied, pre = record.get("applied_checkpoint"), record.get("pre_apply_checkpoint")
    files = list(record.get("files", []))
    if not applied or not pre:
        return {"action": "none", "files": [], "message": _NOTHING}
    # Only the task's files go back, so operator edits elsewhere since the apply survive.
    cp = Checkpoints(Path(workspace), Path(record["shadow_dir"]))
    if touched := sorted(set(await cp.changed_files(applied)) & set(files)):
        raise ApplyError(
            f"rollback refused: you changed {_list(touched)} since the task was applied; "
            "nothing was changed"
        )
    await cp.restore(pre, paths=files)
    await cp.snapshot("rolled back")
    message = (
        f"restored the task's {len(files)} file(s) from the pre-apply snapshot; "
        "your other files are untouched"
    )
    return {"action": "restore", "checkpoint": pre, "files": files, "message": message}


_NOTHING = "the apply changed nothing, so there was nothing to undo"
