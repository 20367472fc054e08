"""Apply a task's result to the operator's workspace, and undo it, never losing their work.

Git workspaces:
    record = await apply(workspace, "livhana/<id>", base_commit, title="...", task_id="<id>")
    result = await rollback_applied(workspace, record)   # {"action": "reset"|"revert"|"none",
                                                         #  "message": what happened, 1 line}

`apply` makes one commit "livhana: <title> (task <id>)" on the current branch with the task
branch's changes since `base_commit` (3-way merged if the operator committed meanwhile), and
switches only the task's files in index and work tree, so the operator's other staged and
unstaged work is kept exactly. One-line ApplyError, nothing changed, when: the operator has
uncommitted changes to a file the task changed (or git is told not to look at it:
assume-unchanged, skip-worktree); anything git does not track (untracked or ignored files,
folders, symlinks) stands where the task writes or deletes, or under it, or as a parent of
it; the task makes a symlink pointing outside the workspace, or changes a submodule; a merge/rebase is in progress; HEAD no longer contains `base_commit`; the task
conflicts with newer commits. The task branch must hold the work as commits.
Record: {"kind": "git", "workspace", "branch", "pre_apply_head", "applied_commit" (None if
nothing to apply), "files", "message"}.

`rollback_applied`: HEAD still the applied commit and no remote-tracking branch contains it →
HEAD moves back to `pre_apply_head`, restoring only the task's files ("reset"). Newer commits
or pushed → a revert commit ("revert"); pushed history is never rewritten. Refused, nothing
changed, if the operator edited a task file since, something of theirs is in the way, or the
revert conflicts.

Both are journaled (agent/journal.py, agent/fileswitch.py): new contents are staged in the
journal's folder first, then each path is switched by rename, keeping the old one as a hard
link; the index is prepared in a copy while we hold `index.lock`; moving HEAD (compare and
swap) is the commit point. Killed before it, `recover` undoes the switch; after it, finishes
it. A failure or cancel mid-way undoes the switch before the error is raised.
`journal_dir` (default: inside the repository's git dir) is where journals live;
`keep_journal=True` leaves the finished journal open (`record["journal"]`) until the caller
has recorded the outcome and calls `settle(op)`: a crash in between is then settled by
`recover` too, so the record can never lag behind the workspace.

Non-git workspaces: `apply_plain` and `rollback_plain` (agent/applyplain.py), same contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import fileswitch as fs
from . import gitcmd
from .applyplain import NOTHING, apply_plain, recover_plain, rollback_plain
from .errors import CockpitError
from .fileswitch import ApplyError
from .journal import Journal, crashpoint, keep, release, settle

__all__ = ["ApplyError", "apply", "apply_plain", "recover", "release", "rollback_applied",
           "rollback_plain", "settle", "task_links_outside"]  # fmt: skip

AUTHOR = gitcmd.IDENTITY
ZERO = "0" * 40
LOCK_WAIT_S = 10.0  # how long an apply waits for another git command to let go of the index
GIT_RETRIES = 3  # a git step killed by a signal (Ctrl-C reaches the process group) is re-run
_Out = tuple[int, bytes]  # (returncode, stdout — or stdout+stderr on failure)


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

    def busy(self) -> str | None:
        return next((what for name, what in _BUSY.items() if (self.git_dir / name).exists()), None)


_BUSY = {"MERGE_HEAD": "a merge", "CHERRY_PICK_HEAD": "a cherry-pick", "REVERT_HEAD": "a revert",
         "rebase-merge": "a rebase", "rebase-apply": "a rebase or am"}  # fmt: skip
_list = fs.listed


async def apply(
    workspace: Path,
    task_branch: str,
    base_commit: str,
    *,
    title: str = "",
    task_id: str = "",
    journal_dir: Path | None = None,
    keep_journal: bool = False,
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
    message = commit_message(title, task_id, task_branch)
    branch = await repo.out("symbolic-ref", "-q", "--short", "HEAD", check=False)
    record: dict[str, Any] = {"kind": "git", "workspace": str(repo.top), "branch": branch or None}
    record.update(pre_apply_head=head, applied_commit=None, files=[], message=message)
    files = await repo.changed(base, tip)
    if not files:
        return record
    if dirty := await repo.dirty(files):
        raise ApplyError(
            f"apply refused: you have uncommitted changes to {_list(dirty)}, which the task "
            "also changed; commit or stash them first"
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
    record.update(applied_commit=commit, files=await repo.changed(head, commit))
    op = await _switch(
        repo, head, commit, kind="apply", task_id=task_id, journal_dir=journal_dir,
        why=f"livhana: apply task {task_id}", result=record, keep_open=keep_journal,
    )  # fmt: skip
    return {**record, **({"journal": op} if op else {})}


SUBJECT_CHARS = 72  # what `git log --oneline` and most tools show whole


def commit_message(title: str, task_id: str, branch: str | None = None) -> str:
    """A subject line that fits (the task, shortened at a word boundary when it must be,
    and its id), then the whole task in the body, wrapped at 72 columns. With `branch`:
    the apply's commit, naming the task branch it came from."""
    import textwrap

    from .clip import clip

    title = " ".join(title.split())
    tail = f" (task {task_id})"
    room = SUBJECT_CHARS - len("livhana: ") - len(tail)
    subject = f"livhana: {clip(title, room) if title else 'task ' + task_id}{tail}"
    body = textwrap.fill(title, 72, break_long_words=False, break_on_hyphens=False)
    lines = [subject, ""]
    if body:
        lines += [body, ""]
    lines.append(f"Applied by Liv Hana Cockpit from branch {branch} (task {task_id})." if branch
                 else f"Made by Liv Hana Cockpit (task {task_id}).")  # fmt: skip
    return "\n".join(lines) + "\n"


