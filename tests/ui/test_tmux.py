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
    ("4", "next steps"), ("5", "policy mode"), ("6", "enter open · r rollback"), ("7", "Schedules"),
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


def start(tmp_path: Path, *args: str, cwd: Path = ROOT,
          size: tuple[int, int] = (120, 40)) -> Tmux:
    """The cockpit in a fresh tmux server. Its output stays on the pane: Textual draws on
    stderr, so redirecting that would leave the pane blank."""
    term = Tmux(f"livhana-test-{os.getpid()}-{tmp_path.name}", "cockpit")
    env = {"LIVHANA_DATA_DIR": str(tmp_path / "data"), "TMPDIR": str(tmp_path),
           "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring", "TERM": "xterm-256color",
           "PYTHONPATH": str(ROOT)}
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    # COLUMNS/LINES (set by pytest) would override the pane size the app sees.
    command = (f"cd {cwd} && env -u COLUMNS -u LINES {exports} {sys.executable} -m cockpit "
               + " ".join(args))
    term("new-session", "-d", "-s", term.session, "-x", str(size[0]), "-y", str(size[1]),
         command)
    return term


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    term = start(tmp_path, "--demo")
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
    tmux.send("C-q")  # work is live: it asks first, and says what happens to it
    tmux.wait_for("Quit Liv Hana Cockpit?")
    tmux.wait_for("interrupted")
    tmux.send("n")  # stay
    tmux.send("C-x")
    tmux.wait_for("EMERGENCY STOP ENGAGED")
    tmux.send("9", "r")
    tmux.wait_for("ARMED")
    tmux.send("C-q")  # the stop ended the live work: it may quit at once, or ask
    time.sleep(2)
    if "Quit Liv Hana Cockpit?" in tmux.screen():
        tmux.send("y")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "cockpit" in tmux("list-sessions"):
        time.sleep(0.2)
    assert "cockpit" not in tmux("list-sessions")  # quit cleanly
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith("livhana-demo-")]
    assert leftovers == []  # the demo's temp store and workspace are removed on exit


def test_a_request_from_a_separate_run_toasts_and_rings_on_another_panel(tmp_path: Path) -> None:
    """The operator reads Learnings; a `run` in another shell raises a request: a toast
    names it on that panel and the terminal bell rings (tmux's alert-bell hook hears it)."""
    from cockpit.demo import DEMO_POLICY, SCRIPT, WORKSPACE, _git

    workspace = tmp_path / "shopcart"
    shutil.copytree(WORKSPACE, workspace)
    _git(workspace, "init", "-q", "-b", "main")
    _git(workspace, "add", "-A")
    _git(workspace, "commit", "-q", "-m", "start")
    data = tmp_path / "data"
    data.mkdir()
    (data / "policy.toml").write_text(DEMO_POLICY)
    bells = tmp_path / "bells"
    term = start(tmp_path, cwd=workspace, size=(80, 24))
    runner = None
    try:
        term("set-hook", "-g", "alert-bell", f"run-shell 'echo bell >> {bells}'")
        term.wait_for("What should the agent do?")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "starting" in term.screen().splitlines()[0]:
            time.sleep(0.1)  # the engine is open once the top bar stops saying so
        term.send("Escape", "4")  # leave the task field, read Learnings
        term.wait_for("search learnings")
        env = {**os.environ, "LIVHANA_DATA_DIR": str(data),
               "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
        runner = subprocess.Popen(
            [sys.executable, "-m", "cockpit", "run", "Clean the build artifacts",
             "--workspace", str(workspace), "--approve", "ask", "--model", f"scripted:{SCRIPT}"],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)  # its stdin stays open: its prompt waits
        shown = term.wait_for("Approval needed", timeout=60)
        assert "rm -rf build" in shown and "w to review" in shown
        assert "search learnings" in shown  # still on Learnings
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not bells.exists():
            time.sleep(0.1)
        assert bells.exists() and "bell" in bells.read_text()
        assert "⚑1" in term.screen().splitlines()[0]
        term.send("w")  # to the request, from here
        term.wait_for("rm -rf build dist")
        term.wait_for("1 pending")
    finally:
        if runner is not None:
            runner.kill()
            runner.wait(timeout=20)
        term("kill-server")


def test_the_demo_names_its_data_dir_at_start_and_exit(tmp_path: Path) -> None:
    """What the demo says before and after the full screen stays in the terminal: the pane
    is kept after the exit and read whole (wrapped lines joined)."""
    term = start(tmp_path, "--demo")
    try:
        term("set-option", "-t", term.session, "remain-on-exit", "on")
        term.wait_for("Recent tasks")
        term.wait_for("⚑2", timeout=60)
        term.send("Escape")  # out of the task field (if there), then a pause: an Escape
        time.sleep(1)  # and a q in quick succession reach the app as one key, alt+q
        term.wait_for("q Quit")
        term.send("q")
        term.wait_for("Quit Liv Hana Cockpit?")
        term.send("y")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and term(
            "display-message", "-p", "-t", term.session, "#{pane_dead}"
        ).strip() != "1":
            time.sleep(0.2)
        said = term("capture-pane", "-p", "-J", "-S", "-", "-t", term.session)  # + history
        assert "demo data dir: " in said, said
        data = Path(said.split("demo data dir: ", 1)[1].split()[0])
        assert data.parent.name.startswith("livhana-demo-")
        assert f"--data-dir {data} history" in said  # how to point the CLI at it
        assert f"demo data dir {data} removed" in said
        assert not data.exists()
        assert not (tmp_path / "data").exists()  # the operator's data dir was never made
    finally:
        term("kill-server")
