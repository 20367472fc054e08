"""Nothing the operator has that git does not track is ever deleted or overwritten by apply
or rollback: untracked and ignored files, folders and symlinks standing where the task
writes, under it, or as a parent of it. A conflict refuses with one line naming the paths,
and changes nothing. Through the real command line, real git, scripted model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import cli, git, write_script
from tests.test_rollback_flow import tree


def shell_task(tmp_path: Path, *commands: str) -> str:
    turns = [{"tool_calls": [{"name": "execute_bash", "input": {"command": c}}]} for c in commands]
    return write_script(tmp_path / "task.json", [{"match": ".", "turns": turns}])


def run(repo: Path, model: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("run", "the task", "--workspace", str(repo), "--approve", "auto", "--model", model,
               *extra)  # fmt: skip


def last_task() -> dict[str, Any]:
    result = cli("history", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


def operator_state(repo: Path) -> tuple[dict[str, tuple[str, str]], str, str]:
    """Every file (tracked or not, ignored included), HEAD, and git's view of them."""
    status = git(repo, "status", "--porcelain", "--ignored", "--untracked-files=all")
    return tree(repo), git(repo, "rev-parse", "HEAD"), status


def test_apply_never_destroys_untracked_or_ignored_files_the_issue_case(
    repo: Path, tmp_path: Path
) -> None:
    (repo / ".gitignore").write_text("localdata/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore localdata")
    (repo / "localdata").mkdir()
    (repo / "localdata/important.db").write_bytes(b"\x00operator database\xff")
    (repo / "newmodule").mkdir()
    (repo / "newmodule/core.py").write_text("operator's untracked module\n")
    (repo / "notes").write_text("operator's untracked notes\n")
    before = operator_state(repo)

    model = shell_task(
        tmp_path, "echo x > localdata; echo y > newmodule; mkdir -p notes && echo z > notes/todo.md"
    )
    result = run(repo, model)
    assert result.returncode == 1, result.stdout + result.stderr
    assert operator_state(repo) == before  # all three survive, byte for byte; HEAD unchanged
    task = last_task()
    assert task["state"] == "failed" and "applied" not in task["options"]
    error = task["error"]
    assert error.startswith("apply refused:") and "\n" not in error
    for path in ("localdata/", "newmodule/", "notes"):
        assert path in error
    assert "nothing was changed" in error
    # The work is not lost with the refusal: the error names the branch that keeps it.
    branch = error.split("stays on branch ", 1)[1].split()[0]
    assert f"git merge {branch}" in error
    assert "notes/todo.md" in git(repo, "show", "--stat", "--format=", branch)

    # Rollback says what is true: the workspace was never changed, the task stays failed.
    rolled = cli("rollback", task["id"])
    assert rolled.returncode == 0, rolled.stderr
    assert "it stays failed, and nothing of it is in the workspace" in rolled.stdout
    assert "uncommitted work is untouched" not in rolled.stdout
    assert operator_state(repo) == before
    assert last_task()["state"] == "failed"


def test_apply_refuses_to_replace_a_folder_holding_ignored_files(
    repo: Path, tmp_path: Path
) -> None:
    """The task turns the tracked folder build/ into a file: the operator's ignored
    build/cache.o would go with it."""
    (repo / ".gitignore").write_text("*.o\n")
    (repo / "build").mkdir()
    (repo / "build/keep.txt").write_text("tracked\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "build dir")
    (repo / "build/cache.o").write_bytes(b"operator's build cache")
    before = operator_state(repo)

    result = run(repo, shell_task(tmp_path, "rm -r build && echo now-a-file > build"))
    assert result.returncode == 1
    assert operator_state(repo) == before
    assert "build/ (your folder" in last_task()["error"]


def test_deleting_a_tracked_file_keeps_ignored_files_beside_it(repo: Path, tmp_path: Path) -> None:
    (repo / ".gitignore").write_text("*.o\n")
    (repo / "build").mkdir()
    (repo / "build/keep.txt").write_text("tracked\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "build dir")
    (repo / "build/cache.o").write_bytes(b"operator's build cache")

    result = run(repo, shell_task(tmp_path, "rm build/keep.txt"))
    assert result.returncode == 0, result.stdout
    assert not (repo / "build/keep.txt").exists()
    assert (repo / "build/cache.o").read_bytes() == b"operator's build cache"
    rolled = cli("rollback", last_task()["id"])
    assert rolled.returncode == 0, rolled.stderr
    assert (repo / "build/keep.txt").read_text() == "tracked\n"
    assert (repo / "build/cache.o").read_bytes() == b"operator's build cache"


def test_rollback_never_destroys_what_the_operator_made_since_the_apply(
    repo: Path, tmp_path: Path
) -> None:
    """After the apply, the operator puts their own things where the rollback would have to
    write: a file where the task removed a folder, a file inside a folder the rollback turns
    back into a file. The rollback refuses, naming them, and changes nothing."""
    (repo / "docs").mkdir()
    (repo / "docs/guide.md").write_text("the guide\n")
    (repo / "cfg").write_text("flat config\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "docs and cfg")
    model = shell_task(tmp_path, "rm -r docs && rm cfg && mkdir cfg && echo a=1 > cfg/a.ini")
    assert run(repo, model).returncode == 0
    task = last_task()
    assert task["state"] == "succeeded" and (repo / "cfg/a.ini").exists()

    (repo / "docs").write_text("operator's new file named docs\n")
    (repo / "cfg/local.ini").write_text("operator's local settings\n")
    before = operator_state(repo)
    rolled = cli("rollback", task["id"])
    assert rolled.returncode == 2, rolled.stdout + rolled.stderr
    line = rolled.stderr.strip()
    assert line.startswith("livhana-cockpit: rollback refused:") and "\n" not in line
    assert "docs (your file" in line and "cfg/ (your folder" in line
    assert operator_state(repo) == before
    assert last_task()["state"] == "succeeded"

    # Moved aside, the rollback goes through, and says only what is true.
    (repo / "docs").unlink()
    (repo / "cfg/local.ini").unlink()
    rolled = cli("rollback", task["id"])
    assert rolled.returncode == 0, rolled.stderr
    assert (repo / "docs/guide.md").read_text() == "the guide\n"
    assert (repo / "cfg").read_text() == "flat config\n"
    assert git(repo, "status", "--porcelain") == ""


def test_apply_refuses_files_git_is_told_not_to_look_at(repo: Path, tmp_path: Path) -> None:
    """assume-unchanged and skip-worktree make `git status` hide the operator's edits: the
    apply must not take that silence for "unchanged" and overwrite them."""
    git(repo, "update-index", "--assume-unchanged", "app.py")
    (repo / "app.py").write_text("the operator's local tweak, hidden from git status\n")
    git(repo, "update-index", "--skip-worktree", "README.md")
    (repo / "README.md").write_text("the operator's local readme\n")
    before = operator_state(repo)
    model = shell_task(tmp_path, "echo task > app.py && echo task > README.md")
    assert run(repo, model).returncode == 1
    assert operator_state(repo) == before
    error = last_task()["error"]
    assert error.startswith("apply refused: your index tells git not to look at README.md, app.py")
