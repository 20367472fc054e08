"""Fresh and ordered: what the CLI (another process) changes shows within a second, on
the panel in view and in the top bar; History stays in time order."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cockpit.demo import TASKS
from cockpit.widgets import KeyedTable
from tests.conftest import cli

from .support import idle, make_app, open_panel, panel_text, ready, wait_for

SIZE = (120, 40)
FIXED, CHANGELOG, MIGRATE, VALIDATE, CLEAN = TASKS
# Under load a subprocess takes a while to start: the second counts from its exit.
WITHIN_S = 1.0


def _data(tmp_path: Path) -> str:
    return str(tmp_path / "demo" / "data")


async def _run_cli(*args: str) -> str:
    done = await asyncio.to_thread(cli, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_a_rollback_from_the_cli_shows_in_history_within_a_second(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED,))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        [fixed] = plan.task_ids
        await open_panel(pilot, "6")
        await idle(pilot)
        table = app.screen.query_one("#ended", KeyedTable)
        assert "succeeded" in str(table.get_cell(fixed, "State"))
        await _run_cli("--data-dir", _data(tmp_path), "rollback", fixed)
        done = time.monotonic()
        await wait_for(pilot, lambda: "rolled back" in str(table.get_cell(fixed, "State")),
                       timeout=10, what="the rollback shown")
        assert time.monotonic() - done <= WITHIN_S + 0.5  # a pulse, a refresh, a repaint
        assert app.screen.query_one("#text").value == ""  # no filter edit was needed


async def test_a_decision_from_the_cli_shows_in_the_queue_and_top_bar_within_a_second(
        tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(VALIDATE,))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        [task_id] = plan.task_ids
        await open_panel(pilot, "3")
        await idle(pilot)
        assert "⚑1" in panel_text(app).splitlines()[0]
        await _run_cli("--data-dir", _data(tmp_path), "deny", task_id)
        done = time.monotonic()
        await wait_for(pilot, lambda: "denied by" in panel_text(app), timeout=10,
                       what="the decision shown")
        await wait_for(pilot, lambda: "⚑0" in panel_text(app).splitlines()[0], timeout=10,
                       what="the count")
        assert time.monotonic() - done <= WITHIN_S + 0.5


async def test_history_stays_in_time_order_as_tasks_end(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED, MIGRATE))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await open_panel(pilot, "6")
        await idle(pilot)
        table = app.screen.query_one("#ended", KeyedTable)
        before = [row.value for row in table.rows]
        # Another task ends while History is shown: it comes first, not last.
        newer = await app.engine.submit(CHANGELOG[0], app.workspace, approve="auto")
        await wait_for(pilot, lambda: newer in table._cells, timeout=30, what="the new row")
        await idle(pilot)
        order = [table.coordinate_to_cell_key((i, 0)).row_key.value
                 for i in range(table.row_count)]
        assert order == [newer, *before]
        finished = [app.screen._finished(app.screen.tasks[k]) for k in order]
        assert finished == sorted(finished, reverse=True)
