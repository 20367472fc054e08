"""Panels over live tasks, on the real engine with the demo's scripted model: right when you
come back to them, showing what each task does now, pausing for real, and never asking
about a task that has already ended."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import ProgressBar

from cockpit.widgets import Confirm, EventLog, KeyedTable

from .support import idle, make_app, open_panel, part, ready, task_state, wait_for

SIZE = (120, 40)
CLEAN = ("Clean the build artifacts", "ask", "")
SOAK = "Soak test the cart"


def log_text(log: EventLog) -> str:
    return "\n".join(str(line.text) for line in log.lines)


async def store_seq(app, task_id: str) -> int:
    return max(e["seq"] for e in await app.engine.events(task_id))



async def active_table(pilot: Any) -> KeyedTable:
    """Active Tasks' table, once the switch to it happened (a key is handled later, and a
    loaded machine can show the old panel a while)."""
    await wait_for(pilot, lambda: getattr(pilot.app.screen, "MODE", "") == "active",
                   what="Active Tasks")
    return await part(pilot, "#live", KeyedTable)

async def test_task_execution_catches_up_on_what_happened_while_away(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(CLEAN,))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        task_id = plan.task_ids[0]
        log = app.screen.query_one("#log", EventLog)
        await wait_for(pilot, lambda: "approval needed" in log_text(log), what="the request shown")
        await open_panel(pilot, "2")  # away: the task goes on without this panel watching
        request = (await app.engine.pending_approvals())[0]
        await app.engine.decide(request["id"], False, by="cli")
        await app.engine.wait(task_id)
        seq = await store_seq(app, task_id)
        await idle(pilot)
        await pilot.press("1")
        await wait_for(pilot, lambda: log.last_seq >= seq, what="the rest of the stream")
        await idle(pilot)
        text = log_text(log)
        assert "denied by cli" in text and ("complete" in text or "ended" in text)
        state = await task_state(app, task_id)
        head = str(app.screen.query_one("#head").render())
        assert state.replace("_", " ") in head and "awaiting" not in head


async def test_the_plan_bar_reaches_the_end_after_a_return(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await pilot.press("escape", "2")  # a fresh cockpit's task field had the focus
        task_id = await app.engine.submit("Fix the off-by-one in paginate()", app.workspace,
                                          approve="auto")
        await pilot.press("1")
        await wait_for(pilot, lambda: app.screen.selected == task_id, what="the task selected")
        await pilot.press("2")  # leave while it runs
        await app.engine.wait(task_id)
        await pilot.press("1")
        bar = app.screen.query_one("#progress", ProgressBar)
        await wait_for(pilot, lambda: bar.total and bar.progress == bar.total, what="plan done")
        assert (await task_state(app, task_id)) == "succeeded"


async def test_active_tasks_shows_the_step_and_action_now_and_pauses_for_real(
        tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        engine = app.engine
        task_id = await engine.submit(SOAK, app.workspace, approve="auto")
        await wait_for(pilot, lambda: (engine.live(task_id) or None) and engine.live(task_id).process_groups,
                       what="the soak command running")
        await pilot.press("escape", "2")  # a fresh cockpit's task field has the focus
        table = await active_table(pilot)
        await wait_for(pilot, lambda: task_id in table.rows, what="the row")
        await wait_for(pilot, lambda: str(table.get_cell(task_id, "Step")) == "1",
                       what="step 1 shown while it runs")
        assert str(table.get_cell(task_id, "Now")).startswith("execute_bash sleep 600")
        table.move_cursor(row=table.get_row_index(task_id))
        await pilot.press("p")
        await wait_for(pilot, lambda: engine.live(task_id).paused, what="paused in the engine")
        await wait_for(pilot, lambda: "paused" in str(table.get_cell(task_id, "State")),
                       what="paused shown")
        assert engine.live(task_id).process_groups  # the running command was not killed
        assert await task_state(app, task_id) == "running"
        await wait_for(pilot, lambda: "paused by operator" in
                       log_text(app.screen.query_one("#peek", EventLog)), what="in the log")
        await pilot.press("p")
        await wait_for(pilot, lambda: not engine.live(task_id).paused, what="resumed")
        await wait_for(pilot, lambda: "paused" not in str(table.get_cell(task_id, "State")),
                       what="resumed shown")


async def test_active_tasks_latest_log_catches_up_after_a_return(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(CLEAN,))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        task_id = plan.task_ids[0]
        await open_panel(pilot, "2")
        peek = app.screen.query_one("#peek", EventLog)
        await wait_for(pilot, lambda: "approval needed" in log_text(peek), what="peek")
        await pilot.press("1")
        request = (await app.engine.pending_approvals())[0]
        await app.engine.decide(request["id"], False, by="cli")
        await wait_for(pilot, lambda: app.engine.state_of(task_id) not in
                       ("awaiting_approval", None), what="decided")
        await idle(pilot)  # the decision's events went out while this panel was hidden
        seq = await store_seq(app, task_id)
        await pilot.press("2")
        await wait_for(pilot, lambda: peek.last_seq >= seq, what="peek caught up")
        assert "denied by cli" in log_text(peek)


@pytest.mark.parametrize("first", ["live events", "store"])
async def test_a_confirm_closes_when_its_task_ends_first(tmp_path: Path, first: str) -> None:
    """Whichever tells the cockpit first that the task ended (its live events, or the
    store's pulse: under load the store can be ahead), the dialog closes and says how."""
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        engine = app.engine
        task_id = await engine.submit(SOAK, app.workspace, approve="auto")
        await pilot.press("escape", "2")  # a fresh cockpit's task field had the focus
        table = await active_table(pilot)
        await wait_for(pilot, lambda: task_id in table.rows, what="the row")
        table.move_cursor(row=table.get_row_index(task_id))
        said: list[str] = []  # toasts expire: keep what was said (a loaded run is slow)
        notify = app.notify
        app.notify = lambda message, *a, **k: (said.append(str(message)),  # type: ignore[method-assign]
                                               notify(message, *a, **k))[1]
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
        if first == "store":  # the live events lag: only the store's pulse sees the end
            track = app._track
            app._track = lambda event, *a: (  # type: ignore[method-assign]
                None if event.get("type") == "status" else track(event, *a))
        await pilot.press("ctrl+x")  # the stop ends the task under the open dialog
        await wait_for(pilot, lambda: engine.state_of(task_id) == "cancelled", what="cancelled")
        await wait_for(pilot, lambda: not isinstance(app.screen, Confirm), what="dialog closed")
        assert any("already ended (cancelled)" in message for message in said)


async def test_cancel_on_task_execution_asks_first(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        task_id = await app.engine.submit(SOAK, app.workspace, approve="auto")
        await wait_for(pilot, lambda: app.screen.selected == task_id, what="the task selected")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
        await pilot.press("n")
        await idle(pilot)
        assert await task_state(app, task_id) == "running"
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="asked again")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.engine.state_of(task_id) == "cancelled",
                       what="cancelled")


async def test_the_model_is_seen_thinking_before_its_turn_ends(tmp_path: Path) -> None:
    """A streaming turn shows on Task Execution as it grows (live deltas, folded like the
    log's thinking), and gives way to the stored block when the turn ends."""
    from cockpit.widgets.live_line import LiveLine

    app, plan = make_app(tmp_path, tasks=(), live=True)  # the live task thinks for 2 s
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine is not None, what="the engine")
        live = app.screen.query_one("#live", LiveLine)
        log = app.screen.query_one("#log", EventLog)
        growing = await wait_for(
            pilot, lambda: live.kind == "thinking" and live.display and live.text,
            what="live thinking",
        )
        assert growing and "thinking…" in str(live.render()) and "💭" not in log_text(log)
        first = len(live.text)
        await wait_for(pilot, lambda: len(live.text) > first or "💭" in log_text(log),
                       what="the thought to grow")
        await wait_for(pilot, lambda: "💭" in log_text(log), what="the stored thinking")
        await idle(pilot)
        assert not live.text and not live.has_class("-streaming")
        await pilot.press("t")  # unfolded, the live line shows the words themselves
        assert live.show_thinking
