"""The kill matrix: apply and rollback killed at each of their phases (SIGKILL to the process
group, SIGKILL to the pid alone, Ctrl-C to the group). Whatever the moment, after the next
start the workspace is byte for byte all-old or all-new (git's HEAD, index and the operator's
staged, untracked and ignored work included), no lock is left, the record (state,
options.applied, events, audit) says which, and `rollback` then works. Real CLI, real git."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli, git, write_script
from tests.crashkit import (
    SIGNALS,
    Workspace,
    deliver,
    journals,
    last_status,
    record,
    spawn,
    stop_at,
)
from tests.test_rollback_flow import tree

PHASES = ["staged", "locked", "switching", "index", "committed", "done"]
PLAIN_PHASES = [p for p in PHASES if p != "index"]  # a plain folder has no index
COMMANDS = [
    "printf 'changed\\n' > app.py && rm README.md && mkdir -p pkg/sub && ln -s ../app.py pkg/alias",
    "for i in $(seq 1 40); do echo $i > pkg/sub/f$i.txt; done; printf '\\000bin' > data.bin"
    " && chmod +x data.bin",
]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"  # conftest points LIVHANA_DATA_DIR here


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain"
    path.mkdir()
    (path / "app.py").write_text("print('v1')\n")
    (path / "README.md").write_text("# plain\n")
    return path


def model(tmp_path: Path) -> str:
    turns = [{"tool_calls": [{"name": "execute_bash", "input": {"command": c}}]} for c in COMMANDS]
    return write_script(tmp_path / "task.json", [{"match": ".", "turns": turns}])


def run_args(ws: Path, tmp_path: Path) -> list[str]:
    return ["run", "crash me", "--workspace", str(ws), "--approve", "auto", "--model",
            model(tmp_path), "--json"]  # fmt: skip


def task_id_of(data_dir: Path) -> str:
    import sqlite3

    db = sqlite3.connect(f"file:{data_dir / 'livhana.db'}?mode=ro", uri=True)
    try:
        return str(db.execute("SELECT id FROM tasks ORDER BY created_at DESC").fetchone()[0])
    finally:
        db.close()


def next_start() -> None:
    """Any command opens the engine, whose start settles what the dead process left."""
    result = cli("history")
    assert result.returncode == 0, result.stderr


def check_apply_record(ws: Workspace, side: str, rec: dict[str, Any]) -> None:
    assert last_status(rec["events"]) == rec["state"]
    complete = [e for e in rec["events"] if e["type"] == "complete"]
    if side == "new":
        assert rec["state"] == "succeeded", rec
        applied = rec["options"]["applied"]
        if ws.is_git:
            assert applied["applied_commit"] == ws.new.head
        assert "apply" in rec["audit"]
        assert complete[-1]["success"] is True
    else:
        assert rec["state"] in ("interrupted", "cancelled", "failed"), rec
        assert "applied" not in rec["options"]
        assert not any(e["type"] == "complete" and e["success"] for e in rec["events"])
        assert "apply" not in rec["audit"]


def apply_killed_at(
    ws: Workspace, tmp_path: Path, data_dir: Path, phase: str, how: str
) -> tuple[str, str]:
    proc = spawn(*run_args(ws.path, tmp_path), crashpoint=f"apply:{phase}")
    stop_at(proc)
    code = deliver(proc, how)
    assert code == (130 if how == "int-group" else -9), proc.stderr
    task_id = task_id_of(data_dir)
    next_start()
    assert journals(data_dir) == []
    side = ws.which()
    rec = record(data_dir, task_id)
    check_apply_record(ws, side, rec)
    print(f"\nMATRIX apply:{phase} {how}: exit {code}, workspace all-{side}, task {rec['state']}")
    return task_id, side


def rollback_after(ws: Workspace, data_dir: Path, task_id: str, side: str) -> None:
    before = record(data_dir, task_id)["state"]
    result = cli("rollback", task_id)
    assert result.returncode == 0, result.stderr
    assert ws.which() == "old"
    rec = record(data_dir, task_id)
    assert rec["state"] == ("rolled_back" if side == "new" else before)
    assert "rollback" in rec["audit"] and journals(data_dir) == []


@pytest.mark.parametrize("how", SIGNALS)
@pytest.mark.parametrize("phase", PHASES)
def test_apply_killed_at_each_phase_git(
    phase: str, how: str, repo: Path, tmp_path: Path, data_dir: Path
) -> None:
    ws = Workspace(repo, tmp_path, COMMANDS, is_git=True)
    task_id, side = apply_killed_at(ws, tmp_path, data_dir, phase, how)
    if how == "int-group":
        assert side == "new"  # a Ctrl-C during the apply waits for it: never half
    rollback_after(ws, data_dir, task_id, side)


@pytest.mark.parametrize("phase", PLAIN_PHASES)
def test_apply_killed_at_each_phase_plain(
    phase: str, plain: Path, tmp_path: Path, data_dir: Path
) -> None:
    ws = Workspace(plain, tmp_path, COMMANDS, is_git=False)
    task_id, side = apply_killed_at(ws, tmp_path, data_dir, phase, "kill-group")
    rollback_after(ws, data_dir, task_id, side)


def rollback_killed_at(
    ws: Workspace, tmp_path: Path, data_dir: Path, phase: str, how: str
) -> None:
    result = cli(*run_args(ws.path, tmp_path))
    assert result.returncode == 0, result.stdout[-2000:]
    assert ws.which() == "new"
    task_id = task_id_of(data_dir)
    proc = spawn("rollback", task_id, crashpoint=f"rollback:{phase}")
    stop_at(proc)
    code = deliver(proc, how)
    assert code == (130 if how == "int-group" else -9), proc.stderr
    next_start()
    assert journals(data_dir) == []
    rec = record(data_dir, task_id)
    assert last_status(rec["events"]) == rec["state"]
    # The other way round here: "new" is the applied state the rollback started from.
    side = ws.which()
    print(f"\nMATRIX rollback:{phase} {how}: exit {code}, workspace "
          f"{'rolled back' if side == 'old' else 'still applied'}, task {rec['state']}")
    if side == "old":
        assert rec["state"] == "rolled_back" and "rollback" in rec["audit"]
        return
    assert how != "int-group"  # a Ctrl-C waits for the rollback to finish
    assert rec["state"] == "succeeded" and rec["options"]["applied"]
    again = cli("rollback", task_id)  # the second rollback does it all, not refused
    assert again.returncode == 0, again.stderr
    assert ws.which() == "old"
    assert record(data_dir, task_id)["state"] == "rolled_back"


@pytest.mark.parametrize("how", SIGNALS)
@pytest.mark.parametrize("phase", PHASES)
def test_rollback_killed_at_each_phase_git(
    phase: str, how: str, repo: Path, tmp_path: Path, data_dir: Path
) -> None:
    ws = Workspace(repo, tmp_path, COMMANDS, is_git=True)
    rollback_killed_at(ws, tmp_path, data_dir, phase, how)


@pytest.mark.parametrize("phase", PLAIN_PHASES)
def test_rollback_killed_at_each_phase_plain(
    phase: str, plain: Path, tmp_path: Path, data_dir: Path
) -> None:
    ws = Workspace(plain, tmp_path, COMMANDS, is_git=False)
    rollback_killed_at(ws, tmp_path, data_dir, phase, "kill-group")


def test_recovery_leaves_alone_a_path_the_operator_changed_meanwhile(
    repo: Path, tmp_path: Path, data_dir: Path
) -> None:
    """Killed mid-switch; before the next start the operator edits a file the apply had
    already switched. Recovery undoes everything else, leaves that file exactly as they
    have it, and says so."""
    ws = Workspace(repo, tmp_path, COMMANDS, is_git=True)
    proc = spawn(*run_args(repo, tmp_path), crashpoint="apply:switching")
    stop_at(proc)
    deliver(proc, "kill-group")
    assert (repo / "app.py").read_text() == "changed\n"  # already switched
    (repo / "app.py").write_text("the operator's edit after the crash\n")
    next_start()
    rec = record(data_dir, task_id_of(data_dir))
    assert rec["state"] == "interrupted" and "applied" not in rec["options"]
    (warning,) = [e for e in rec["events"] if e["type"] == "warning" and e.get("recovered")]
    assert "apply was undone" in warning["message"]
    assert "except app.py, which changed meanwhile and is left exactly as you have it" in (
        warning["message"]
    )
    assert (repo / "app.py").read_text() == "the operator's edit after the crash\n"
    now, old = tree(repo), dict(ws.old.files)
    now.pop("app.py"), old.pop("app.py")
    assert now == old  # everything else is back, byte for byte
    assert ws.head() == ws.old.head and not (repo / ".git/index.lock").exists()
    assert " M app.py" in git(repo, "status", "--porcelain").splitlines()


def test_a_file_the_operator_makes_during_the_apply_stops_it_and_is_kept(
    repo: Path, tmp_path: Path, data_dir: Path
) -> None:
    """Half-way through the switch the operator saves a file where the task is about to
    put one. The apply stops there, undoes what it did, and keeps their file."""
    ws = Workspace(repo, tmp_path, COMMANDS, is_git=True)
    proc = spawn(*run_args(repo, tmp_path), crashpoint="apply:switching")
    stop_at(proc)
    assert not (repo / "pkg/sub/f9.txt").exists()  # the last of the task's files, not yet
    (repo / "pkg/sub/f9.txt").write_text("the operator's own f9\n")
    os.kill(proc.pid, signal.SIGCONT)
    proc.communicate(timeout=120)
    assert proc.returncode == 1
    rec = record(data_dir, task_id_of(data_dir))
    assert rec["state"] == "failed" and "applied" not in rec["options"]
    assert rec["error"].startswith("apply stopped: pkg/sub/f9.txt (made by you) meanwhile;")
    assert "undone: your workspace is as it was" in rec["error"]
    now = tree(repo)
    assert now.pop("pkg/sub/f9.txt")[0] == "file"
    assert (repo / "pkg/sub/f9.txt").read_text() == "the operator's own f9\n"
    assert now == ws.old.files and ws.head() == ws.old.head
    assert not (repo / ".git/index.lock").exists() and journals(data_dir) == []


BIG = ["mkdir -p gen && cd gen && seq 1 2000 | sed 's/.*/echo & > f&.txt/' | sh",
       "printf 'changed\\n' > app.py && rm README.md"]  # fmt: skip


def journal_phase(data_dir: Path) -> str:
    for path in (data_dir / "journal").glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            return str(json.loads(path.read_text()).get("phase", ""))
    return ""


@pytest.mark.parametrize(
    ("how", "when"),
    [("kill-group", "switching"), ("kill-pid", "switching"), ("kill-pid", "applying"),
     ("int-group", "applying")],
)  # fmt: skip
def test_a_2000_file_apply_killed_mid_way(
    how: str, when: str, repo: Path, tmp_path: Path, data_dir: Path
) -> None:
    """No crash point: the real thing, killed once it is applying (after a random moment),
    or once its journal says it is switching files."""
    ws = Workspace(repo, tmp_path, BIG, is_git=True)
    turns = [{"tool_calls": [{"name": "execute_bash", "input": {"command": c}}]} for c in BIG]
    big = write_script(tmp_path / "big.json", [{"match": ".", "turns": turns}])
    proc = spawn("run", "many files", "--workspace", str(repo), "--approve", "auto", "--model",
                 big, "--json")  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"state": "applying"' in line:
            break
    else:
        raise AssertionError(f"never applied: {proc.communicate()}")
    if when == "switching":
        deadline = time.monotonic() + 120
        while journal_phase(data_dir) != "switching" and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)
    else:
        time.sleep(random.Random(os.getpid()).uniform(0.0, 0.3))
    code = deliver(proc, how)
    task_id = task_id_of(data_dir)
    next_start()
    assert journals(data_dir) == []
    side = ws.which()
    check_apply_record(ws, side, record(data_dir, task_id))
    print(f"\nBIG {how} at {when}: exit {code}, workspace all-{side}")
    rollback_after(ws, data_dir, task_id, side)
