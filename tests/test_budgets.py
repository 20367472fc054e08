"""Budgets (per task and per day, in USD from usage) and stall detection, end to end.

The scripted model prices tokens like the default model: 100,000 input tokens = $0.30.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent import events as ev
from agent.models.scripted import ScriptedModel
from tests.conftest import pending_for, until, write_script


def turn(name: str, usage_in: int = 0, **args: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "input": args}], "usage": {"input_tokens": usage_in}}


def script(tmp_path: Path, *turns: dict[str, Any], name: str = "s.json") -> str:
    return write_script(tmp_path / name, [{"match": ".", "turns": list(turns)}])


async def of_type(engine: Any, task_id: str, type_: str) -> list[dict[str, Any]]:
    return [e for e in await engine.events(task_id) if e["type"] == type_]


# -- per-task cap --------------------------------------------------------------------------
async def test_task_over_its_cost_cap_is_stopped_with_a_clear_reason(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    model = script(tmp_path, turn("write_file", 100_000, path="x.txt", content="x\n"))
    engine = await engine_factory()
    task_id = await engine.submit("expensive", repo, model=model, max_cost=0.10, apply=False)
    task = await engine.wait(task_id)
    assert task["state"] == ev.FAILED
    assert task["error"] == "cost limit reached: $0.30 > $0.10"
    assert task["cost_usd"] == 0.3
    (error,) = await of_type(engine, task_id, ev.ERROR)
    assert "cost limit reached" in error["message"]
    assert await of_type(engine, task_id, ev.STEP) == []  # the over-budget turn did not act
    assert not (Path(task["worktree"]) / "x.txt").exists()
    (usage,) = await of_type(engine, task_id, ev.USAGE)
    assert usage["total_cost_usd"] == 0.3


class Recording(ScriptedModel):
    """The scripted model, keeping every conversation it was sent."""

    seen: list[list[dict[str, Any]]]

    async def complete(self, **kw: Any) -> Any:
        self.seen.append([dict(m) for m in kw["messages"]])
        return await super().complete(**kw)


async def test_task_near_its_cap_is_told_to_wrap_up_once(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    path = tmp_path / "s.json"
    script(
        tmp_path, turn("read_file", 280_000, path="app.py"), turn("read_file", 0, path="README.md")
    )
    model = Recording.from_file(path)
    model.seen = []
    engine = await engine_factory(model_factory=lambda spec: model)
    task_id = await engine.submit("near the cap", repo, max_cost=1.0, apply=False)
    assert (await engine.wait(task_id))["state"] == ev.SUCCEEDED  # $0.84 of $1.00: not over
    notes = [
        block["text"]
        for conversation in model.seen
        for message in conversation
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "text" and "close to its budget" in block["text"]
    ]
    assert notes and "$0.84 of $1.00" in notes[0]
    assert len(set(notes)) == 1  # told once, not on every turn


# -- daily cap -----------------------------------------------------------------------------
async def test_daily_cap_already_spent_holds_new_tasks_queued(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr("agent.dispatch.BUDGET_HOLD_S", 0.2)  # re-check often, for a fast test
    config.engine.daily_budget_usd = 1.0
    engine = await engine_factory()
    await engine.store.add_usage(None, "claude-sonnet-4-5", {"cost_usd": 1.5})
    assert await engine.budget() == {"spent_today": 1.5, "daily_cap": 1.0, "task_cap": 5.0}
    model = script(tmp_path, turn("write_file", 0, path="x.txt", content="x\n"))
    task_id = await engine.submit("cheap", repo, model=model, apply=False)
    (warning,) = await until(lambda: of_type(engine, task_id, ev.WARNING))
    assert warning["message"] == "held: daily budget reached"
    await asyncio.sleep(0.5)
    task = await engine.get(task_id)
    assert task["state"] == ev.QUEUED and task["started_at"] is None
    # Held, not dropped: raising the cap lets it run.
    config.engine.daily_budget_usd = 10.0
    assert (await asyncio.wait_for(engine.wait(task_id), 3))["state"] == ev.SUCCEEDED
    assert len(await of_type(engine, task_id, ev.WARNING)) == 1  # warned once, not per poll


async def test_daily_cap_reached_mid_task_stops_it(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    config.engine.daily_budget_usd = 0.5
    model = script(
        tmp_path, turn("read_file", 200_000, path="app.py"), turn("read_file", 0, path="app.py")
    )
    engine = await engine_factory()
    task_id = await engine.submit("two turns", repo, model=model, apply=False)
    task = await engine.wait(task_id)
    assert task["state"] == ev.FAILED and "daily budget reached" in task["error"]
    assert task["cost_usd"] == 0.6


# -- stall detection -----------------------------------------------------------------------
async def test_same_call_repeated_pauses_for_approval_and_denying_fails(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    config.engine.stall_repeats = 3
    model = script(tmp_path, *[turn("read_file", 0, path="app.py")] * 6)
    engine = await engine_factory()
    task_id = await engine.submit("loop", repo, model=model, apply=False)
    (request,) = await until(lambda: pending_for(engine, task_id))
    assert request["kind"] == "stall" and request["task_id"] == task_id
    assert request["detail"]["reason"] == "the same read_file call 3 times in a row"
    assert "stuck" in request["summary"]
    assert (await engine.get(task_id))["state"] == ev.AWAITING_APPROVAL
    assert len(await of_type(engine, task_id, ev.STEP)) == 3  # paused at the third call
    (warning,) = await of_type(engine, task_id, ev.WARNING)
    assert "stalled" in warning["message"]

    await engine.decide(request["id"], False, by="operator")
    task = await engine.wait(task_id)
    assert task["state"] == ev.FAILED
    assert task["error"] == "stalled: the same read_file call 3 times in a row"
    assert len(await of_type(engine, task_id, ev.STEP)) == 3


async def test_stall_approved_lets_the_task_go_on(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    config.engine.stall_repeats = 3
    model = script(tmp_path, *[turn("read_file", 0, path="app.py")] * 4)
    engine = await engine_factory()
    task_id = await engine.submit("loop a bit", repo, model=model, apply=False)
    (request,) = await until(lambda: pending_for(engine, task_id))
    await engine.decide(request["id"], True, by="operator")
    task = await engine.wait(task_id)
    assert task["state"] == ev.SUCCEEDED and task["steps"] == 4


async def test_steps_without_progress_pause_for_approval(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    config.engine.stall_steps = 3
    model = script(
        tmp_path,
        turn("read_file", 0, path="app.py"),
        turn("read_file", 0, path="README.md"),
        turn("search_codebase", 0, pattern="greet"),
        turn("read_file", 0, path="app.py", offset=1),
    )
    engine = await engine_factory()
    task_id = await engine.submit("wander", repo, model=model, apply=False)
    (request,) = await until(lambda: pending_for(engine, task_id))
    assert request["kind"] == "stall"
    assert request["detail"]["reason"] == "3 steps without a file change or plan progress"
    await engine.decide(request["id"], False)
    task = await engine.wait(task_id)
    assert task["state"] == ev.FAILED and "without a file change" in task["error"]
