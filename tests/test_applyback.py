"""Apply a task branch to the operator's checkout and roll it back: real git, real repos."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent.applyback import ApplyError, apply, apply_plain, rollback_applied, rollback_plain
from tests.test_checkpoints import GIT_ENV, tree_state


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True)
    if check and proc.returncode:
        raise AssertionError(f"git {args}: {proc.stderr}")
    return proc.stdout.strip()


def write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "op"
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        write(root / name, f"{name} line 1\n{name} line 2\n")
    git(tmp_path, "init", "-q", "-b", "main", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")
    return root


def make_task(repo: Path, tmp_path: Path, task_id: str = "t1") -> tuple[str, str]:
    """A task worktree that edits a.txt, adds new/file.txt, deletes c.txt; committed."""
    base = git(repo, "rev-parse", "HEAD")
    wt = tmp_path / f"wt-{task_id}"
    git(repo, "worktree", "add", "-q", str(wt), "-b", f"livhana/{task_id}", base)
    write(wt / "a.txt", "a.txt line 1\nTASK EDIT\n")
    write(wt / "new/file.txt", b"\x00binary\xff")
    (wt / "c.txt").unlink()
    git(wt, "add", "-A")
    git(wt, "commit", "-qm", "task work")
    return f"livhana/{task_id}", base


def snapshot(repo: Path) -> tuple[dict, str, str]:
    return tree_state(repo), git(repo, "status", "--porcelain"), git(repo, "diff", "--cached")


async def test_apply_then_rollback_keeps_operator_work(repo: Path, tmp_path: Path) -> None:
    branch, base = make_task(repo, tmp_path)
    write(repo / "b.txt", "operator unstaged edit\n")
    write(repo / "d.txt", "operator staged edit\n")
    git(repo, "add", "d.txt")
    write(repo / "notes.tmp", "operator untracked\n")
    before = snapshot(repo)

    record = await apply(repo, branch, base, title="Fix the thing", task_id="t1")
    assert record["pre_apply_head"] == base and record["branch"] == "main"
    assert git(repo, "log", "-1", "--format=%s") == "livhana: Fix the thing (task t1)"
    assert git(repo, "rev-parse", "HEAD") == record["applied_commit"]
    assert sorted(record["files"]) == ["a.txt", "c.txt", "new/file.txt"]
    assert (repo / "a.txt").read_text().endswith("TASK EDIT\n") and not (repo / "c.txt").exists()
    assert (repo / "new/file.txt").read_bytes() == b"\x00binary\xff"
    assert (repo / "b.txt").read_text() == "operator unstaged edit\n"
    assert git(repo, "diff", "--cached", "--name-only") == "d.txt"  # still staged
    assert git(repo, "status", "--porcelain", "--", "a.txt", "c.txt", "new") == ""

    result = await rollback_applied(repo, record)
    assert result["action"] == "reset"
    assert git(repo, "rev-parse", "HEAD") == base
    assert snapshot(repo) == before  # byte-identical, staging included
    assert record["applied_commit"] not in git(repo, "log", "--format=%H")


async def test_apply_refuses_when_operator_changed_a_task_file(repo: Path, tmp_path: Path) -> None:
    branch, base = make_task(repo, tmp_path)
    for setup in (
        lambda: write(repo / "a.txt", "operator edit\n"),  # unstaged
        lambda: (write(repo / "c.txt", "staged\n"), git(repo, "add", "c.txt")),  # staged
        lambda: write(repo / "new/file.txt", "operator's own new file\n"),  # untracked
    ):
        setup()
        before = snapshot(repo)
        with pytest.raises(ApplyError, match="uncommitted changes to .*commit or stash") as err:
            await apply(repo, branch, base)
        assert "\n" not in str(err.value)
        assert snapshot(repo) == before and git(repo, "rev-parse", "HEAD") == base
        git(repo, "reset", "-q", "--hard")
        git(repo, "clean", "-qfd")


async def test_rollback_after_newer_commit_reverts(repo: Path, tmp_path: Path) -> None:
    branch, base = make_task(repo, tmp_path)
    record = await apply(repo, branch, base, title="t")
    write(repo / "d.txt", "operator's later commit\n")
    git(repo, "commit", "-qam", "later work")
    write(repo / "b.txt", "uncommitted operator edit\n")
    later = git(repo, "rev-parse", "HEAD")

    result = await rollback_applied(repo, record)
    assert result["action"] == "revert" and result["reason"] == "newer commits on top"
    assert git(repo, "rev-parse", "HEAD~1") == later  # history kept, a revert on top
    assert git(repo, "log", "-1", "--format=%s").startswith('Revert "livhana: t')
    assert (repo / "a.txt").read_text() == "a.txt line 1\na.txt line 2\n"
    assert (repo / "c.txt").exists() and not (repo / "new").exists()
    assert (repo / "d.txt").read_text() == "operator's later commit\n"
    assert (repo / "b.txt").read_text() == "uncommitted operator edit\n"


async def test_pushed_commit_is_reverted_never_reset(repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    branch, base = make_task(repo, tmp_path)
    record = await apply(repo, branch, base)
    git(repo, "push", "-q", "-u", "origin", "main")
    result = await rollback_applied(repo, record)
    assert result["action"] == "revert" and result["reason"] == "pushed"
    assert git(repo, "rev-parse", "HEAD~1") == record["applied_commit"]
    assert git(repo, "branch", "-r", "--contains", record["applied_commit"]) == "origin/main"
    assert (repo / "c.txt").exists()


async def test_revert_conflict_aborts_cleanly(repo: Path, tmp_path: Path) -> None:
    branch, base = make_task(repo, tmp_path)
    record = await apply(repo, branch, base)
    write(repo / "a.txt", "a.txt line 1\nOPERATOR REWROTE THE TASK EDIT\n")
    git(repo, "commit", "-qam", "operator builds on the task")
    write(repo / "b.txt", "wip\n")
    before, head = snapshot(repo), git(repo, "rev-parse", "HEAD")
    with pytest.raises(ApplyError, match="conflicts with later commits"):
        await rollback_applied(repo, record)
    assert snapshot(repo) == before and git(repo, "rev-parse", "HEAD") == head
    assert not (repo / ".git/REVERT_HEAD").exists()


async def test_rollback_refuses_when_operator_edited_task_file(repo: Path, tmp_path: Path) -> None:
    branch, base = make_task(repo, tmp_path)
    record = await apply(repo, branch, base)
    write(repo / "a.txt", "operator tweaks the applied result\n")
    with pytest.raises(ApplyError, match="you changed a.txt since the task was applied"):
        await rollback_applied(repo, record)
    assert (repo / "a.txt").read_text() == "operator tweaks the applied result\n"
    assert git(repo, "rev-parse", "HEAD") == record["applied_commit"]


async def test_apply_merges_over_newer_operator_commits(repo: Path, tmp_path: Path) -> None:
    branch, base = make_task(repo, tmp_path)
    write(repo / "d.txt", "operator committed meanwhile\n")
    git(repo, "commit", "-qam", "meanwhile")
    record = await apply(repo, branch, base)
    assert (repo / "d.txt").read_text() == "operator committed meanwhile\n"
    assert (repo / "a.txt").read_text().endswith("TASK EDIT\n")
    assert (await rollback_applied(repo, record))["action"] == "reset"
    assert git(repo, "status", "--porcelain") == ""

    write(repo / "a.txt", "a.txt line 1\nOPERATOR\n")
    git(repo, "commit", "-qam", "clash")
    with pytest.raises(ApplyError, match="conflict with newer commits in a.txt"):
        await apply(repo, branch, base)


async def test_nothing_to_apply_and_bad_inputs(repo: Path, tmp_path: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "branch", "livhana/empty")
    record = await apply(repo, "livhana/empty", base)
    assert record["applied_commit"] is None
    assert (await rollback_applied(repo, record))["action"] == "none"
    with pytest.raises(ApplyError, match="unknown task branch"):
        await apply(repo, "livhana/missing", base)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ApplyError, match="not a git work tree"):
        await apply(tmp_path / "plain", "x", base)


async def test_plain_workspace_apply_and_rollback(tmp_path: Path) -> None:
    ws, shadow = tmp_path / "plain", tmp_path / "shadow"
    write(ws / "a.txt", "original a\n")
    write(ws / "gone.txt", "will be deleted\n")
    write(ws / "other.txt", "operator file\n")
    before = tree_state(ws)
    files = {"a.txt": b"task a\n", "gone.txt": None, "sub/new.bin": b"\x00\x01"}
    record = await apply_plain(ws, files, shadow, label="task t9")
    assert (ws / "a.txt").read_bytes() == b"task a\n" and not (ws / "gone.txt").exists()
    assert (ws / "sub/new.bin").read_bytes() == b"\x00\x01"

    write(ws / "other.txt", "operator edit after apply\n")
    result = await rollback_applied(ws, record)
    assert result["action"] == "restore"
    after = tree_state(ws)
    assert after.pop("other.txt") != before.pop("other.txt")  # operator's edit survived
    assert after == before
    assert (ws / "other.txt").read_text() == "operator edit after apply\n"


async def test_plain_guards(tmp_path: Path) -> None:
    ws, shadow = tmp_path / "plain", tmp_path / "shadow"
    write(ws / "a.txt", "operator changed this meanwhile\n")
    with pytest.raises(ApplyError, match="a.txt changed since the task started"):
        await apply_plain(ws, {"a.txt": b"task\n"}, shadow, expected={"a.txt": b"original\n"})
    assert (ws / "a.txt").read_text() == "operator changed this meanwhile\n"
    for bad in ("../escape.txt", "/etc/passwd", ".git/config"):
        with pytest.raises(ApplyError, match="apply refused"):
            await apply_plain(ws, {bad: b"x"}, shadow)

    record = await apply_plain(ws, {"a.txt": b"task\n"}, shadow)
    write(ws / "a.txt", "operator edits the applied file\n")
    with pytest.raises(ApplyError, match="you changed a.txt since the task was applied"):
        await rollback_plain(ws, record)
    assert (ws / "a.txt").read_text() == "operator edits the applied file\n"
