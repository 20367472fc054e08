"""A cockpit whose terminal disappears leaves, closing its engine, instead of hanging."""

from __future__ import annotations

import os
import pty
import select
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _live_demo_task(tmp: Path) -> bool:
    """True once the demo's engine is running a task (its store lives in a temp dir)."""
    for db in tmp.glob("livhana-demo-*/data/livhana.db"):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as conn:
                row = conn.execute("SELECT count(*) FROM tasks WHERE state='running'").fetchone()
        except sqlite3.Error:
            return False
        return bool(row and row[0])
    return False


@pytest.mark.parametrize(
    ("moment", "sighup"),
    [("first_frame", "ignored"), ("mid_task", "ignored"), ("mid_task", "default")],
)
def test_cockpit_exits_when_its_terminal_hangs_up(tmp_path: Path, moment: str, sighup: str) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    pid, fd = pty.fork()
    if pid == 0:  # the child; SIGHUP ignored as under nohup or a wrapper, or as it comes
        if sighup == "ignored":
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        os.environ["LIVHANA_DATA_DIR"] = str(tmp_path / "data")
        os.environ["TMPDIR"] = str(tmp)  # where the demo makes its scratch project
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "cockpit", "--demo"])
    try:
        deadline = time.monotonic() + 60
        seen = b""
        # Keep reading (a terminal that is not read blocks the app) until a task runs.
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    seen += os.read(fd, 65536)[-4096:]
                except OSError:
                    break
            # The footer's stop key is on every frame, at any width (a pty is 80x24).
            if b"STOP" in seen and (moment == "first_frame" or _live_demo_task(tmp)):
                break
        assert b"STOP" in seen, "the cockpit never painted"
        if moment == "mid_task":
            assert _live_demo_task(tmp), "the demo never started a task"
        os.close(fd)  # the terminal goes away (at once, or while the engine is busy)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.waitstatus_to_exitcode(status) == 129
                # The engine was closed and the demo cleaned up after itself.
                assert not list(tmp.glob("livhana-demo-*")), "the demo's scratch dir was left"
                return
            time.sleep(0.1)
        raise AssertionError("the cockpit kept running after its terminal hung up")
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
