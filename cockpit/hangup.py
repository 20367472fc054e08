"""Leave cleanly when the terminal goes away, even if SIGHUP is ignored (nohup, wrappers).

Why a thread, not a timer: once the pty is gone, Textual's writer thread dies on EIO and
its bounded queue fills, so the event loop itself blocks in `queue.put()` on the next
repaint. A timer on that loop never fires. This watcher lives outside the loop: it points
the terminal fds at harmless stand-ins (so nothing blocks or spins any more), drains a
stuck writer queue, asks the loop to close the engine, and exits 129 (128 + SIGHUP) at a
hard deadline whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any

EXIT_CODE = 129
POLL_MS = 250
CLOSE_DEADLINE_S = 10.0
_KEEP: list[int] = []


def watch(
    loop: asyncio.AbstractEventLoop,
    close: Callable[[], Awaitable[Any]],
    writer_queue: Callable[[], Any],
    fd: int = 0,
) -> threading.Thread:
    """Start the watcher; `close` runs on `loop` when the terminal at `fd` hangs up, or
    when SIGHUP arrives (unless it is ignored: then the operator asked for nohup)."""
    signalled = threading.Event()
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        # A plain handler, not loop.add_signal_handler: it must run even while the loop
        # is stuck in a blocked write; it only sets a flag the watcher thread reads.
        signal.signal(signal.SIGHUP, lambda *_: signalled.set())
    thread = threading.Thread(
        target=_watch,
        args=(loop, close, writer_queue, fd, signalled),
        name="hangup-watch",
        daemon=True,
    )
    thread.start()
    return thread


def hung_up(fd: int, timeout_ms: int = 0) -> bool:
    poller = select.poll()
    bad = select.POLLHUP | select.POLLERR | select.POLLNVAL
    poller.register(fd, bad)
    return any(mask & bad for _, mask in poller.poll(timeout_ms))


def _watch(
    loop: asyncio.AbstractEventLoop,
    close: Callable[[], Awaitable[Any]],
    writer_queue: Callable[[], Any],
    fd: int,
    signalled: threading.Event,
) -> None:
    try:
        while not signalled.is_set() and not hung_up(fd, POLL_MS):
            if loop.is_closed():
                return
    except (OSError, ValueError):
        return
    _detach_terminal()
    _drain_writer(writer_queue())
    done = threading.Event()

    async def leave() -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(close(), CLOSE_DEADLINE_S)
        done.set()

    with contextlib.suppress(RuntimeError):  # the loop is already gone: just leave
        asyncio.run_coroutine_threadsafe(leave(), loop)
    done.wait(CLOSE_DEADLINE_S + 1)
    # Textual's own exit would try to restore a terminal that no longer exists.
    os._exit(EXIT_CODE)


def _detach_terminal() -> None:
    """Output to /dev/null (writes succeed, nothing blocks); input from a pipe that never
    speaks (the input thread waits in select instead of spinning on a dead pty)."""
    null = os.open(os.devnull, os.O_WRONLY)
    quiet, writer_end = os.pipe()
    _KEEP.append(writer_end)  # closing it would make the pipe readable (EOF) again
    for target in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(null, target)
    with contextlib.suppress(OSError):
        os.dup2(quiet, 0)


def _drain_writer(queue: Any) -> None:
    """Textual's writer thread may have died on EIO already, and then its full queue blocks
    the event loop: empty that queue from here, forever (this thread ends with the process).
    Draining beside a live writer is harmless too: all output goes to /dev/null now. (The
    queue comes from cockpit/textual_private.py; None: this Textual has none to drain.)"""
    if queue is None:
        return

    def drain() -> None:
        while True:
            queue.get()

    threading.Thread(target=drain, name="hangup-drain", daemon=True).start()
