"""Drive the real `livhana-cockpit --demo` in tmux through all ten panels, as an operator
would: send keys, read the pane."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# key -> text that only that panel shows
MARKERS = [
    ("1", "Recent tasks"), ("2", "spent by live tasks"), ("3", "approve all of the same kind"),
    ("4", "next steps"), ("5", "policy mode"), ("6", "enter replay"), ("7", "Schedules"),
    ("8", "Event loop"), ("9", "EMERGENCY STOP"), ("0", "Tasks per day"),
]

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self, socket: str, session: str) -> None:
        self.base = ["tmux", "-L", socket]
        self.session = session

    def __call__(self, *args: str) -> str:
        done = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=20)
        return done.stdout

    def send(self, *keys: str) -> None:
        self("send-keys", "-t", self.session, *keys)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", self.session)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; the pane shows:\n{self.screen()}")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    term = Tmux(f"livhana-test-{os.getpid()}", "cockpit")
    env = {"LIVHANA_DATA_DIR": str(tmp_path / "data"), "TMPDIR": str(tmp_path),
           "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring", "TERM": "xterm-256color"}
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    # COLUMNS/LINES (set by pytest) would override the pane size the app sees.
    command = f"cd {ROOT} && env -u COLUMNS -u LINES {exports} {sys.executable} -m cockpit --demo"
    term("new-session", "-d", "-s", term.session, "-x", "120", "-y", "40", command)
    try:
        yield term
    finally:
        term("kill-server")


def test_tmux_drives_the_real_app_through_all_ten_panels(tmux: Tmux, tmp_path: Path) -> None:
    tmux.wait_for("Recent tasks")
    tmux.wait_for("⚑2", timeout=60)  # the demo's two requests wait in the queue
    for key, marker in MARKERS:
        tmux.send(key)
        tmux.wait_for(marker)
        tmux.wait_for("^x STOP")  # the stop key is offered on every panel
    tmux.send("C-x")
    tmux.wait_for("EMERGENCY STOP ENGAGED")
    tmux.send("9", "r")
    tmux.wait_for("ARMED")
    tmux.send("C-q")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "cockpit" in tmux("list-sessions"):
        time.sleep(0.2)
    assert "cockpit" not in tmux("list-sessions")  # quit cleanly
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith("livhana-demo-")]
    assert leftovers == []  # the demo's temp store and workspace are removed on exit
