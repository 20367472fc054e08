"""Rollback end to end: shell-made edits checkpointed and restored byte for byte, an applied
task undone without losing the operator's own work, an unapplied task discarded."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent import events as ev
from agent.errors import CockpitError, UsageError
from agent.procs import group_alive
from tests.conftest import cli, git, pending_for, write_script

# Shell edits of every kind: new, appended, binary, executable, deleted, renamed, symlinked,
# nested folders created and removed.
STEPS = [
    "printf 'one\\n' > a.txt && mkdir -p d/e && printf '\\000\\001\\002bin' > d/e/b.bin"
    " && chmod +x a.txt",
    "rm README.md && printf 'two\\n' >> a.txt && seq 1 3000 > big.txt && ln -s a.txt link.txt",
    "rm -r d && printf 'three\\n' > a.txt && mv app.py main.py && chmod -x a.txt",
]


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """Every file under root except git's own: path -> (kind+mode, sha256 or link target)."""
    out: dict[str, tuple[str, str]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            path = Path(folder, name)
            key = str(path.relative_to(root))
            if key == ".git":  # a worktree's .git file
                continue
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                out[key] = ("link", os.readlink(path))
            else:
                kind = "exec" if info.st_mode & stat.S_IXUSR else "file"
                out[key] = (kind, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def expected_after(repo: Path, tmp_path: Path, steps: int) -> dict[str, tuple[str, str]]:
    """Replay the first `steps` commands on a plain copy of the project: the ground truth."""
    copy = tmp_path / f"replay-{steps}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(".git"), symlinks=True)
    for command in STEPS[:steps]:
        subprocess.run(["bash", "-c", command], cwd=copy, check=True)
    return tree(copy)


def shell_script(tmp_path: Path) -> str:
    turns = [{"tool_calls": [{"name": "execute_bash", "input": {"command": c}}]} for c in STEPS]
    return write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])