async def rollback_applied(
    workspace: Path,
    record: Mapping[str, Any],
    *,
    journal_dir: Path | None = None,
    task_id: str = "",
    keep_journal: bool = False,
) -> dict[str, Any]:
    if record.get("kind") == "plain":
        return await rollback_plain(
            workspace, record, journal_dir=journal_dir, task_id=task_id, keep_journal=keep_journal
        )
    applied, pre = record.get("applied_commit"), record.get("pre_apply_head")
    if not applied:
        return {"action": "none", "files": [], "message": NOTHING}
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
    task_id = task_id or str(applied)[:12]
    pushed = await repo.out("branch", "-r", "--contains", applied)
    if head == applied and not pushed and await repo.rev(f"{applied}^") == pre:
        message = (
            f"restored the pre-apply state: HEAD back at {pre[:10]}, the task's "
            f"{len(files)} file(s) as they were; your uncommitted work is untouched"
        )
        result = {"action": "reset", "head": pre, "files": files, "message": message}
        op = await _switch(
            repo, applied, str(pre), kind="rollback", task_id=task_id, journal_dir=journal_dir,
            why=f"livhana: roll back {applied[:10]}", result=result, keep_open=keep_journal,
        )  # fmt: skip
        return {**result, **({"journal": op} if op else {})}
    # Newer commits on top, or already pushed: never rewrite, add a revert commit instead.
    jdir = Path(journal_dir) if journal_dir else repo.git_dir / "livhana-journal"
    revert = await _revert_commit(repo, applied, head, jdir)
    subject = await repo.out("log", "-1", "--format=%s", revert)
    reason = "pushed" if pushed else "newer commits on top"
    why = "it was pushed" if pushed else "newer commits sit on top of it"
    message = (
        f"made revert commit {revert[:10]} ({subject}) on top of HEAD, because {why}; "
        f"history is kept, the task's {len(files)} file(s) are back as before the apply"
    )
    result = {"action": "revert", "revert_commit": revert, "reason": reason, "files": files,
              "message": message}  # fmt: skip
    op = await _switch(
        repo, head, revert, kind="rollback", task_id=task_id, journal_dir=journal_dir,
        why=f"livhana: revert {applied[:10]}", result=result, keep_open=keep_journal,
    )  # fmt: skip
    return {**result, **({"journal": op} if op else {})}


