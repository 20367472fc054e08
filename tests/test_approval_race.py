"""First decider wins, and every other decider is told so: two command lines racing
(`approve ID & deny ID &`), the approval timeout against a late operator, a cancel closing
the request against an approve. The loser exits non-zero naming who won and what they
decided; the task does what the winner said."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent import events as ev
from agent.config import DeployTarget
from tests.conftest import ROOT, cli, pending_for, until, write_script

ROUNDS = 30
DECIDED = {"approve": "approved", "deny": "denied"}


@pytest.fixture
def deploy_config(config: Any) -> Any:
    config.deploy = {"prod": DeployTarget(command="echo shipped > deployed.txt")}
    return config


def deploy_script(tmp_path: Path) -> str:
    turns = [{"tool_calls": [{"name": "deploy_code", "input": {"target": "prod"}}]}]
    return write_script(
        tmp_path / "s.json", [{"match": ".", "turns": turns, "summary": "Deployed to production."}]
    )


def launch(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cockpit", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


async def of_type(engine: Any, task_id: str, type_: str) -> list[dict[str, Any]]:
    return [e for e in await engine.events(task_id) if e["type"] == type_]


async def test_approve_and_deny_launched_together_exactly_one_wins_and_the_loser_says_who(
    repo: Path, tmp_path: Path, deploy_config: Any, engine_factory: Any
) -> None:
    engine = await engine_factory()
    model = deploy_script(tmp_path)
    seen = set()
    for n in range(ROUNDS):
        task_id = await engine.submit(f"deploy round {n}", repo, model=model, apply=False)
        (request,) = await until(lambda t=task_id: pending_for(engine, t), timeout=30)
        procs = {verb: launch(verb, task_id) for verb in ("approve", "deny")}  # together
        done = {verb: await asyncio.to_thread(finish, p) for verb, p in procs.items()}
        winners = [verb for verb, (code, _, _) in done.items() if code == 0]
        assert len(winners) == 1, f"round {n}: {done}"
        (winner,) = winners
        loser = "deny" if winner == "approve" else "approve"
        seen.add(winner)
        code, out, err = done[loser]
        by = f"cli (pid {procs[winner].pid})"
        assert code == 2 and out == "", f"round {n}: {done[loser]}"
        # One line naming the winner and their decision, and that this one did not count.
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert f"{DECIDED[winner]} by {by}" in err, f"round {n}: {err}"
        assert f"your {loser} was not applied" in err or "no pending approval" in err, err
        assert done[winner][1].startswith(f"{DECIDED[winner]} 1 request(s)")

        task = await asyncio.wait_for(engine.wait(task_id), 30)
        row = await engine.store.get_approval(request["id"])
        assert (row["state"], row["decided_by"]) == (DECIDED[winner], by)
        (decided,) = await of_type(engine, task_id, ev.APPROVAL_DECIDED)
        assert decided["by"] == by and decided["approved"] is (winner == "approve")
        audited = await engine.store.fetch(
            "SELECT actor, action FROM audit WHERE task_id = ? AND action IN ('approve', 'deny')",
            [task_id],
        )
        assert audited == [{"actor": by, "action": winner}]  # the loser left no record
        if winner == "approve":
            assert task["state"] == ev.SUCCEEDED and "deployed.txt" in task["changes"]
        else:
            assert task["state"] == ev.FAILED and task["changes"] == []
            assert f"deploy_code prod was denied by {by}" in task["error"]
    print(f"\n{ROUNDS} rounds; winners seen: {sorted(seen)}")


async def test_the_timeout_decided_first_so_a_late_approve_says_so(
    repo: Path, tmp_path: Path, deploy_config: Any, engine_factory: Any
) -> None:
    deploy_config.engine.approval_timeout_s = 0.3
    engine = await engine_factory()
    task_id = await engine.submit("deploy it", repo, model=deploy_script(tmp_path), apply=False)
    task = await asyncio.wait_for(engine.wait(task_id), 30)
    assert task["state"] == ev.FAILED and "deploy_code prod was denied by timeout" in task["error"]
    late = await asyncio.to_thread(cli, "approve", task_id)
    assert late.returncode == 2 and late.stdout == ""
    assert f"task {task_id} has no pending approval: it already ended (failed" in late.stderr
    assert "was denied by timeout (no decision in time)" in late.stderr, late.stderr


async def test_timeout_against_an_operator_at_the_same_moment_one_decision_counts(
    repo: Path, tmp_path: Path, deploy_config: Any, engine_factory: Any
) -> None:
    """The approve is launched as the request appears, with a timeout about as long as a
    command line takes to start (so either may win): whoever wins, all say the same."""
    engine = await engine_factory()
    model = deploy_script(tmp_path)
    for n, timeout_s in enumerate((0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)):
        deploy_config.engine.approval_timeout_s = timeout_s
        task_id = await engine.submit(f"deploy {n}", repo, model=model, apply=False)
        # Any state: with the shortest timeouts it may be decided before we look.
        (request,) = await until(
            lambda t=task_id: engine.store.approvals(None, task_id=t), timeout=30
        )
        proc = launch("approve", task_id)
        code, out, err = await asyncio.to_thread(finish, proc)
        task = await asyncio.wait_for(engine.wait(task_id), 30)
        row = await engine.store.get_approval(request["id"])
        (decided,) = await of_type(engine, task_id, ev.APPROVAL_DECIDED)
        assert decided["by"] == row["decided_by"]
        if code == 0:  # the operator won
            assert row["decided_by"] == f"cli (pid {proc.pid})" and row["state"] == "approved"
            assert task["state"] == ev.SUCCEEDED and "deployed.txt" in task["changes"]
        else:
            assert code == 2 and "Traceback" not in err
            assert (row["state"], row["decided_by"]) == ("denied", "timeout")
            assert "denied by timeout" in err, err
            assert task["state"] == ev.FAILED and "denied by timeout" in task["error"]


async def test_approve_against_a_cancel_closing_the_request(
    repo: Path, tmp_path: Path, deploy_config: Any, engine_factory: Any
) -> None:
    """`approve ID & cancel ID &`: either the approve won (and says so, and the stream
    shows that decision even though the task was cancelled right after), or the cancel
    closed the request first and the approve says it lost to the cancel."""
    engine = await engine_factory()
    model = deploy_script(tmp_path)
    for n in range(8):
        task_id = await engine.submit(f"deploy {n}", repo, model=model, apply=False)
        (request,) = await until(lambda t=task_id: pending_for(engine, t), timeout=30)
        approve, cancel = launch("approve", task_id), launch("cancel", task_id)
        code, out, err = await asyncio.to_thread(finish, approve)
        cancelled = await asyncio.to_thread(finish, cancel)
        task = await asyncio.wait_for(engine.wait(task_id), 30)
        # The cancel too says what happened: it cancelled the task, or the task ended first.
        if cancelled[0] == 0:
            assert task["state"] == ev.CANCELLED
            assert cancelled[1] == f"cancelled task {task_id}: {task['error']}\n"
        else:
            assert cancelled[0] == 2 and task["state"] != ev.CANCELLED, cancelled
            assert f"task {task_id} " in cancelled[2] and task["state"] in cancelled[2]
        row = await engine.store.get_approval(request["id"])
        decided = await of_type(engine, task_id, ev.APPROVAL_DECIDED)
        assert [(d["by"], d["approved"]) for d in decided] == [
            (row["decided_by"], row["state"] == "approved")
        ], f"round {n}: the stream holds the decision that counted, once"
        if code == 0:
            assert row["decided_by"] == f"cli (pid {approve.pid})", f"round {n}: {row}"
        else:
            assert code == 2 and out == "" and "Traceback" not in err
            assert row["decided_by"] == "cancelled by cli" and task["state"] == ev.CANCELLED
            assert "closed unanswered when its task stopped (cancelled by cli)" in err, err


async def test_approve_of_a_task_cancelled_meanwhile_says_it_was_cancelled(
    repo: Path, tmp_path: Path, deploy_config: Any, engine_factory: Any
) -> None:
    engine = await engine_factory()
    task_id = await engine.submit("deploy it", repo, model=deploy_script(tmp_path), apply=False)
    (request,) = await until(lambda: pending_for(engine, task_id), timeout=30)
    cancelled = await asyncio.to_thread(cli, "cancel", task_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == f"cancelled task {task_id}: cancelled by cli\n"
    late = await asyncio.to_thread(cli, "approve", task_id)
    assert late.returncode == 2 and late.stdout == ""
    assert late.stderr == (
        f"livhana-cockpit: task {task_id} has no pending approval: it already ended "
        f"(cancelled: cancelled by cli); its last request #{request['id']} was closed "
        "unanswered when its task stopped (cancelled by cli), " + late.stderr.split(
            "(cancelled by cli), ")[-1]
    )
    again = await asyncio.to_thread(cli, "cancel", task_id)
    assert again.returncode == 2 and "already ended (cancelled)" in again.stderr


async def test_approve_after_the_emergency_stop_closed_the_request_names_the_stop(
    repo: Path, tmp_path: Path, deploy_config: Any, engine_factory: Any
) -> None:
    engine = await engine_factory()
    task_id = await engine.submit("deploy it", repo, model=deploy_script(tmp_path), apply=False)
    (request,) = await until(lambda: pending_for(engine, task_id), timeout=30)
    stopped = await asyncio.to_thread(cli, "stop")
    assert stopped.returncode == 0, stopped.stderr
    task = await asyncio.wait_for(engine.wait(task_id), 30)
    assert task["state"] == ev.CANCELLED
    late = await asyncio.to_thread(cli, "approve", task_id)
    assert late.returncode == 2 and late.stdout == ""
    assert (f"its last request #{request['id']} was closed unanswered when its task stopped "
            "(emergency stop by cli)") in late.stderr, late.stderr
