"""`gc`: what ended tasks left (worktree, branch, shadow checkpoints) is pruned by the [gc]
policy, through the real CLI: a dry run lists and removes nothing; a real run removes
exactly the leftovers of tasks ended past keep_days, keeps what an applied task's rollback
needs (the rollback still works after), what the operator made, and a live task's."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from agent import events as ev
from tests.conftest import cli, git, pending_for, until, write_script

DAY = 86_400


def script(tmp_path: Path, name: str = "notes.txt") -> str:
    turns = [{"tool_calls": [{"name": "write_file",
                              "input": {"path": name, "content": "task notes\n"}}]}]
    return write_script(tmp_path / f"{name}.json", [{"match": ".", "turns": turns}])


async def ended_days_ago(engine: Any, task_id: str, days: float) -> None:
    await engine.store.update_task(task_id, finished_at=time.time() - days * DAY)


def leftovers(data: Path, repo: Path, task_id: str) -> dict[str, bool]:
    branch = git(repo, "branch", "--list", f"livhana/{task_id}").strip()
    return {"worktree": (data / "worktrees" / task_id).exists(), "branch": bool(branch),
            "checkpoints": (data / "shadow" / task_id).exists()}


ALL = {"worktree": True, "branch": True, "checkpoints": True}
NONE = {"worktree": False, "branch": False, "checkpoints": False}


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "config.toml").write_text('[gc]\nkeep_days = 2\nauto = "off"\n')
    return data


async def test_gc_prunes_ended_tasks_past_the_policy_and_nothing_else(
    repo: Path, tmp_path: Path, policy: Path, engine_factory: Any
) -> None:
    from agent.config import load_config

    config = load_config(policy)
    engine = await engine_factory(cfg=config)
    model = script(tmp_path)
    old = await engine.submit("old, unapplied", repo, model=model, apply=False)
    applied = await engine.submit("old, applied", repo, model=model, approve="auto")
    recent = await engine.submit("recent", repo, model=model, apply=False)
    mine = await engine.submit("old, operator committed on it", repo, model=model, apply=False)
    edited = await engine.submit("old, operator edited its worktree", repo, model=model,
                                 apply=False)
    for task_id in (old, applied, recent, mine, edited):
        assert (await engine.wait(task_id))["state"] == ev.SUCCEEDED
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.txt").write_text("plain folder\n")
    plain_applied = await engine.submit("old, applied to a plain folder", plain, model=model,
                                        approve="auto")
    assert (await engine.wait(plain_applied))["state"] == ev.SUCCEEDED
    live = await engine.submit("live", repo, model=script(tmp_path, "live.txt"))  # waits
    await until(lambda: pending_for(engine, live), timeout=30)
    for task_id in (old, applied, mine, edited, plain_applied):
        await ended_days_ago(engine, task_id, 3)
    await ended_days_ago(engine, recent, 1)
    # The operator's own work: a commit on one task's branch, an edit in another's worktree.
    wt = policy / "worktrees" / mine
    git(wt, "-c", "user.name=Op", "-c", "user.email=op@example.com", "commit", "-q",
        "--allow-empty", "-m", "mine")
    later = time.time() + 60
    os.utime(policy / "worktrees" / edited / "notes.txt", (later, later))
    (applied_task, plain_task) = [await engine.get(t) for t in (applied, plain_applied)]
    assert applied_task["options"]["applied"]["kind"] == "git"
    needed = Path(plain_task["options"]["applied"]["shadow_dir"])
    assert needed == policy / "shadow" / plain_applied / "workspace" and needed.is_dir()

    everything = {t: leftovers(policy, repo, t) for t in (old, applied, recent, mine, edited, live)}
    assert all(v == ALL for v in everything.values()), everything

    dry = await asyncio.to_thread(cli, "gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove worktree of task {old}: {policy / 'worktrees' / old}" in dry.stdout
    assert f"would remove branch of task {applied}: livhana/{applied} in {repo}" in dry.stdout
    assert "dry run:" in dry.stdout and "nothing was removed" in dry.stdout
    assert {t: leftovers(policy, repo, t) for t in everything} == everything  # untouched

    report = json.loads((await asyncio.to_thread(cli, "gc", "--json")).stdout)
    removed = {(i["task_id"], i["what"]) for i in report["removed"]}
    assert removed == {(old, "worktree"), (old, "branch"), (old, "checkpoints"),
                       (applied, "worktree"), (applied, "branch"), (applied, "checkpoints"),
                       (plain_applied, "worktree"), (plain_applied, "checkpoints")}
    assert report["freed_bytes"] > 0 and not report["dry_run"] and report["keep_days"] == 2
    kept = {(i["task_id"], i["what"]): i["why"] for i in report["kept"]}
    assert kept[(mine, "branch")] == "its branch holds 1 commit(s) you made"
    assert kept[(edited, "worktree")].startswith("its worktree has notes.txt changed after")
    assert "rollback of applied task" in kept[(plain_applied, "checkpoints")]

    assert leftovers(policy, repo, old) == NONE and leftovers(policy, repo, applied) == NONE
    for task_id in (recent, mine, edited, live):
        assert leftovers(policy, repo, task_id) == ALL, task_id
    assert needed.is_dir()  # the plain apply's snapshots stay; the task's own shadow went
    assert sorted(p.name for p in (policy / "shadow" / plain_applied).iterdir()) == ["workspace"]
    assert not (policy / "worktrees" / plain_applied).exists()
    admin = Path(git(repo, "rev-parse", "--git-common-dir").strip())
    admin = admin if admin.is_absolute() else repo / admin
    assert sorted(p.name for p in (admin / "worktrees").iterdir()) == sorted(
        [recent, mine, edited, live])

    # What was kept is enough: both applied tasks roll back exactly.
    assert (repo / "notes.txt").exists() and (plain / "notes.txt").exists()
    await engine.rollback(applied)
    await engine.rollback(plain_applied)
    assert not (repo / "notes.txt").exists() and not (plain / "notes.txt").exists()
    assert (plain / "a.txt").read_text() == "plain folder\n"

    again = await asyncio.to_thread(cli, "gc")
    assert again.returncode == 0 and "nothing to remove" in again.stdout  # said once, done
    assert leftovers(policy, repo, live) == ALL  # a live task is never touched
    (request,) = await engine.store.approvals("pending", task_id=live)
    assert request["state"] == "pending"  # still asking, its branch whole
    assert git(repo, "show", f"livhana/{live}:live.txt") == "task notes\n"


async def test_gc_runs_on_its_own_at_a_calm_start(
    repo: Path, tmp_path: Path, engine_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent import prune
    from agent.config import load_config

    data = tmp_path / "data"
    engine = await engine_factory()
    task_id = await engine.submit("ended", repo, model=script(tmp_path), apply=False)
    await engine.wait(task_id)
    await engine.close()
    assert leftovers(data, repo, task_id) == ALL

    monkeypatch.setattr(prune, "START_DELAY_S", 0.1)
    config = load_config(data)
    config.gc.keep_days, config.gc.auto = 0, "off"
    off = await engine_factory(cfg=config, role="daemon")
    await asyncio.sleep(0.5)
    assert leftovers(data, repo, task_id) == ALL  # off is off
    await off.close()
    config.gc.auto = "start"
    cockpit = await engine_factory(cfg=config, role="tui")
    await until(lambda: leftovers(data, repo, task_id) == NONE, timeout=20)
    last = await until(lambda: cockpit.store.get_setting("gc_last_run"), timeout=10)
    assert last["by"] == "auto (tui)" and last["freed_bytes"] > 0


def test_gc_policy_is_checked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.toml").write_text('[gc]\nauto = "hourly"\n')
    done = cli("gc", "--dry-run")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "livhana-cockpit: config: 'config.gc.auto' must be one of daily, start, off, got 'hourly'")
    (data / "config.toml").write_text("[gc]\nkeep_days = -1\n")
    assert "'config.gc.keep_days' must be >= 0, got -1.0" in cli("gc").stderr