async def _revert_commit(repo: _Repo, applied: str, head: str, where: Path) -> str:
    """The commit `git revert` would make on HEAD, made in a scratch worktree of ours (in
    `where`): the operator's files and index are switched afterwards like any other change."""
    where.mkdir(parents=True, exist_ok=True)
    for old in where.glob("revert-*-*"):  # left by a process killed while reverting
        pid = old.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    scratch = where / f"revert-{os.getpid()}-{secrets.token_hex(4)}"
    await repo.run("worktree", "prune", check=False)
    await repo.run("worktree", "add", "--detach", "-q", str(scratch), head)
    try:
        there = _Repo(scratch, repo.git_dir, repo.env)
        code, _ = await there.run("revert", "--no-edit", applied, check=False)
        if code != 0:
            raise ApplyError(
                f"rollback refused: reverting {applied[:10]} conflicts with later commits; "
                "revert it by hand"
            )
        return await there.out("rev-parse", "HEAD")
    finally:
        await repo.run("worktree", "remove", "--force", str(scratch), check=False)
        shutil.rmtree(scratch, ignore_errors=True)
        await repo.run("worktree", "prune", check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


# -- the journaled switch of HEAD, index and files --------------------------------------------
async def _switch(
    repo: _Repo,
    old: str,
    new: str,
    *,
    kind: str,
    task_id: str,
    journal_dir: Path | None,
    why: str,
    result: dict[str, Any],
    keep_open: bool,
) -> str | None:
    """Move HEAD from commit `old` to `new` and the paths that differ with it; returns the
    journal's op id when `keep_open` (the caller settles it), else None."""
    word = "apply" if kind == "apply" else "rollback"
    entries = await _plan(repo, old, new, word)
    jdir = Path(journal_dir) if journal_dir else repo.git_dir / "livhana-journal"
    # Not uuid4: the UI snapshots freeze it to number tasks; an apply must not count.
    op = f"{kind}-{task_id}-{secrets.token_hex(3)}"
    journal = Journal.begin(jdir, op, {
        "kind": kind, "flavour": "git", "task_id": task_id, "workspace": str(repo.top),
        "git_dir": str(repo.git_dir), "old": old, "new": new, "why": why, "phase": "staging",
        "result": result,
    })  # fmt: skip
    temp = repo.git_dir / f"livhana-{op}.index"
    try:
        await _stage(repo, new, entries, journal.stage)
        if kind == "apply" and (bad := await fs.in_thread(fs.link_escapes, repo.top, entries)):
            raise ApplyError(fs.outside_message(bad))
        dirs = await fs.in_thread(fs.parent_modes, repo.top, [e["path"] for e in entries])
        crashpoint(f"{kind}:staged")
        journal.save(phase="switching", entries=entries, dirs=dirs, index={"temp": str(temp)},
                     switch_at=time.time())  # fmt: skip
        ino = await _lock_index(repo, temp, journal)
    except BaseException as exc:
        _drop_temp(temp)
        journal.close()
        fs.reraise(word, exc, False)
    sw = fs.Switch(repo.top, journal.stage, entries, dirs, op)
    sw.after_each = _midway(f"{kind}:switching", len(entries))
    crashpoint(f"{kind}:locked")
    committed = False
    try:
        await fs.in_thread(sw.forward)
        await _update_index(repo, temp, entries)
        crashpoint(f"{kind}:index")
        committed = await _move_head(repo, new, old, why)
        crashpoint(f"{kind}:committed")
        await fs.in_thread(_finish_index, repo.git_dir, temp, ino, journal)
    except BaseException as exc:
        if not committed:  # an update-ref cut short may still have moved HEAD: look
            committed = await _head_is(repo, new, journal)
        if not committed:
            kept = await fs.in_thread(_undo, sw, repo.git_dir, temp, ino, journal, word)
            fs.reraise(word, exc, True, kept)
        journal.release()  # past the commit point: what is left is tidying, for the next start
        if not isinstance(exc, Exception):
            raise
        raise ApplyError(
            f"{word} done, but tidying up failed ({fs.why(exc)}); the next start of "
            "livhana-cockpit finishes it"
        ) from exc
    crashpoint(f"{kind}:done")
    if keep_open:
        return keep(journal)
    journal.close()
    return None


def _midway(point: str, total: int) -> Any:
    half = max(1, total // 2)
    return lambda done: crashpoint(point) if done == half else None


def _undo(
    sw: fs.Switch, git_dir: Path, temp: Path, ino: int, journal: Journal, word: str
) -> list[str]:
    try:
        kept = fs.undo(sw, word)
    except ApplyError:
        journal.release()  # the next start (or `rollback`) takes it from here
        raise
    _unlock_index(git_dir, ino)
    _drop_temp(temp)
    journal.close()
    return kept


async def _head_is(repo: _Repo, commit: str, journal: Journal) -> bool:
    try:
        return await repo.rev("HEAD") == commit
    except BaseException:
        journal.release()  # cannot tell: the next start reads HEAD and decides
        raise


async def _plan(repo: _Repo, old: str, new: str, word: str) -> list[dict[str, Any]]:
    """The paths that differ between commits `old` and `new`, with what the disk holds
    for each; refused when anything of the operator's is in the way."""
    raw = (await repo.run("diff-tree", "-r", "-z", "--no-renames", old, new))[1]
    fields = raw.decode(errors="surrogateescape").split("\0")
    entries: list[dict[str, Any]] = []
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(":"):
            continue
        old_mode, new_mode, _, new_oid, _ = meta[1:].split(" ")
        entries.append({"i": len(entries), "path": path, "git": [new_mode, new_oid],
                        "old": _kind(old_mode), "new": _kind(new_mode)})  # fmt: skip
        if "160000" in (old_mode, new_mode):
            raise ApplyError(
                f"{word} refused: the task changes the submodule {path}; do that by hand"
            )
    if hidden := await _hidden(repo, [e["path"] for e in entries]):
        raise ApplyError(
            f"{word} refused: your index tells git not to look at {_list(hidden)} "
            "(assume-unchanged or skip-worktree), so edits of yours there cannot be seen; "
            "undo that (git update-index --no-assume-unchanged --no-skip-worktree), then "
            "try again"
        )
    if dirty := await repo.dirty([e["path"] for e in entries]):
        if word == "apply":
            raise ApplyError(
                f"apply refused: you have uncommitted changes to {_list(dirty)}, which the "
                "task also changed; commit or stash them first"
            )
        raise ApplyError(
            f"rollback refused: you changed {_list(dirty)} since the task was applied; "
            "commit or stash that first"
        )
    if problems := await fs.in_thread(fs.in_the_way, repo.top, entries):
        raise ApplyError(
            f"{word} refused: {fs.described(problems)} would be overwritten or deleted, and "
            "git does not keep them; move them aside first (nothing was changed)"
        )
    await fs.in_thread(fs.plan_old, repo.top, entries)
    return entries


async def _hidden(repo: _Repo, paths: list[str]) -> list[str]:
    """Which of `paths` git is told to skip (assume-unchanged, skip-worktree): `status`
    says nothing of the operator's edits to them."""
    spec = ["--", *paths] if len(paths) <= 1000 else []  # argv limit: filter afterwards
    raw = (await repo.run("--literal-pathspecs", "ls-files", "-v", "-z", *spec))[1]
    wanted = set(paths)
    return sorted(
        entry[2:]
        for entry in raw.decode(errors="surrogateescape").split("\0")
        if len(entry) > 2 and entry[2:] in wanted and (entry[0].islower() or entry[0] == "S")
    )


def _kind(mode: str) -> dict[str, str] | None:
    if mode == "000000":
        return None
    return {"kind": "link" if mode == "120000" else "file"}


async def _stage(repo: _Repo, commit: str, entries: list[dict[str, Any]], stage: Path) -> None:
    """Write every new content into the journal's stage, as git checks it out (filters and
    modes included), through a scratch index of ours: nothing of the operator's is read."""
    index = stage / "stage.index"
    scratch = _Repo(repo.top, repo.git_dir, {**repo.env, "GIT_INDEX_FILE": str(index)})
    files = fs.Stage(stage)
    paths = [e["path"] for e in entries if e["git"][1] != ZERO]
    if paths:
        await scratch.run("read-tree", commit)
        try:
            await scratch.run(
                "checkout-index", f"--prefix={files.new}/", "-f", "-z", "--stdin",
                stdin=b"".join(os.fsencode(p) + b"\0" for p in paths),
            )  # fmt: skip
        except CockpitError as exc:
            if fs.nearly_full(stage):  # git says "unable to write file": say why
                raise ApplyError(
                    f"apply failed: no space left on device for staging the task's files in "
                    f"{stage.parent}; nothing was changed"
                ) from exc
            raise
    with contextlib.suppress(FileNotFoundError):
        index.unlink()

    def specs() -> None:
        for e in entries:
            e["new"] = files.spec(e["path"]) if e["git"][1] != ZERO else None
            if e["git"][1] != ZERO and e["new"] is None:
                raise ApplyError(f"apply failed: git did not write {e['path']}")

    await fs.in_thread(specs)


async def _lock_index(repo: _Repo, temp: Path, journal: Journal) -> int:
    """Take the operator's index.lock the way git does, so no git command of theirs changes
    the index under us. Ours is a hard link to a copy of their index (`temp`), so a lock left
    by a crash is known for ours by its inode. Waits while another git command holds it."""
    index, lock = repo.git_dir / "index", repo.git_dir / "index.lock"
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            before = os.stat(index)
        except FileNotFoundError:
            raise ApplyError(
                f"refused: {repo.top} has no index file (git would show every file as "
                "deleted); run `git reset` there first"
            ) from None
        _drop_temp(temp)
        shutil.copyfile(index, temp)
        ino = os.stat(temp).st_ino
        journal.save(index={"temp": str(temp), "ino": ino})
        try:
            os.link(temp, lock)
        except FileExistsError:
            if time.monotonic() > deadline:
                raise ApplyError(
                    f"refused: another git command holds {lock} (if none is running, remove "
                    "that file); nothing was changed"
                ) from None
            await asyncio.sleep(0.05)
            continue
        after = os.stat(index)
        if (before.st_ino, before.st_mtime_ns, before.st_size) == (
            after.st_ino, after.st_mtime_ns, after.st_size,
        ):  # fmt: skip
            return ino
        _unlock_index(repo.git_dir, ino)  # the index changed while we copied it: again


def _unlock_index(git_dir: Path, ino: int | None) -> None:
    lock = git_dir / "index.lock"
    with contextlib.suppress(FileNotFoundError):
        if ino is not None and os.lstat(lock).st_ino == ino:
            lock.unlink()


def _drop_temp(temp: Path) -> None:
    for path in (temp, temp.with_name(temp.name + ".lock")):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def _update_index(repo: _Repo, temp: Path, entries: list[dict[str, Any]]) -> None:
    """The copy of the operator's index gets the new entries for the task's paths (their
    other staged work stays as it was), with stat data refreshed for the files just written."""
    scratch = _Repo(repo.top, repo.git_dir, {**repo.env, "GIT_INDEX_FILE": str(temp)})
    info = b"".join(
        (f"{e['git'][0]} {e['git'][1]}\t" if e["new"] is not None else f"0 {ZERO}\t").encode()
        + os.fsencode(e["path"]) + b"\0"
        for e in entries
    )  # fmt: skip
    await _retried(scratch, temp, "update-index", "-z", "--index-info", stdin=info)
    await _retried(scratch, temp, "update-index", "-q", "--refresh", ok=(0, 1))


async def _retried(
    repo: _Repo, temp: Path, *args: str, stdin: bytes | None = None, ok: tuple[int, ...] = (0,)
) -> None:
    """Steps on our scratch index are idempotent: one killed by a signal (a Ctrl-C sent to
    the whole process group) runs again, after removing the lock it left."""
    for _ in range(GIT_RETRIES):
        code, out = await repo.run(*args, stdin=stdin, check=False)
        if code in ok:
            return
        with contextlib.suppress(FileNotFoundError):
            temp.with_name(temp.name + ".lock").unlink()
        if code > 0:
            break
    raise ApplyError(f"git {args[0]} failed: {fs_first_line(out)}")


def fs_first_line(raw: bytes) -> str:
    lines = [ln for ln in raw.decode(errors="replace").splitlines() if ln.strip()]
    return lines[0][:200] if lines else "no output"


async def _move_head(repo: _Repo, new: str, old: str, why: str) -> bool:
    """The commit point: compare-and-swap HEAD from `old` to `new` (never over a commit made
    meanwhile). True once HEAD is `new`."""
    for _ in range(GIT_RETRIES):
        started = time.time()
        code, out = await repo.run("update-ref", "-m", why, "HEAD", new, old, check=False)
        if code == 0:
            return True
        now = await repo.rev("HEAD")
        if now == new:
            return True  # it moved; only the answer was lost
        if code < 0 and now == old:
            await _drop_ref_lock(repo, new, started)
            continue
        raise ApplyError(f"HEAD could not be moved: {fs_first_line(out)}")
    raise ApplyError("git update-ref kept being interrupted")


async def _drop_ref_lock(repo: _Repo, new: str, since: float, wait: float = 0.0) -> None:
    """The lock a killed `update-ref` of ours left on HEAD's branch (made after `since`,
    holding our new value or nothing yet). With `wait`, first give an `update-ref` that
    outlived its parent that long to finish (then HEAD is read after it, not before)."""
    ref = await repo.out("symbolic-ref", "-q", "HEAD", check=False) or "HEAD"
    lock = Path(await repo.out("rev-parse", "--git-path", f"{ref}.lock"))
    if not lock.is_absolute():
        lock = repo.top / lock
    deadline = time.monotonic() + wait
    while lock.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    with contextlib.suppress(OSError):
        st = os.lstat(lock)
        if st.st_mtime >= since - 1 and lock.read_text().strip() in ("", new):
            lock.unlink()


def _finish_index(git_dir: Path, temp: Path, ino: int, journal: Journal) -> None:
    os.replace(temp, git_dir / "index")
    _unlock_index(git_dir, ino)
    journal.save(phase="done")


# -- after a crash ------------------------------------------------------------------------------
async def recover(journal: Journal) -> dict[str, Any]:
    """Finish or undo the change a dead process left in `journal` (locked by us). Returns
    {"outcome": "untouched"|"undone"|"finished", "message", "result", "kept": [paths]}:
    "kept" are paths that hold neither version (changed by the operator meanwhile): they
    are left exactly as they are, and named in the message."""
    data = journal.data
    if data.get("flavour") == "plain":
        return await recover_plain(journal)
    word = "apply" if data["kind"] == "apply" else "rollback"
    result = dict(data.get("result") or {})
    phase = data.get("phase")
    git_dir = Path(data["git_dir"])
    index = data.get("index") or {}
    temp = Path(index.get("temp") or git_dir / f"livhana-{journal.op}.index")
    if phase == "staging":
        _drop_temp(temp)
        return fs.recovered("untouched", f"the {word} had not changed the workspace yet", result)
    if phase == "done":
        return fs.recovered("finished", f"the {word} had finished", result)
    repo = await _Repo.open(Path(data["workspace"]))
    await _wait_gone(temp.with_name(temp.name + ".lock"))  # a git child may outlive us a moment
    if data["new"] != data["old"]:
        await _drop_ref_lock(repo, data["new"], float(data.get("switch_at", 0.0)), wait=2.0)
    head = await repo.rev("HEAD")
    sw = fs.Switch(repo.top, journal.stage, data["entries"], data.get("dirs", {}), journal.op)
    kept: list[str] = []
    if head == data["new"]:
        try:
            await fs.in_thread(sw.forward, True)
        except fs.Conflict as exc:
            kept = [p for p, _ in exc.problems]
        if temp.exists():  # the index follows HEAD for every path (a kept one shows as edited)
            await _update_index(repo, temp, data["entries"])
            os.replace(temp, git_dir / "index")
        _unlock_index(git_dir, index.get("ino"))
        message = f"the {word} was finished (HEAD at {str(head)[:10]})"
        return fs.recovered("finished", message, result, kept)
    try:
        await fs.in_thread(sw.back)
    except fs.Conflict as exc:
        kept = [p for p, _ in exc.problems]
    _unlock_index(git_dir, index.get("ino"))
    _drop_temp(temp)
    moved = "" if head == data["old"] else f"; HEAD had been moved meanwhile to {str(head)[:10]}"
    return fs.recovered("undone", f"the {word} was undone: the workspace is as before it{moved}",
                    result, kept)  # fmt: skip


async def _wait_gone(path: Path, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # still there: its writer died with the rest


# -- symlinks leaving the workspace -------------------------------------------------------------
async def task_links_outside(workspace: Path, branch: str, base: str) -> list[str]:
    """The task branch's new symlinks whose target leaves the workspace, as "path -> target"
    (for the apply request's card: these are refused)."""
    repo = await _Repo.open(workspace)
    raw = (await repo.run("diff-tree", "-r", "-z", "--no-renames", base, branch))[1]
    fields = raw.decode(errors="surrogateescape").split("\0")
    entries: list[dict[str, Any]] = []
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(":"):
            continue
        _, new_mode, _, oid, _ = meta[1:].split(" ")
        new: dict[str, Any] | None = None
        if new_mode == "120000":
            target = (await repo.run("cat-file", "blob", oid))[1]
            new = {"kind": "link", "target": os.fsdecode(target)}
        elif new_mode != "000000":
            new = {"kind": "file"}
        entries.append({"path": path, "new": new})
    bad = await fs.in_thread(fs.link_escapes, repo.top, entries)
    return [f"{path} -> {target}" for path, target in bad]

