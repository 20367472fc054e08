"""`.worktreeinclude`: ignored files of the operator's (a `.env`, a local settings file)
copied into each new task worktree, so the task can build and test like the checkout can.

The file sits in the workspace root and holds gitignore-style patterns. At `prepare`, a
path is copied when all of these hold:
- git ignores it in the operator's checkout, and it matches a pattern of the file (git
  matches both: `ls-files --others --ignored`, once with the standard excludes and once
  with the file's patterns alone);
- it is a regular file reached from the workspace root without passing a symlink (each
  component opened O_NOFOLLOW relative to its folder: nothing is read from outside);
- git ignores it in the fresh worktree too (the base commit's `.gitignore`, not an
  uncommitted edit of the operator's), and nothing stands at its place there (a tracked
  file is never overwritten; the copy is created O_EXCL, its folders without following
  a symlink).

What was copied is recorded in the worktree's admin dir (`livhana-included`, in the
operator's repository, where the sandbox cannot write), and `workspace.commit_all`/`diff`
drop those paths from the task's index after staging: even if the model un-ignores them
(its `.gitignore` is its own), they never reach the task's branch, its diff or an apply.
The model can read them: listing a file here is the operator's choice to show it."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from pathlib import Path

from .gitcmd import Git

log = logging.getLogger(__name__)

INCLUDE_FILE = ".worktreeinclude"
RECORD = "livhana-included"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_FILES = 10_000  # a pattern matching a whole build tree is a mistake, not a wish


def recorded(admin: Path | None) -> list[bytes]:
    """The paths copied into the worktree whose admin dir is `admin` (bytes, as git
    names them); [] when none were."""
    if admin is None:
        return []
    try:
        raw = (admin / RECORD).read_bytes()
    except OSError:
        return []
    return [p for p in raw.split(b"\0") if p]


async def copy_included(workspace: Path, worktree: Path, admin: Path) -> list[str]:
    """Copy the workspace's included ignored files into the new `worktree` (see the
    module doc); the paths copied. Anything odd is skipped and logged, never fatal: a
    task without its `.env` still runs."""
    spec = workspace / INCLUDE_FILE
    try:
        if not stat.S_ISREG(os.lstat(spec).st_mode):
            log.warning("%s is not a regular file: nothing included", spec)
            return []
    except OSError:
        return []
    repo = Git(workspace)
    listing = ("ls-files", "-z", "--others", "--ignored")
    matched = await repo.out(*listing, f"--exclude-from={spec}", check=False)
    ignored = set((await repo.out(*listing, "--exclude-standard", check=False)).split(b"\0"))
    wanted = [p for p in matched.split(b"\0") if p in ignored and _plain(p)]
    if len(wanted) > MAX_FILES:
        log.warning("%s matches %d files: only the first %d are copied", spec, len(wanted),
                    MAX_FILES)  # fmt: skip
        wanted = wanted[:MAX_FILES]
    if not wanted:
        return []
    there = Git(worktree, git_dir=admin, work_tree=worktree)
    out = await there.out(
        "check-ignore", "--no-index", "-z", "--stdin", stdin=b"\0".join(wanted) + b"\0",
        check=False,
    )  # fmt: skip
    still = set(out.split(b"\0"))
    copied: list[bytes] = []
    for rel in wanted:
        if rel not in still:
            log.warning("%s: not ignored in the task's worktree (an uncommitted .gitignore "
                        "edit?): not copied", os.fsdecode(rel))  # fmt: skip
            continue
        try:
            _copy(workspace, worktree, rel)
        except OSError as exc:
            why = "it is a symlink, or under one" if exc.errno == errno.ELOOP else exc
            log.warning("%s not copied into the worktree: %s", os.fsdecode(rel), why)
            continue
        copied.append(rel)
    # Written even when empty of copies that worked: a record that exists says the
    # include ran. Then the admin dir is the operator's repository's, out of the sandbox.
    (admin / RECORD).write_bytes(b"\0".join(copied))
    return [os.fsdecode(p) for p in copied]


def _plain(rel: bytes) -> bool:
    """A relative path of plain components (git lists a nested repository as `dir/`)."""
    parts = rel.split(b"/")
    return (
        bool(rel)
        and not rel.startswith(b"/")
        and not rel.endswith(b"/")
        and all(p not in (b"", b".", b"..", b".git") for p in parts)
    )


def _copy(workspace: Path, worktree: Path, rel: bytes) -> None:
    *folders, name = rel.split(b"/")
    held: list[int] = []  # every descriptor opened here, closed at the end
    try:
        src_dir = _hold(held, os.open(workspace, _DIR))
        dst_dir = _hold(held, os.open(worktree, _DIR))
        for folder in folders:
            src_dir = _hold(held, os.open(folder, _DIR, dir_fd=src_dir))
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder, 0o777, dir_fd=dst_dir)
            dst_dir = _hold(held, os.open(folder, _DIR, dir_fd=dst_dir))
        src = _hold(held, os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                                  | os.O_CLOEXEC, dir_fd=src_dir))  # fmt: skip
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"not a regular file ({stat.filemode(st.st_mode)})")
        # O_EXCL: never over anything (a tracked file, a link the checkout made).
        dst = _hold(held, os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                  | os.O_CLOEXEC, st.st_mode & 0o777, dir_fd=dst_dir))  # fmt: skip
        try:
            while chunk := os.read(src, 1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst, view) :]
        except OSError:
            os.unlink(name, dir_fd=dst_dir)  # no half copy left (a full disk)
            raise
    finally:
        for fd in held:
            os.close(fd)


def _hold(held: list[int], fd: int) -> int:
    held.append(fd)
    return fd
