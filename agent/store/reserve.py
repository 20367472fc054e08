"""Room kept aside on the store's disk, for the last words when the disk fills up.

A full disk refuses every write, including the one saying the task failed because the
disk is full. So a writable store keeps a small file of real blocks next to itself; the
first write refused for lack of space deletes it and tries again, and that room is what
records the task's end and its reason. The file comes back at the next open that finds
room for it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

RESERVE_BYTES = 1 << 20  # ~250 WAL pages: a task's end, its events and audit records


class Reserve:
    def __init__(self, store_path: Path) -> None:
        self.path = store_path.with_name(f".{store_path.name}.reserve")

    def ensure(self) -> None:
        """Best effort, never an error: no room for it is no reason to refuse the store."""
        try:
            if self.path.stat().st_size >= RESERVE_BYTES:
                return
        except OSError:
            pass
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            # Real blocks (written, if the filesystem cannot allocate): a sparse file would
            # free nothing when deleted.
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        except OSError:
            with contextlib.suppress(OSError):
                self.path.unlink()
        finally:
            os.close(fd)

    def release(self) -> bool:
        """Give the room back to the disk. True if there was any to give."""
        try:
            self.path.unlink()
        except OSError:
            return False
        return True
