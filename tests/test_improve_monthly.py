"""The monthly job: refactoring suggestions from measurements of the workspace (never
guessed), then one model call (scripted) that ranks them into proposals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.improve import monthly
from tests import improve_world
from tests.conftest import cli

pytestmark = pytest.mark.slow


@pytest.fixture
async def world(tmp_path: Path) -> improve_world.World:
    return await improve_world.build(tmp_path)


def by_kind(insights: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [i for i in insights if i["kind"] == kind]


async def test_measurements_of_the_workspace(world: Any) -> None:
    found = await monthly.analyse(world.workspace)
    items = found["insights"]
    (large,) = by_kind(items, "large_function")
    assert (large["file"], large["name"]) == ("app/legacy.py", "classify")
    assert large["lines"] == 63
    (complex_,) = by_kind(items, "complex_function")
    assert complex_["name"] == "classify" and complex_["complexity"] == 31
    (dup,) = by_kind(items, "duplicate_block")
    assert sorted(p.split(":")[0] for p in dup["places"]) == ["app/legacy.py", "app/server.py"]
    assert dup["lines"] >= 6
    (todo,) = by_kind(items, "todo_density")
    assert todo["file"] == "app/legacy.py" and todo["markers"] == 30
    untested = {i["module"] for i in by_kind(items, "untested_module")}
    assert untested == {"app.auth", "app.legacy"}  # tests/test_server.py imports app.server
    (churn,) = by_kind(items, "churn")
    assert churn["file"] == "app/auth.py" and churn["commits"] == 4
    assert found["stats"]["modules"] == 3 and found["stats"]["tested_modules"] == 1


def test_monthly_turns_the_top_measurements_into_proposals(world: Any) -> None:
    args = ("improve", "monthly", "--workspace", str(world.workspace), "--json")
    preview = cli(*args, "--dry-run", env=world.env())
    assert preview.returncode == 0, preview.stderr
    measured = json.loads(preview.stdout)["insights"]
    large = by_kind(measured, "large_function")[0]["id"]
    world.script.write_text(json.dumps({"scripts": [
        {"match": "^Monthly refactoring review", "turns": [{"tool_calls": [{
            "name": "submit_proposals", "input": {"proposals": [{
                "title": "Make classify table-driven", "task": "Replace the 30 ifs in "
                "app/legacy.py classify with a dict lookup; behaviour unchanged, add "
                "tests/test_legacy.py for codes 0, 15 and 99.", "rationale": "63 lines, "
                "complexity 31, 30 FIXMEs", "impact": "medium", "effort": "low",
                "evidence": [large]}]}}]}]},
    ]}))
    done = cli(*args, env=world.env())
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    (proposal,) = out["proposals"]
    assert proposal["evidence"] == [large] and proposal["title"] == "Make classify table-driven"
    assert {i["id"] for i in out["insights"]} == {i["id"] for i in measured}
    report = Path(out["report"]).read_text()
    assert "Largest functions" in report and "Make classify table-driven" in report


async def test_nothing_to_refactor_needs_no_model_call(tmp_path: Path, engine_factory: Any) -> None:
    ws = tmp_path / "tiny"
    ws.mkdir()
    (ws / "a.py").write_text("def f():\n    return 1\n")
    found = await monthly.analyse(ws)
    assert [i["kind"] for i in found["insights"]] == ["untested_module"]

    def no_model(spec: str) -> Any:
        raise AssertionError("the model was called")

    engine = await engine_factory(model_factory=no_model)
    ranked = await monthly.propose(engine, ws, [], dry_run=False)
    assert ranked["model_calls"] == [] and ranked["proposals"] == []
    assert "the model was not called" in ranked["notes"][0]