async def test_rollback_to_each_step_is_byte_identical(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    engine = await engine_factory()
    task_id = await engine.submit("shell edits", repo, model=shell_script(tmp_path), apply=False)
    task = await engine.wait(task_id)
    assert task["state"] == ev.SUCCEEDED, task["error"]
    worktree = Path(task["worktree"])
    final = tree(worktree)
    assert final == expected_after(repo, tmp_path, 3)
    steps = {e["step"] for e in await engine.events(task_id) if e["type"] == ev.CHECKPOINT}
    assert {1, 2, 3} <= steps  # shell-made changes were checkpointed after each step

    for step in (1, 0, 2, 3, 1):  # backwards, forwards, any order
        result = await engine.rollback(task_id, to_step=step)
        assert f"after step {step}" in result["message"]
        assert tree(worktree) == expected_after(repo, tmp_path, step), f"step {step}"
    rollbacks = [e for e in await engine.events(task_id) if e["type"] == ev.ROLLBACK]
    assert [e["to_step"] for e in rollbacks] == [1, 0, 2, 3, 1]
    assert (repo / "app.py").exists() and not (repo / "a.txt").exists()  # operator untouched

    with pytest.raises(UsageError, match="no checkpoint at or before step -1"):
        await engine.rollback(task_id, to_step=-1)


async def test_rollback_to_step_from_the_command_line(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    engine = await engine_factory()
    task_id = await engine.submit("shell edits", repo, model=shell_script(tmp_path), apply=False)
    worktree = Path((await engine.wait(task_id))["worktree"])
    await engine.close()
    result = cli("rollback", task_id, "--to-step", "2")
    assert result.returncode == 0, result.stderr
    assert "after step 2" in result.stdout
    assert tree(worktree) == expected_after(repo, tmp_path, 2)


async def test_apply_then_rollback_restores_pre_apply_state_and_keeps_operator_work(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    # The operator has uncommitted work: an edited tracked file and an untracked one.
    (repo / "README.md").write_text("# demo project\noperator's unsaved note\n")
    (repo / "scratch.txt").write_text("operator scratch\n")
    before, head = tree(repo), git(repo, "rev-parse", "HEAD").strip()
    status = git(repo, "status", "--porcelain")

    turns = [
        {"tool_calls": [{"name": "execute_bash", "input": {"command": STEPS[0]}}]},
        {
            "tool_calls": [
                {"name": "execute_bash", "input": {"command": "printf 'x = 1\\n' >> app.py"}}
            ]
        },
    ]
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    engine = await engine_factory()
    task_id = await engine.submit("shell edits", repo, model=model, approve="auto")
    task = await engine.wait(task_id)
    assert task["state"] == ev.SUCCEEDED, task["error"]
    assert (repo / "app.py").read_text().endswith("x = 1\n") and (repo / "d/e/b.bin").exists()
    assert (repo / "README.md").read_text().endswith("operator's unsaved note\n")

    result = await engine.rollback(task_id)
    assert result["message"].startswith("restored the pre-apply state")
    assert tree(repo) == before  # byte for byte, the operator's unsaved work included
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert git(repo, "status", "--porcelain") == status
    task = await engine.get(task_id)
    assert task["state"] == ev.ROLLED_BACK
    (event,) = [e for e in await engine.events(task_id) if e["type"] == ev.ROLLBACK]
    assert event["applied"] is True and event["message"] == result["message"]
    with pytest.raises(UsageError, match="already rolled back"):
        await engine.rollback(task_id)


async def applied_new_file(repo: Path, tmp_path: Path, engine_factory: Any) -> tuple[Any, str]:
    """A task whose shell command made new.txt, applied to the operator's checkout."""
    turns = [{"tool_calls": [{"name": "execute_bash", "input": {"command": "echo new > new.txt"}}]}]
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    engine = await engine_factory()
    task_id = await engine.submit("add a file", repo, model=model, approve="auto")
    assert (await engine.wait(task_id))["state"] == ev.SUCCEEDED
    return engine, task_id


async def test_rollback_after_newer_commit_reverts_and_refuses_to_clobber_edits(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    engine, task_id = await applied_new_file(repo, tmp_path, engine_factory)
    assert (repo / "new.txt").read_text() == "new\n"

    # The operator edits the task's file: rollback must refuse rather than lose that edit.
    (repo / "new.txt").write_text("operator edit\n")
    with pytest.raises(CockpitError):
        await engine.rollback(task_id)
    assert (repo / "new.txt").read_text() == "operator edit\n"
    assert (await engine.get(task_id))["state"] == ev.SUCCEEDED
    (repo / "new.txt").write_text("new\n")

    # The operator commits on top: rollback becomes a revert commit, history kept.
    (repo / "other.txt").write_text("later work\n")
    git(repo, "add", "other.txt")
    git(repo, "commit", "-q", "-m", "operator commit")
    result = await engine.rollback(task_id)
    assert not (repo / "new.txt").exists() and (repo / "other.txt").exists()
    log = git(repo, "log", "--format=%s").splitlines()
    assert log[1] == "operator commit" and log[0].lower().startswith("revert")
    # The message says what really happened: a revert commit, named, not a restore.
    revert = git(repo, "rev-parse", "HEAD").strip()
    assert f"revert commit {revert[:10]}" in result["message"]
    assert "pre-apply state" not in result["message"]
    assert git(repo, "status", "--porcelain") == ""


async def test_rollback_before_apply_discards_worktree_and_branch(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    before = tree(repo)
    engine = await engine_factory()
    task_id = await engine.submit("shell edits", repo, model=shell_script(tmp_path), apply=False)
    task = await engine.wait(task_id)
    worktree, branch = Path(task["worktree"]), task["branch"]
    assert worktree.is_dir() and branch == f"livhana/{task_id}"
    assert branch in git(repo, "branch", "--list", branch)

    result = await engine.rollback(task_id)
    assert "discarded" in result["message"]
    assert not worktree.exists()
    assert git(repo, "branch", "--list", branch) == ""
    assert str(worktree) not in git(repo, "worktree", "list")
    assert tree(repo) == before and git(repo, "status", "--porcelain") == ""
    assert (await engine.get(task_id))["state"] == ev.ROLLED_BACK
    with pytest.raises(UsageError, match="rolled back already"):
        await engine.rollback(task_id, to_step=1)


async def test_rollback_of_a_running_task_stops_it_and_discards_its_work(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    turns = [
        {"tool_calls": [{"name": "execute_bash", "input": {"command": "echo w > w.txt"}}]},
        {"tool_calls": [{"name": "execute_bash", "input": {"command": "sleep 1000.4242 & wait"}}]},
    ]
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    engine = await engine_factory()
    task_id = await engine.submit("sleepy", repo, model=model)
    for _ in range(500):
        held = engine.live(task_id)
        if held is not None and held.process_groups and held.steps == 2:
            break
        await asyncio.sleep(0.01)
    pgids = held.process_groups
    worktree = Path((await engine.get(task_id))["worktree"])
    result = await asyncio.wait_for(engine.rollback(task_id), 5)
    assert "discarded" in result["message"]
    task = await engine.get(task_id)
    assert task["state"] == ev.ROLLED_BACK
    assert not worktree.exists() and git(repo, "branch", "--list", f"livhana/{task_id}") == ""
    assert not any(group_alive(g) for g in pgids)
    states = [e["state"] for e in await engine.events(task_id) if e["type"] == ev.STATUS]
    assert states[-2:] == ["cancelled", "rolled_back"]


async def test_parallel_tasks_on_one_repo_each_get_a_worktree_and_roll_back(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    """Tasks started together on one repository (the usual case: several tasks queued on
    the same project) must not trip over each other creating or removing worktrees."""
    config.engine.max_concurrent = 10
    engine = await engine_factory()
    for round_ in range(2):
        scripts = []
        for i in range(10):
            command = f"echo {round_}-{i} > out{i}.txt"
            turn = {"tool_calls": [{"name": "execute_bash", "input": {"command": command}}]}
            scripts.append({"match": f"file number {i} now", "turns": [turn]})
        model = write_script(tmp_path / f"p{round_}.json", scripts)
        ids = [
            await engine.submit(f"write file number {i} now", repo, model=model, apply=False)
            for i in range(10)
        ]
        tasks = await asyncio.gather(*(engine.wait(t) for t in ids))
        assert [t["state"] for t in tasks] == [ev.SUCCEEDED] * 10, [t["error"] for t in tasks]
        assert [t["changes"] for t in tasks] == [[f"out{i}.txt"] for i in range(10)]
        await asyncio.gather(*(engine.rollback(t) for t in ids))
        assert [(await engine.get(t))["state"] for t in ids] == [ev.ROLLED_BACK] * 10
        assert git(repo, "branch", "--list", "livhana/*") == ""
        assert git(repo, "worktree", "list").count("\n") == 1  # the operator's checkout only


def write_steps_script(tmp_path: Path) -> str:
    turns = [
        {"tool_calls": [{"name": "write_file", "input": {"path": "one.txt", "content": "1\n"}}]},
        {"tool_calls": [{"name": "write_file", "input": {"path": "two.txt", "content": "2\n"}}]},
    ]
    return write_script(tmp_path / "two-steps.json", [{"match": ".", "turns": turns}])


async def pending_apply(engine: Any, task_id: str) -> list[dict[str, Any]]:
    return [r for r in await pending_for(engine, task_id) if r["kind"] == "apply"]


@pytest.mark.parametrize("kind", ["git", "plain"])
async def test_rollback_to_step_while_awaiting_apply_changes_what_lands(
    kind: str, repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    """The apply merges the task branch (a plain folder: the task's copy): a step rollback
    must change what lands, and the operator must be shown that before approving."""
    from tests.conftest import until

    ws = repo
    if kind == "plain":
        ws = tmp_path / "plain"
        shutil.copytree(repo, ws, ignore=shutil.ignore_patterns(".git"))
    engine = await engine_factory()
    task_id = await engine.submit("two files", ws, model=write_steps_script(tmp_path))
    (request,) = await until(lambda: pending_apply(engine, task_id))
    assert request["detail"]["files"] == ["one.txt", "two.txt"]

    result = await engine.rollback(task_id, to_step=1)
    assert "after step 1" in result["message"] and "one.txt" in result["message"]
    (request,) = await pending_apply(engine, task_id)
    assert request["detail"]["files"] == ["one.txt"]  # the card shows what will land now
    assert "two.txt" not in request["detail"]["diff"] and "one.txt" in request["detail"]["diff"]
    shown = [e for e in await engine.events(task_id) if e["type"] == ev.APPROVAL_REQUESTED]
    assert shown[-1]["refreshed"] is True and shown[-1]["detail"]["files"] == ["one.txt"]

    assert await engine.decide_task(task_id, True) == 1
    task = await engine.wait(task_id)
    assert task["state"] == ev.SUCCEEDED, task["error"]
    assert (ws / "one.txt").read_text() == "1\n"
    assert not (ws / "two.txt").exists()  # step 2 was rolled back: it must not land
    assert task["changes"] == ["one.txt"]  # the record lists what landed, not what was undone
    (done,) = [e for e in await engine.events(task_id) if e["type"] == ev.COMPLETE]
    assert done["changes"] == ["one.txt"]
    if kind == "git":
        # The branch keeps step 2 in its history: the step rollback is a commit, not a reset.
        log = git(repo, "log", "--format=%s", f"livhana/{task_id}").splitlines()
        assert log[0].startswith("livhana: back to step 1") and len(log) == 3


async def test_step_rollback_of_a_rolled_back_task_says_so(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    engine = await engine_factory()
    model = write_steps_script(tmp_path)
    task_id = await engine.submit("two files", repo, model=model, approve="auto")
    assert (await engine.wait(task_id))["state"] == ev.SUCCEEDED
    await engine.rollback(task_id)
    with pytest.raises(UsageError, match="rolled back already"):
        await engine.rollback(task_id, to_step=1)


async def test_a_refused_rollback_exits_2_and_changes_nothing(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    engine, task_id = await applied_new_file(repo, tmp_path, engine_factory)
    await engine.close()
    (repo / "new.txt").write_text("operator edit\n")
    result = cli("rollback", task_id)
    assert result.returncode == 2, result.stderr  # documented: the operator must act first
    assert "rollback refused" in result.stderr and "new.txt" in result.stderr
    assert (repo / "new.txt").read_text() == "operator edit\n"
