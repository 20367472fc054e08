"""A cockpit whose terminal disappears leaves instead of spinning on the dead pty."""

from __future__ import annotations

import os
import pty
import signal
import sys
import time
from pathlib import Path

from tests.conftest import ROOT


def test_cockpit_exits_when_its_terminal_hangs_up(tmp_path: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: SIGHUP ignored, as under nohup or a wrapper, so only we notice
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        os.environ["LIVHANA_DATA_DIR"] = str(tmp_path / "data")
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "cockpit", "--demo"])
    try:
        deadline = time.monotonic() + 15
        seen = b""
        while b"Approvals" not in seen and time.monotonic() < deadline:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
        assert b"Approvals" in seen, "the cockpit never painted"
        os.close(fd)  # the terminal goes away
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.waitstatus_to_exitcode(status) == 129
                return
            time.sleep(0.1)
        raise AssertionError("the cockpit kept running after its terminal hung up")
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
