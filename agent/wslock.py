"""One task at a time on a plain (non-git) workspace, across every process on this store.

    locks = WorkspaceLocks(data_dir)
    lock = locks.lock(str(workspace))               # a fresh handle per caller
    await lock.acquire()                            # waits without blocking the event loop
    ...
    lock.release()                                  # a no-op unless this handle holds it

The lock is an fcntl (flock) lock on `<data dir>/locks/<sha256 of the path>.lock`: the kernel
drops it when its process dies, so a crashed engine never leaves a workspace locked. Within
one process an asyncio.Lock per workspace queues the waiters, so only one of them polls the
file. Handles are per caller: releasing one that never got the lock (cancelled while waiting)
must not free the lock another task holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from pathlib import Path

POLL_S = 0.05  # how often a waiter re-tries the file lock held by another process

# Our own, not `filelock`: its locks are re-entrant per object and, async, poll from an
# executor thread per waiter; here a handle that never got the lock (cancelled while
# waiting) must release nothing, waiters in one process queue on an asyncio.Lock so only
# one polls the file, and the file names its holder for an operator. That is these 90
# lines; filelock would save few of them and change those semantics.


def lock_path(data_dir: Path, workspace: str) -> Path:
    key = hashlib.sha256(os.path.realpath(workspace).encode()).hexdigest()[:24]
    return Path(data_dir) / "locks" / f"{key}.lock"


class WorkspaceLock:
    def __init__(self, inner: asyncio.Lock, path: Path, workspace: str) -> None:
        self._inner, self.path, self.workspace = inner, path, workspace
        self._fd: int | None = None
        self._held = False

    def locked(self) -> bool:
        return self._held

    async def acquire(self) -> bool:
        await self._inner.acquire()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                while not _try_lock(fd):
                    await asyncio.sleep(POLL_S)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            self._inner.release()
            raise
        self._fd, self._held = fd, True
        with contextlib.suppress(OSError):  # who holds it, for an operator looking at the file
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {self.workspace}\n".encode())
        return True

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self._inner.release()

    async def __aenter__(self) -> WorkspaceLock:
        await self.acquire()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class WorkspaceLocks:
    """The engine's locks on workspaces: `lock` (one task at a time on a plain folder, across
    processes) and `worktree` (git worktree add/remove on one repository, in this process)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._inner: dict[str, asyncio.Lock] = {}
        self._worktrees: dict[str, asyncio.Lock] = {}

    def worktree(self, repo: str) -> asyncio.Lock:
        """Held around `git worktree add/remove` on the repository checked out at `repo`:
        a concurrent add can read another's half-made .git/worktrees entry and fail
        ("failed to read commondir")."""
        return self._worktrees.setdefault(repo, asyncio.Lock())

    def lock(self, workspace: str) -> WorkspaceLock:
        key = os.path.realpath(workspace)
        inner = self._inner.setdefault(key, asyncio.Lock())
        return WorkspaceLock(inner, lock_path(self.data_dir, key), key)
