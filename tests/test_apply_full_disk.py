"""A full disk during apply: the file system of the workspace (or of the journal's staging
area) runs out of space mid-way. Nothing may be left half-written: the workspace ends
exactly as it was, no lock or scratch file is left, and the task fails saying why.

A full disk is a real one: a size-limited tmpfs mounted for the test (this needs root, as the
test machines and CI containers run; without it the test says so and skips)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import cli, git
from tests.crashkit import Workspace, journals, record
from tests.test_apply_crash import task_id_of
from tests.test_apply_in_the_way import shell_task

BIG = "yes livhana | head -c 3000000 > big.bin && echo small > small.txt && printf 'v2\\n' > app.py"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[Path, str], Path]]:
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a size-limited tmpfs here ({done.stderr.strip()})")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def project(path: Path) -> Path:
    (path / "app.py").write_text("v1\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "op@example.com")
    git(path, "config", "user.name", "Operator")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def run_big(ws: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    model = shell_task(tmp_path, BIG)
    return cli("run", "big file", "--workspace", str(ws), "--approve", "auto", "--model", model,
               "--json")  # fmt: skip


def assert_failed_cleanly(ws: Workspace, data_dir: Path, result: subprocess.CompletedProcess[str],
                          undone: bool) -> None:  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr
    assert ws.which() == "old"  # byte for byte, index and HEAD included; no lock left
    leftovers = [p for p in ws.path.rglob("*livhana*") if ".git" not in p.parts]
    assert leftovers == []
    task_id = task_id_of(data_dir)
    rec = record(data_dir, task_id)
    assert rec["state"] == "failed" and "applied" not in rec["options"]
    assert "no space left on device" in rec["error"] and "\n" not in rec["error"]
    assert ("undone: your workspace is as it was" if undone else "nothing was changed") in rec[
        "error"
    ]
    (complete,) = [e for e in rec["events"] if e["type"] == "complete"]
    assert complete["success"] is False
    assert journals(data_dir) == []
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["type"] == "complete" and events[-1]["success"] is False


def test_workspace_disk_full_mid_apply_is_undone(
    small_fs: Callable[[Path, str], Path], tmp_path: Path
) -> None:
    """The workspace's file system has 2 MB; the task's 3 MB file (zeros: its git object
    is tiny) fills it half-way through the apply."""
    repo = project(small_fs(tmp_path / "small", "2m"))
    ws = Workspace(repo, tmp_path, [BIG], is_git=True)
    result = run_big(repo, tmp_path)
    assert_failed_cleanly(ws, tmp_path / "data", result, undone=True)


def test_staging_disk_full_changes_nothing(
    small_fs: Callable[[Path, str], Path], repo: Path, tmp_path: Path
) -> None:
    """The journal's staging area (the data dir) is what fills up: the apply stops before
    anything in the workspace changed."""
    small_fs(tmp_path / "data" / "journal", "1m")
    ws = Workspace(repo, tmp_path, [BIG], is_git=True)
    result = run_big(repo, tmp_path)
    assert_failed_cleanly(ws, tmp_path / "data", result, undone=False)
