"""Honest figures: a task's working time and its time waiting for the operator, apart, from
its own events; a rollback later changes neither (nor the metrics built on them)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from agent import timing
from agent.models.scripted import ScriptedModel
from tests.conftest import cli, pending_for, until

WAIT_S = 1.5  # how long the operator takes to approve


def status(ts: float, state: str) -> dict[str, Any]:
    return {"ts": ts, "type": "status", "state": state}


def test_waiting_for_an_approval_is_not_working_time() -> None:
    marks = [status(0, "queued"), status(2, "planning"), status(5, "running"),
             status(10, "awaiting_approval"), status(70, "running"),
             status(80, "awaiting_approval"), status(200, "applying"), status(201, "succeeded"),
             status(900, "rolled_back")]  # fmt: skip
    span = timing.split(marks)
    assert (span.working_s, span.waiting_s) == (19, 180)  # 2..201, less 60 + 120 waiting
    assert (span.started_at, span.ended_at) == (2, 201)  # the rollback at 900 moves neither


def test_a_request_a_rule_decided_waited_for_nobody() -> None:
    def decided(ts: float, by: str) -> dict[str, Any]:
        return {"ts": ts, "type": "approval_decided", "by": by}

    auto = timing.split([status(0, "planning"), status(10, "awaiting_approval"),
                         decided(10.2, "rule:approve=auto"), status(10.3, "applying"),
                         status(11, "succeeded")])  # fmt: skip
    assert (auto.working_s, auto.waiting_s) == (11, 0)  # a loaded machine's 0.3 s is work
    asked = [status(0, "planning"), status(10, "awaiting_approval"), decided(40, "operator"),
             status(40.1, "applying"), status(41, "succeeded")]  # fmt: skip
    assert timing.split(asked).waiting_s == pytest.approx(30.1)
    timed_out = [*asked[:2], decided(40, "timeout"), *asked[3:]]  # nobody came, but we waited
    assert timing.split(timed_out).waiting_s == pytest.approx(30.1)


def test_a_pause_is_waiting_and_overlaps_count_once() -> None:
    marks = [status(0, "planning"), {"ts": 10, "type": "paused"},
             status(12, "awaiting_approval"), status(30, "running"),
             {"ts": 40, "type": "resumed"}, status(50, "failed")]  # fmt: skip
    span = timing.split(marks)
    assert (span.working_s, span.waiting_s) == (20, 30)  # waiting 10..40, not 10..40 + 12..30


def test_a_live_task_counts_to_now_and_an_interrupted_one_to_its_last_event() -> None:
    live = timing.split([status(0, "planning"), status(5, "awaiting_approval")], now=65)
    assert (live.working_s, live.waiting_s, live.ended_at) == (5, 60, None)
    dead = timing.split([status(0, "planning"),
                         {**status(3600, "interrupted"), "last_before": 30}])  # fmt: skip
    assert (dead.working_s, dead.ended_at) == (30, 30)
    assert timing.split([status(0, "queued"), status(9, "cancelled")]).started_at is None


@pytest.fixture
def apply_waits(engine_factory: Any) -> Any:
    async def make() -> Any:
        turns = [{"tool_calls": [{"name": "write_file",
                                  "input": {"path": "notes.txt", "content": "hi\n"}}]}]
        return await engine_factory(lambda spec: ScriptedModel([{"match": ".", "turns": turns}]))

    return make


async def test_an_approved_and_later_rolled_back_task_keeps_both_figures(
    apply_waits: Any, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await apply_waits()
    task_id = await engine.submit("write notes", repo, approve="ask")
    (request,) = await until(lambda: pending_for(engine, task_id), timeout=30)
    await asyncio.sleep(WAIT_S)  # the operator reads the diff
    await engine.decide(request["id"], True, by="alice")
    task = await engine.wait(task_id)
    assert task["state"] == "succeeded"
    await engine.events(task_id)  # flushed
    before = (await timing.timings(engine.store, [task_id]))[task_id]
    assert before.waiting_s >= WAIT_S
    wall = task["finished_at"] - task["started_at"]
    assert before.working_s == pytest.approx(wall - before.waiting_s, abs=0.05)
    metrics = await engine.metrics()
    assert metrics["avg_waiting_s"][-1] == round(before.waiting_s, 1)
    assert metrics["avg_working_s"][-1] == round(before.working_s, 1)

    later = time.time() + 300
    monkeypatch.setattr(time, "time", lambda: later)  # the rollback comes 5 minutes later
    await engine.rollback(task_id)
    await engine.events(task_id)
    after = (await timing.timings(engine.store, [task_id]))[task_id]
    assert (await engine.get(task_id))["state"] == "rolled_back"
    assert (after.working_s, after.waiting_s) == (before.working_s, before.waiting_s)
    again = await engine.metrics()
    assert (again["avg_working_s"], again["avg_waiting_s"]) == (
        metrics["avg_working_s"], metrics["avg_waiting_s"])  # fmt: skip
    await engine.close()

    # The command line shows the same figures, in the cockpit's words and format.
    lines = cli("history").stdout.splitlines()
    assert lines[0].split()[:6] == ["ID", "Finished", "State", "Working", "Waiting", "Cost"]
    row = next(line for line in lines if line.startswith(task_id))
    assert "rolled back" in row
    assert f" {int(after.waiting_s)}s " in row and f" {int(after.working_s)}s " in row
    totals = json.loads(cli("metrics", "--json").stdout)["totals"]
    assert totals["waiting_s"] == round(after.waiting_s, 1)
