"""Honest figures in the cockpit: Task Execution's header shows working and waiting time
apart, and keeps them after a later rollback; a finished task's plan reads as finished
even when the agent set it once and never updated it; Charts split the time too."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from textual.widgets import ProgressBar

from agent.config import load_config
from cockpit.app import CockpitApp
from cockpit.screens.metrics import totals_text
from tests.conftest import pending_for, until, write_script

from .support import idle, open_panel, wait_for

SIZE = (120, 40)
WAIT_S = 1.2  # the operator reads the diff this long
PLAN = {"steps": [{"title": "Read the notes", "status": "in_progress"},
                  {"title": "Write them down", "status": "pending"}]}  # fmt: skip


def head_times(app: CockpitApp) -> tuple[str, str]:
    head = str(app.screen.query_one("#head").render())
    found = re.search(r"working (\S+) · waiting (\S+)", head)
    assert found, head
    return found.group(1), found.group(2)


async def test_header_splits_time_keeps_it_after_a_rollback_and_the_plan_ends_full(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns = [{"tool_calls": [{"name": "update_plan", "input": PLAN},
                             {"name": "write_file",
                              "input": {"path": "notes.txt", "content": "hi\n"}}]}]  # fmt: skip
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    app = CockpitApp(load_config(tmp_path / "user"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine is not None, what="the engine")
        engine = app.engine
        assert engine is not None
        task_id = await engine.submit("write notes", repo, approve="ask", model=model)
        await open_panel(pilot, "1")
        await wait_for(pilot, lambda: app.screen.selected == task_id, what="the task shown")
        (request,) = await until(lambda: pending_for(engine, task_id), timeout=30)
        await asyncio.sleep(WAIT_S)
        await engine.decide(request["id"], True, by="alice")
        assert (await engine.wait(task_id))["state"] == "succeeded"

        await wait_for(pilot, lambda: "succeeded" in str(app.screen.query_one("#head").render()),
                       what="the end shown")  # fmt: skip
        await idle(pilot)
        working, waiting = head_times(app)
        assert re.fullmatch(r"[1-9]\d*s", waiting), waiting  # the approval's wait, apart
        bar = app.screen.query_one("#progress", ProgressBar)
        assert bar.total and bar.progress == bar.total  # finished, whatever the plan says
        plan = str(app.screen.query_one("#plan").render())
        assert "did not update its plan (0/2 marked done)" in plan

        # A rollback five minutes later does not make the run look five minutes longer.
        later = time.time() + 300
        monkeypatch.setattr(time, "time", lambda: later)
        await engine.rollback(task_id)
        await wait_for(pilot, lambda: "rolled back" in str(app.screen.query_one("#head").render()),
                       what="the rollback shown")  # fmt: skip
        await idle(pilot)
        assert head_times(app) == (working, waiting)

        totals = totals_text((await engine.metrics())["totals"])
        assert "working" in totals and f"waiting for you {waiting}" in totals
