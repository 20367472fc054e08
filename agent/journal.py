"""Write-ahead journals for changes to the operator's workspace (apply and rollback).

A journal is `<dir>/<op>.json`, rewritten whole (temp file, fsync, rename, fsync of the
folder) before each phase of the change, so whatever instant the process dies at, the next
start knows what was under way and can finish or undo it. It lives in the data dir, not in
the store: on a full disk the store may be unwritable while a small file still is, and it is
written before anything in the workspace changes.

Its owner holds an exclusive flock on `<dir>/<op>.lock` for as long as it works on it. The
kernel drops that lock when the process dies; a stopped (SIGSTOP) or busy process keeps it.
So a journal whose lock can be taken is an orphan, provably: nobody guesses from timestamps.

    j = Journal.begin(dir, "apply-<task>-<n>", {"kind": "apply", ...})   # written and locked
    j.save(phase="switching")        # durable before the next step
    j.stage                          # <dir>/<op>/: its scratch files (staged contents, backups)
    j.close()                        # finished: file, scratch and lock gone
    j.release()                      # give up ownership, keep the file (for the next start)
    op = keep(j); settle(op)         # finished, but closed only once the caller recorded it
    for j in orphans(dir): ...       # journals of dead owners, each now locked by us

`crashpoint(name)` is a test hook: with `LIVHANA_CRASHPOINT=<name>` in the environment, the
process stops itself (SIGSTOP) there, so a test can kill it at an exact phase.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

CRASHPOINT_ENV = "LIVHANA_CRASHPOINT"


def crashpoint(name: str) -> None:
    """Stop this process here when the test hook names this point (see the module doc)."""
    if os.environ.get(CRASHPOINT_ENV) == name:
        # At this thread, not the process: a process-directed SIGSTOP may be taken by
        # another thread, and this one (a worker switching files) ran on for a while.
        signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)


class Journal:
    def __init__(self, directory: Path, op: str, fd: int, data: dict[str, Any]) -> None:
        self.dir, self.op, self._fd, self.data = Path(directory), op, fd, data

    @property
    def path(self) -> Path:
        return self.dir / f"{self.op}.json"

    @property
    def stage(self) -> Path:
        return self.dir / self.op

    @classmethod
    def begin(cls, directory: Path, op: str, data: dict[str, Any]) -> Journal:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        fd = _lock(directory / f"{op}.lock", wait=False)
        if fd is None:
            raise OSError(f"journal {op} is held by another process")
        journal = cls(directory, op, fd, {**data, "op": op, "pid": os.getpid(),
                                          "started": time.time()})  # fmt: skip
        try:
            journal.save()  # first: a stage folder or lock never exists without its journal
            journal.stage.mkdir(exist_ok=True)
        except BaseException:
            journal.close()
            raise
        return journal

    def save(self, **changes: Any) -> None:
        """Update and write durably: after this returns, a crash finds exactly this."""
        self.data.update(changes, saved=time.time())
        tmp = self.dir / f".{self.op}.json.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(self.data, separators=(",", ":")))  # dumps: the C encoder
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.dir)

    def close(self) -> None:
        """The change is finished and recorded: nothing of the journal is left."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        _fsync_dir(self.dir)
        shutil.rmtree(self.stage, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{self.op}.lock").unlink()
        self.release()

    def release(self) -> None:
        """Stop owning it (the file stays): another process may now recover it."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


_KEPT: dict[str, Journal] = {}


def keep(journal: Journal) -> str:
    """A finished change whose outcome the caller has yet to record: the journal stays
    (and locked) until `settle` (recorded) or `release` (recording failed: the next start
    settles it)."""
    _KEPT[journal.op] = journal
    return journal.op


def settle(op: str | None) -> None:
    journal = _KEPT.pop(op, None) if op else None
    if journal is not None:
        journal.close()


def release(op: str | None) -> None:
    journal = _KEPT.pop(op, None) if op else None
    if journal is not None:
        journal.release()


def orphans(directory: Path, task_id: str | None = None) -> list[Journal]:
    """Journals whose owner is gone, oldest first, each locked by us now (release or close
    every one). A journal that cannot be read is skipped and left for the operator."""
    directory = Path(directory)
    found: list[Journal] = []
    if not directory.is_dir():
        return found
    for lock in directory.glob("*.lock"):  # a process killed inside `begin`: nothing to do
        op = lock.name[: -len(".lock")]
        if not (directory / f"{op}.json").exists() and (fd := _lock(lock, wait=False)):
            if not (directory / f"{op}.json").exists():
                Journal(directory, op, fd, {}).close()
            else:
                os.close(fd)
    for path in sorted(directory.glob("*.json")):
        op = path.name[: -len(".json")]
        fd = _lock(directory / f"{op}.lock", wait=False)
        if fd is None:
            continue  # its owner is alive (maybe stopped or busy): never touched
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            os.close(fd)
            continue
        if task_id is not None and data.get("task_id") != task_id:
            os.close(fd)
            continue
        found.append(Journal(directory, op, fd, data))
    found.sort(key=lambda j: j.data.get("started", 0.0))
    return found


def _lock(path: Path, wait: bool) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    # The lock file may have been removed by a closing owner between our open and lock:
    # then the journal it guarded is gone too, and this lock guards nothing.
    if not path.exists() or os.stat(path).st_ino != os.fstat(fd).st_ino:
        os.close(fd)
        return None
    return fd


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
