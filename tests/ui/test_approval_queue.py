"""The Approval Queue on the real engine with the demo's requests: it fits the screen, says
which task asks and what command would run, asks before approving a whole kind, and shows
who decided from the store (the CLI, another panel, before a restart)."""

from __future__ import annotations

from pathlib import Path

from cockpit import fmt
from cockpit.widgets import Confirm, KeyedTable

from .support import idle, make_app, panel_text, ready, wait_for

SIZE = (120, 40)
CLEAN = "rm -rf build dist *.egg-info && git clean -fdx"


async def _pending(app) -> list[dict]:
    return await app.engine.pending_approvals()


async def test_the_queue_fits_120_columns_and_names_task_and_command(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        command = next(a for a in await _pending(app) if a["kind"] == "command")
        await pilot.press("3")
        await idle(pilot)
        table = app.screen.query_one("#queue", KeyedTable)
        assert not table.show_horizontal_scrollbar
        assert table.virtual_size.width <= table.size.width
        text = panel_text(app)
        assert f"{command['task_id'][:8]} Clean the build" in text  # which of the identical tasks
        table.move_cursor(row=table.get_row_index(str(command["id"])))
        await idle(pilot)
        text = panel_text(app)
        assert f"$ {CLEAN}" in text and "'command':" not in text
        assert "rule: commands #1" in text and "need" in text and "the operator" in text  # wrapped


async def test_approve_all_of_a_kind_asks_first_showing_count_and_commands(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(("Clean the build artifacts", "ask", ""),
                                          ("Clean the build artifacts", "ask", "")))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        assert [a["kind"] for a in await _pending(app)] == ["command", "command"]
        await pilot.press("3")
        await idle(pilot)
        await pilot.press("A")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, Confirm) and app.screen,
                                what="the confirm")
        text = panel_text(app)
        assert "Approve 2 pending command requests?" in text
        assert "×2" in text and "$ rm -rf build dist" in text
        await pilot.press("n")
        await idle(pilot)
        assert dialog is not app.screen and len(await _pending(app)) == 2  # nothing approved
        await pilot.press("A")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the confirm again")
        await pilot.press("y")
        await wait_for(pilot, lambda: panel_text(app).count("approved by operator") == 2,
                       what="both approved")


async def test_decisions_made_elsewhere_show_who_decided_and_waiting_stops(
        tmp_path: Path, monkeypatch) -> None:
    app, plan = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        pending = await _pending(app)
        command = next(a for a in pending if a["kind"] == "command")
        await pilot.press("3")
        await idle(pilot)
        table = app.screen.query_one("#queue", KeyedTable)
        order = [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]
        await pilot.press("2")  # away from the queue while the CLI decides
        await app.engine.decide(command["id"], False, by="cli")
        await idle(pilot)
        await pilot.press("3")
        await wait_for(pilot, lambda: "denied by cli" in panel_text(app), what="decider shown")
        assert "by ?" not in panel_text(app)
        # Oldest first, decided rows included, and a decided row's wait is frozen.
        assert [table.coordinate_to_cell_key((i, 0)).row_key.value
                for i in range(table.row_count)] == order
        key = str(command["id"])
        waited = table.get_cell(key, "Waiting")
        real_now = fmt.now
        monkeypatch.setattr(fmt, "now", lambda: real_now() + 3600)
        app.screen.request_refresh()
        await idle(pilot)
        other = next(k for k in order if k != key)
        assert str(table.get_cell(key, "Waiting")) == str(waited)
        assert str(table.get_cell(other, "Waiting")).startswith("1h")
    # After a restart the store still says who decided.
    again, plan2 = make_app(tmp_path, tasks=())
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot, plan2)
        await pilot.press("3")
        await wait_for(pilot, lambda: "denied by cli" in panel_text(again), what="after restart")
