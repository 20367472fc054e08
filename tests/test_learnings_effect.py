"""Learnings pay off or go: real tasks through the engine with the scripted model, some
given a learning and some held out, and the learning's measured effect is what their
outcomes say. A consistently harmful one is retired, with its reason, before it is given
again; the operator's restore gives it a fresh start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.learnings.effect import newcombe
from agent.models.scripted import ScriptedModel
from tests.conftest import cli

LESSON = "Pagination in the users endpoint is 1-based: request page 1 first"
TEACH = {"match": "teach the users endpoint", "summary": "Looked at the pagination.",
         "learnings": {"patterns": [LESSON], "improvements": [], "nextSteps": []}}
GIVEN = "Lessons from earlier tasks"  # in the task prompt only when a learning is given


def scripted(*scripts: dict[str, Any]) -> Any:
    return lambda spec: ScriptedModel(list(scripts))


async def run_all(engine: Any, repo: Path, titles: list[str]) -> list[dict[str, Any]]:
    ids = [await engine.submit(title, repo, approve="auto") for title in titles]
    return [await engine.wait(task_id) for task_id in ids]


async def analysis_of(engine: Any, task_id: str) -> dict[str, Any]:
    events = await engine.events(task_id)
    return next(e for e in events if e["type"] == "analysis")["learnings"]


def stats_of(engine: Any) -> Any:
    async def get() -> dict[str, Any]:
        (row,) = [s for s in await engine.learning_stats() if s["text"] == LESSON]
        return row
    return get()


async def test_a_learning_used_by_later_tasks_shows_its_measured_effect(
        config: Any, engine_factory: Any, repo: Path) -> None:
    """Given it: 4 of 5 succeed. Held out: 1 of 5. The effect is +60 points, with the
    interval the outcomes allow, and none is claimed before each side has min_tasks."""
    config.learnings.holdout = 0.0
    engine = await engine_factory(scripted(
        TEACH,
        {"match": "fail-me", "turns": [{"error": "the fix did not hold"}]},
        {"match": ".", "summary": "Fixed."},
    ))
    (source,) = await run_all(engine, repo, ["teach the users endpoint pagination"])
    assert source["state"] == "succeeded"
    fresh = await stats_of(engine)
    assert fresh["source_task"] == source["id"] and fresh["category"] == "pattern"
    assert fresh["uses"] == 0 and fresh["verdict"] == "not used yet"

    title = "fix the pagination of the users endpoint, case {} {}"
    with_it = await run_all(engine, repo, [title.format(i, "fail-me" if i == 4 else "")
                                           for i in range(3)])
    assert [t["state"] for t in with_it] == ["succeeded"] * 3
    for task in with_it:
        chosen = await analysis_of(engine, task["id"])
        assert not chosen["holdout"] and [g["text"] for g in chosen["given"]] == [LESSON]

    config.learnings.holdout = 1.0  # the next ones are the baseline
    without = await run_all(engine, repo, [title.format(10 + i, "" if i == 0 else "fail-me")
                                           for i in range(3)])
    for task in without:
        chosen = await analysis_of(engine, task["id"])
        assert chosen["holdout"] and chosen["given"] == [] and chosen["withheld"]
    early = await stats_of(engine)
    # 3 and 3 tasks: the rates are shown, no effect is claimed from them.
    assert (early["tasks_with"], early["tasks_without"]) == (3, 3)
    assert early["effect"] is None and early["confidence"] is None
    assert early["verdict"] == "too few tasks"

    config.learnings.holdout = 0.0
    more = await run_all(engine, repo, [title.format(3, ""), title.format(4, "fail-me")])
    config.learnings.holdout = 1.0
    more += await run_all(engine, repo, [title.format(13, "fail-me"), title.format(14, "fail-me")])
    assert [t["state"] for t in more] == ["succeeded", "failed", "failed", "failed"]

    s = await stats_of(engine)
    assert (s["succeeded_with"], s["tasks_with"]) == (4, 5)
    assert (s["succeeded_without"], s["tasks_without"]) == (1, 5)
    assert s["success_with"] == 0.8 and s["success_without"] == 0.2
    assert s["effect"] == 0.6 and s["uses"] == 5 and s["state"] == "active"
    low, high = newcombe(4, 5, 1, 5)
    assert s["confidence"] == {"level": 0.95, "low": round(low, 4), "high": round(high, 4)}
    # +60 points from 5 and 5 tasks: the interval still touches zero, so no "helps" yet.
    assert low < 0 < high and s["verdict"] == "unclear"
    given_to = {g["task_id"]: g["outcome"] for g in s["given_to"]}
    assert set(given_to) == {t["id"] for t in with_it + more[:2]}
    assert sorted(given_to.values()) == ["failure"] + ["success"] * 4

    # The command line says the same, in every field the issue names.
    listed = json.loads(cli("learnings", "--stats", "--json").stdout)
    (row,) = [r for r in listed if r["id"] == s["id"]]
    for key in ("id", "text", "category", "source_task", "uses", "success_with",
                "success_without", "state", "effect", "confidence", "pinned", "merged"):
        assert row[key] == s[key], key


async def test_a_consistently_harmful_learning_is_retired_with_its_reason(
        config: Any, engine_factory: Any, repo: Path) -> None:
    """Every task given the learning fails, every held-out one succeeds: before it is given
    again it is retired, automatically, saying why; the task then runs without it. A
    restore by the operator gives it a fresh start: old evidence does not retire it again."""
    config.learnings.holdout = 0.0
    engine = await engine_factory(scripted(
        TEACH,
        {"match": GIVEN, "turns": [{"error": "followed the lesson, broke the build"}]},
        {"match": ".", "summary": "Fixed."},
    ))
    await run_all(engine, repo, ["teach the users endpoint pagination"])
    title = "repair the users endpoint pagination, ticket {}"
    hurt = await run_all(engine, repo, [title.format(i) for i in range(5)])
    assert [t["state"] for t in hurt] == ["failed"] * 5
    config.learnings.holdout = 1.0
    fine = await run_all(engine, repo, [title.format(10 + i) for i in range(5)])
    assert [t["state"] for t in fine] == ["succeeded"] * 5
    assert (await stats_of(engine))["verdict"] == "hurts"

    config.learnings.holdout = 0.0
    (after,) = await run_all(engine, repo, [title.format(20)])
    assert after["state"] == "succeeded"  # it ran without the harmful advice
    chosen = await analysis_of(engine, after["id"])
    assert chosen["given"] == [] and len(chosen["retired"]) == 1
    s = await stats_of(engine)
    assert s["state"] == "retired" and s["changed_by"] == "engine"
    assert "retired automatically" in s["reason"]
    assert "0/5 succeeded (0%) with it vs 5/5 succeeded (100%) without" in s["reason"]
    assert chosen["retired"][0] == {"id": s["id"], "reason": s["reason"]}
    assert (await engine.learnings_by_kind())["patterns"] == []  # not active any more
    audit = await engine.store.fetch("SELECT actor, action, detail FROM audit "
                                     "WHERE action = 'learning_retire'")
    assert [(a["actor"], json.loads(a["detail"])["learning"]) for a in audit] == [
        ("engine", s["id"])]

    # The operator disagrees: restored, it is given again (the old evidence is not held
    # against it), until new evidence says otherwise.
    await engine.change_learning(s["id"], "restore", by="operator")
    (again,) = await run_all(engine, repo, [title.format(21)])
    chosen = await analysis_of(engine, again["id"])
    assert [g["id"] for g in chosen["given"]] == [s["id"]] and chosen["retired"] == []
    restored = await stats_of(engine)
    assert restored["state"] == "active" and restored["reason"] == "restored by operator"


async def test_a_learning_is_given_only_to_tasks_it_is_relevant_to(
        config: Any, engine_factory: Any, repo: Path) -> None:
    config.learnings.holdout = 0.0
    engine = await engine_factory(scripted(TEACH, {"match": ".", "summary": "Done."}))
    await run_all(engine, repo, ["teach the users endpoint pagination"])
    (other,) = await run_all(engine, repo, ["add a farewell function to app.py"])
    chosen = await analysis_of(engine, other["id"])
    assert chosen["given"] == [] and chosen["withheld"] == [] and not chosen["holdout"]
    # Nothing relevant, nothing counted: the unrelated task is not "without" it either.
    s = await stats_of(engine)
    assert (s["tasks_with"], s["tasks_without"], s["uses"]) == (0, 0, 0)
