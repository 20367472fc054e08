"""The disk the data dir's parts take: task worktrees, shadow checkpoints, journals, store.

Measured in a thread (a worktree with a build tree can hold many files), at most every
MAX_AGE_S per data dir; a panel asking meanwhile gets the last measure at once, and the
first ask waits for it at most FIRST_WAIT_S (then {"measuring": True}).

    usage = await disk_usage(config, store)
    # {"worktrees": {"bytes", "count"}, "shadow": {...}, "journals": {...},
    #  "store": {"bytes"}, "total_bytes", "measured_at", "last_gc": {...} | None}

Bytes are blocks on disk (a hard-linked file counted once); symlinks are not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

MAX_AGE_S = 30.0
LAST_RUN = "gc_last_run"  # store setting (agent/prune.py): {"at", "freed_bytes", "removed", "by"}
FIRST_WAIT_S = 2.0

_measured: dict[str, tuple[float, dict[str, Any]]] = {}
_measuring: dict[str, asyncio.Future[dict[str, Any]]] = {}


def tree_bytes(path: Path) -> int:
    """Blocks on disk under `path` (itself included), links not followed."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [str(path)]
    while stack:
        here = stack.pop()
        try:
            st = os.lstat(here)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        total += st.st_blocks * 512
        if os.path.isdir(here) and not os.path.islink(here):
            with contextlib.suppress(OSError):
                stack.extend(e.path for e in os.scandir(here))
    return total


def measure(data_dir: Path, store_path: Path) -> dict[str, Any]:
    """The parts' sizes, now (blocking)."""
    out: dict[str, Any] = {}
    for key, folder in (("worktrees", data_dir / "worktrees"), ("shadow", data_dir / "shadow"),
                        ("journals", data_dir / "journal")):  # fmt: skip
        try:
            entries = [e for e in os.scandir(folder) if not e.name.startswith(".")]
        except OSError:
            entries = []
        count = sum(1 for e in entries if e.is_dir(follow_symlinks=False) and key != "journals")
        if key == "journals":
            count = sum(1 for e in entries if e.name.endswith(".json"))
        out[key] = {"bytes": tree_bytes(folder) if entries else 0, "count": count,
                    "path": str(folder)}  # fmt: skip
    store = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            store += os.lstat(f"{store_path}{suffix}").st_blocks * 512
    out["store"] = {"bytes": store, "path": str(store_path)}
    out["total_bytes"] = sum(v["bytes"] for v in out.values())
    out["measured_at"] = time.time()
    return out


async def disk_usage(config: Any, store: Any) -> dict[str, Any]:
    """The last measure (see the module doc), with the last gc's outcome from the store."""
    key = str(config.data_dir)
    now = time.monotonic()
    last = _measured.get(key)
    if last is None or now - last[0] > MAX_AGE_S:
        job = _measuring.get(key)
        if job is None:
            job = asyncio.ensure_future(asyncio.to_thread(measure, config.data_dir,
                                                          config.store_path))  # fmt: skip
            _measuring[key] = job
            job.add_done_callback(lambda done: _keep(key, done))
        if last is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(job), FIRST_WAIT_S)
            last = _measured.get(key)
    result = dict(last[1]) if last is not None else {"measuring": True}
    result["last_gc"] = await store.get_setting(LAST_RUN, None)
    return result


def _keep(key: str, job: asyncio.Future[dict[str, Any]]) -> None:
    _measuring.pop(key, None)
    if not job.cancelled() and job.exception() is None:
        _measured[key] = (time.monotonic(), job.result())


def forget(data_dir: Path) -> None:
    """Measure afresh next time (after a gc freed space)."""
    _measured.pop(str(data_dir), None)
