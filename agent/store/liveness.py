"""Whether an engine is alive, proven rather than guessed.

Each engine holds an exclusive flock on its own file (`.<store>.engines/<engine id>.lock`)
from before its row is written until after the row is removed. The kernel drops the lock
when the process dies, however it dies (SIGKILL, OOM, a crash), and never while it lives:
a process paused by SIGSTOP, swapped out or with an event loop busy for minutes keeps it.
So an engine is dead exactly when its lock can be taken. A late heartbeat proves nothing.

An engine row without a lock file (written by an older version, on a filesystem without
flock, or its file deleted by hand) is judged by its pid, on this host: gone, or reused
by a process that started after the engine registered, is dead; anything else counts as
alive, because a task is only ever taken from an engine that is surely gone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import socket
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class EngineLocks:
    def __init__(self, store_path: Path) -> None:
        self.dir = store_path.with_name(f".{store_path.name}.engines")
        self._held: dict[str, int] = {}  # engine id -> the fd holding its lock

    def _file(self, engine_id: str) -> Path:
        return self.dir / (_UNSAFE.sub("_", engine_id) + ".lock")

    def hold(self, engine_id: str) -> None:
        """Take `engine_id`'s lock for as long as this process runs it (OSError if not)."""
        if engine_id in self._held:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._file(engine_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            # A filesystem without flock: no file, so others judge this engine by its pid
            # (an unlocked file would read as a dead engine's).
            with contextlib.suppress(OSError):
                path.unlink()
            return
        self._held[engine_id] = fd

    def release(self, engine_id: str, unlink: bool = True) -> None:
        """Let go of the lock. `unlink` once the engine's row is gone; a row left behind
        (the store could not be written) keeps its file, so its death stays provable."""
        fd = self._held.pop(engine_id, None)
        if fd is None:
            return
        if unlink:
            with contextlib.suppress(OSError):  # unlinked while held: nobody takes it meanwhile
                self._file(engine_id).unlink()
        os.close(fd)

    def release_all(self) -> None:
        for engine_id in list(self._held):
            self.release(engine_id, unlink=False)

    def alive(self, row: dict[str, Any]) -> bool:
        engine_id = str(row["id"])
        if engine_id in self._held:
            return True
        try:
            fd = os.open(self._file(engine_id), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return _pid_alive(row)
        except OSError:
            return True  # cannot look: not proof of death
        try:
            # Shared, so two engines checking at once do not take each other for the owner.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True  # held (EWOULDBLOCK), or cannot tell
        else:
            return False
        finally:
            os.close(fd)

    def forget(self, engine_id: str) -> None:
        """Remove a dead engine's lock file (only while it is provably free)."""
        path = self._file(engine_id)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)


def _pid_alive(row: dict[str, Any]) -> bool:
    if row.get("host") != socket.gethostname():
        return True  # another machine's process: nothing here can tell
    pid = int(row["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = _process_start(pid)
    # A pid reused by a process that started after the engine registered.
    return started is None or started <= float(row["started_at"]) + 2.0


def _process_start(pid: int) -> float | None:
    """When `pid` started (epoch seconds), from /proc; None where that is not known."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        ticks = int(stat[stat.rfind(")") + 2 :].split()[19])
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
