"""Child processes, each in its own process group, so a stop can kill everything they spawned."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import TaskStopped


@dataclass
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    killed: bool = False  # ended by a stop or cancel
    seconds: float = 0.0


log = logging.getLogger(__name__)


class ProcessGroups:
    """The live process groups of one task, and other work a stop must interrupt (a
    database query running in a thread). `kill_all` is what a stop or cancel calls."""

    def __init__(self) -> None:
        self._live: dict[int, asyncio.subprocess.Process] = {}
        self._interrupts: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()
        self._closed = False

    def on_stop(self, interrupt: Callable[[], None]) -> Callable[[], None]:
        """Call `interrupt` (from the event loop, must not block) when the task is stopped;
        at once if it already was. Returns the function that unregisters it."""
        key = next(self._ids)
        self._interrupts[key] = interrupt
        if self._closed:
            _call(interrupt)

        def unregister() -> None:
            self._interrupts.pop(key, None)

        return unregister

    @property
    def pgids(self) -> list[int]:
        return list(self._live)

    async def run(
        self,
        argv: list[str],
        cwd: Path,
        timeout_s: float,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> Completed:
        if self._closed:
            raise TaskStopped("cancelled", "stopped: no new processes may start")
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=str(cwd),
            env=env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # own process group: killpg reaches its children too
        )
        self._live[proc.pid] = proc
        if self._closed:  # a stop landed while this child was being spawned: it must not run on
            # Its whole tree, as the stop does: a sandbox's child may already be in its own
            # session, out of the group's reach, holding the output pipes open.
            await self.kill_all(close=False)  # closed already: its interrupts have run
        timed_out = False
        out, err = _Capture(), _Capture()
        # Shielded: at the time-out the output read so far is kept (a killed command's last
        # lines, a search's matches), not dropped with a cancelled read.
        talk = asyncio.ensure_future(_talk(proc, stdin, out, err))
        try:
            await asyncio.wait_for(asyncio.shield(talk), timeout_s)
        except TimeoutError:
            timed_out = True
            _killpg(proc.pid)
            await talk
        except asyncio.CancelledError:
            _killpg(proc.pid)
            talk.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 2)
            raise
        finally:
            self._live.pop(proc.pid, None)
            # Background children of a finished command are killed too: nothing outlives a step.
            _killpg(proc.pid)
        killed = self._closed or (
            proc.returncode is not None and proc.returncode < 0 and not timed_out
        )
        return Completed(
            returncode=proc.returncode if proc.returncode is not None else -9,
            stdout=out.value(),
            stderr=err.value(),
            timed_out=timed_out,
            killed=killed,
            seconds=time.monotonic() - started,
        )

    async def kill_all(self, close: bool = True) -> list[int]:
        """SIGKILL every group and every descendant, then wait until none is left running.
        Returns the pids still running after the wait (normally none): the caller must
        report them loudly, they are what a stop promised was gone.

        Descendants are collected before the kill: a child that left the group (setsid,
        a sandbox's own session) is still found through its parent chain.
        """
        self._closed = self._closed or close
        if close:
            for interrupt in list(self._interrupts.values()):
                _call(interrupt)
        procs = list(self._live.items())
        if not procs:
            return []
        tree = _descendants([pid for pid, _ in procs])
        for pgid, _ in procs:
            _killpg(pgid)
        for pid, pgid in tree.items():
            _kill(pid)
            _killpg(pgid)
        survivors: set[int] = set()
        for pgid, proc in procs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 2)
            if not await wait_group_gone(pgid):
                survivors.update(_group_members(pgid))
        survivors.update(await _wait_pids_gone(set(tree) | {pgid for pgid in tree.values()}))
        if survivors:
            log.error("processes survived SIGKILL: %s", sorted(survivors))
        return sorted(survivors)

    def reopen(self) -> None:
        self._closed = False


# Per stream, the first and the last half of this are kept: `yes` for the length of a
# command's time-out would otherwise fill the engine's memory (what is shown is cut far
# shorter anyway, and a test summary is at the end).
CAPTURE_BYTES = 4 << 20


class _Capture:
    """A stream's head and tail, with a count of what was dropped between them."""

    def __init__(self, limit: int = CAPTURE_BYTES) -> None:
        self.half = limit // 2
        self.head = bytearray()
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_size = 0
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self.tail.append(chunk)
        self.tail_size += len(chunk)
        while self.tail_size - len(self.tail[0]) >= self.half:
            self.tail_size -= len(self.tail[0])
            self.dropped += len(self.tail.popleft())

    def value(self) -> bytes:
        gap = f"\n[... {self.dropped:,} bytes of output dropped ...]\n" if self.dropped else ""
        return bytes(self.head) + gap.encode() + b"".join(self.tail)


async def _talk(
    proc: asyncio.subprocess.Process, stdin: bytes | None, out: _Capture, err: _Capture
) -> None:
    """communicate(), with bounded capture."""

    async def feed() -> None:
        if stdin is None or proc.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(stdin)
            await proc.stdin.drain()
        proc.stdin.close()

    async def pump(stream: asyncio.StreamReader | None, into: _Capture) -> None:
        while stream is not None and (chunk := await stream.read(1 << 16)):
            into.add(chunk)

    await asyncio.gather(feed(), pump(proc.stdout, out), pump(proc.stderr, err))
    await proc.wait()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, pgid, state) for every process we can see.

    Our own, not psutil: one read of /proc/<pid>/stat gives all three at once, where
    psutil has no process group (an os.getpgid per pid on top, racing with exits) and took
    2.6x as long for the same table (13 ms vs 36 ms for ~160 processes, load 8 on 2 cores);
    a stop polls this table every few ms until the task's processes are gone. The engine
    is Linux-only anyway (bubblewrap)."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3:
            table[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[0])
    return table


def _descendants(roots: list[int]) -> dict[int, int]:
    """pid -> pgid of every process below `roots` (roots excluded)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, int] = {}
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = table[child][1]
                todo.append(child)
    return found


async def _wait_pids_gone(pids: set[int], timeout_s: float = 2.0) -> list[int]:
    """[] once none of `pids` runs; else those still running at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        table = _proc_table()
        alive = [p for p in pids if p in table and table[p][2] != "Z"]
        if not alive:
            return []
        if time.monotonic() > deadline:
            return alive
        for pid in alive:
            _kill(pid)
        await asyncio.sleep(0.005)


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    """True while any non-zombie process is in the group (zombies hold no resources and
    may wait on a parent that never reaps them, e.g. a container's PID 1)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(state != "Z" for state in _group_states(pgid))


def _group_states(pgid: int) -> list[str]:
    return [state for _, group, state in _proc_table().values() if group == pgid]


def _group_members(pgid: int) -> list[int]:
    return [pid for pid, (_, group, state) in _proc_table().items() if group == pgid and state != "Z"]


def _call(interrupt: Callable[[], None]) -> None:
    try:
        interrupt()
    except Exception as exc:  # one failing interrupt must not keep the others from running
        log.warning("stop: an interrupt failed: %s", exc)


async def wait_group_gone(pgid: int, timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        _killpg(pgid)
        await asyncio.sleep(0.005)
    return True
