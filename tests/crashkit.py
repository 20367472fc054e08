"""Killing the real command line in the middle of an apply or a rollback, and checking what
it left: the workspace byte for byte all-old or all-new, no lock, a record that agrees.

A process started with LIVHANA_CRASHPOINT=<kind>:<phase> stops itself (SIGSTOP) at that
phase (agent/journal.py); `stop_at` waits for that, and `deliver` sends it what a crash or an
operator would: SIGKILL to its process group (everything dies, git children included),
SIGKILL to the pid alone (children live on), or SIGINT to the group (a Ctrl-C) then SIGCONT.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, git
from tests.test_rollback_flow import tree

SIGNALS = ["kill-group", "kill-pid", "int-group"]


def spawn(*args: str, crashpoint: str | None = None, **kw: Any) -> subprocess.Popen[str]:
    env = {**os.environ}
    env.pop("LIVHANA_CRASHPOINT", None)
    if crashpoint:
        env["LIVHANA_CRASHPOINT"] = crashpoint
    return subprocess.Popen(
        [sys.executable, "-m", "cockpit", *args],
        cwd=ROOT, env=env, text=True, start_new_session=True,  # its own process group
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw,
    )  # fmt: skip


def stopped(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] == "T"


def stop_at(proc: subprocess.Popen[str], timeout: float = 120) -> None:
    """Until the process stopped itself at its crash point (it must not end first)."""
    deadline = time.monotonic() + timeout
    while not stopped(proc.pid):
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"ended (exit {proc.returncode}) before its crash point:\n"
                                 f"{out[-2000:]}\n{err[-2000:]}")  # fmt: skip
        assert time.monotonic() < deadline, "never reached its crash point"
        time.sleep(0.02)


def deliver(proc: subprocess.Popen[str], how: str) -> int:
    """Send the signal; returns the exit code once the process is gone."""
    if how == "kill-group":
        os.killpg(proc.pid, signal.SIGKILL)
    elif how == "kill-pid":
        os.kill(proc.pid, signal.SIGKILL)
    else:
        os.killpg(proc.pid, signal.SIGINT)
        os.killpg(proc.pid, signal.SIGCONT)
    proc.communicate(timeout=120)
    return proc.returncode


@dataclass
class Side:
    """One of the two states the workspace may end in."""

    files: dict[str, tuple[str, str]]
    head: str


class Workspace:
    """A workspace (git repo or plain folder) with operator work in it, and a task whose
    change is known ahead: `old` is the workspace before, `new` after its apply."""

    def __init__(self, path: Path, tmp_path: Path, commands: list[str], is_git: bool) -> None:
        self.path, self.is_git, self.commands = path, is_git, commands
        if is_git:
            (path / ".gitignore").write_text("*.log\n")
            (path / "other.txt").write_text("other\n")
            git(path, "add", "-A")
            git(path, "commit", "-q", "-m", "more")
            (path / "other.txt").write_text("operator's staged edit\n")
            git(path, "add", "other.txt")
            (path / "debug.log").write_text("operator's ignored log\n")
        (path / "scratch.txt").write_text("operator's untracked scratch\n")
        self.status = self.git_view()
        self.old = Side(tree(path), self.head())
        copy = tmp_path / "expected-new"
        shutil.copytree(path, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        for command in commands:
            subprocess.run(["bash", "-c", command], cwd=copy, check=True)
        self.new = Side(tree(copy), "")

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD").strip() if self.is_git else ""

    def git_view(self) -> tuple[str, str]:
        if not self.is_git:
            return "", ""
        status = git(self.path, "status", "--porcelain", "--ignored", "--untracked-files=all")
        return status, git(self.path, "diff", "--cached")

    def which(self) -> str:
        """"old" or "new", checked byte for byte, git's view included; no lock left."""
        if self.is_git:
            leftovers = sorted(p.name for p in (self.path / ".git").iterdir()
                               if p.name.endswith(".lock") or p.name.startswith("livhana"))  # fmt: skip
            assert leftovers == [], leftovers
        now = tree(self.path)
        if now == self.old.files:
            assert self.head() == self.old.head
            assert self.git_view() == self.status
            return "old"
        assert now == self.new.files, _diff(now, self.old.files, self.new.files)
        if self.is_git:
            head = self.head()
            assert head != self.old.head
            assert git(self.path, "rev-parse", "HEAD^").strip() == self.old.head
            assert self.git_view() == self.status  # the operator's staged/untracked work as was
            self.new.head = head
        return "new"


def _diff(now: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> str:
    def delta(want: dict[str, Any]) -> list[str]:
        keys = sorted(set(now) | set(want))
        return [k for k in keys if now.get(k) != want.get(k)][:8]

    return f"neither old nor new: differs from old at {delta(old)}, from new at {delta(new)}"


def record(data_dir: Path, task_id: str) -> dict[str, Any]:
    """The task's row, events and audit entries, read straight from the store."""
    db = sqlite3.connect(f"file:{data_dir / 'livhana.db'}?mode=ro", uri=True)
    try:
        state, options, error = db.execute(
            "SELECT state, options, error FROM tasks WHERE id = ?", [task_id]
        ).fetchone()
        events = [json.loads(d) | {"type": t} for t, d in db.execute(
            "SELECT type, data FROM events WHERE task_id = ? ORDER BY seq", [task_id])]  # fmt: skip
        audit = [a for (a,) in db.execute(
            "SELECT action FROM audit WHERE task_id = ? ORDER BY id", [task_id])]  # fmt: skip
    finally:
        db.close()
    return {"state": state, "options": json.loads(options), "error": error, "events": events,
            "audit": audit}  # fmt: skip


def journals(data_dir: Path) -> list[str]:
    folder = data_dir / "journal"
    return sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []


def last_status(events: list[dict[str, Any]]) -> str:
    return [e for e in events if e["type"] == "status"][-1]["state"]
