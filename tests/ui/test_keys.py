"""Keys the k9s/lazygit way: `?` tells them, `q` quits (asking when work is live), Enter
drills into any row, `/` filters any table, the tab bar is clickable, and typing lands in
the task field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.widgets import Input

from cockpit.demo import TASKS
from cockpit.help import _bindings, quit_question
from cockpit.panels import PANELS
from cockpit.widgets import EventLog, KeyedTable
from cockpit.widgets.confirm import Confirm
from cockpit.widgets.detail_view import DetailView
from cockpit.widgets.help_overlay import HelpOverlay
from cockpit.widgets.nav_bar import Tabs

from .support import idle, make_app, open_panel, panel_text, part, ready, task_state, wait_for

SIZE = (120, 40)
FIXED, CHANGELOG, MIGRATE, VALIDATE, CLEAN = TASKS


async def type_text(pilot: Any, text: str) -> None:
    await pilot.press(*["space" if ch == " " else ch for ch in text])


# -- help --------------------------------------------------------------------------------
PANEL_KEY = {"tasks": "New task", "active": "Pause/resume", "approvals": "Approve all of kind",
             "learnings": "the learning in full", "capabilities": "Allow",
             "history": "Rollback", "improve": "Accept", "health": "Ping model",
             "safety": "Verify audit", "metrics": "Everywhere"}


async def test_question_mark_and_f1_list_the_panels_keys_and_the_global_ones(
        tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED,))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        for n, panel in enumerate(PANELS):
            await pilot.press("escape", panel.key)
            await idle(pilot)
            await pilot.press("question_mark" if n % 2 else "f1")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpOverlay), what="help")
            await pilot.pause(0.1)
            text = panel_text(app)
            assert PANEL_KEY[panel.mode] in text, (panel.mode, text)
            for key, what in (("q", "Quit"), ("^x", "STOP"), ("w", "Next waiting request")):
                assert key in text and what in text, (panel.mode, what)
            # Every key it lists is bound to an action that exists.
            for section, rows in app.screen.sections:
                assert rows or section == "This panel: Charts & Metrics"
            panel_screen = app.screen_stack[0]
            # It lists what the footer offers: no Filter, no table keys, where no table is.
            (_, own), *rest = app.screen.sections
            offered = panel_screen.check_action("filter", ()) is not False
            assert offered == any(what == "Filter" for _, what in own), panel.mode
            assert ("Tables" in dict(rest)) == bool(panel_screen.query(KeyedTable)), panel.mode
            if panel.mode == "metrics":
                assert not offered and "Tables" not in dict(rest)
            for node in (panel_screen, app):
                for binding in _bindings(node):
                    if binding.description:
                        action = binding.action.split("(")[0]
                        target = app if action.startswith("app.") else (
                            panel_screen if action.startswith("screen.") else node)
                        action = action.removeprefix("app.").removeprefix("screen.")
                        assert callable(getattr(target, f"action_{action}", None)), binding
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, HelpOverlay), what="closed")


# -- quit --------------------------------------------------------------------------------
async def test_q_quits_at_once_when_nothing_is_live(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await pilot.press("escape", "q")
        await wait_for(pilot, lambda: app._exit, what="the cockpit to quit")


async def test_q_with_work_waiting_asks_first_and_says_what_happens(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(VALIDATE,))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        [task_id] = plan.task_ids
        await pilot.press("escape", "q")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
        text = panel_text(app)
        assert "Quit Liv Hana Cockpit?" in text
        assert "1 task of this cockpit is interrupted" in text and "checkpointed" in text
        await pilot.press("n")
        await pilot.pause(0.2)
        assert not app._exit and await task_state(app, task_id) == "awaiting_approval"
        await pilot.press("ctrl+q")  # the other quit key asks the same
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="asked again")
        await pilot.press("y")
        await wait_for(pilot, lambda: app._exit, what="the cockpit to quit")


def test_the_quit_question_says_a_daemons_tasks_go_on() -> None:
    live = [{"id": "a1", "engine_id": "tui-1", "state": "running"},
            {"id": "b2", "engine_id": "daemon-9", "state": "awaiting_approval"}]
    waiting = [{"id": 4, "task_id": "b2"}]
    text = quit_question(live, waiting, "tui-1")
    assert "1 task of this cockpit is interrupted" in text
    assert "1 task of another engine (a daemon or a `run`) goes on" in text
    assert "1 request still waits for you" in text


# -- enter drills in ---------------------------------------------------------------------
async def test_enter_on_active_tasks_opens_the_selected_task_not_the_watched_one(
        tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(VALIDATE, CLEAN), live=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        validate, clean = plan.task_ids
        await open_panel(pilot, "1")
        await idle(pilot)
        assert app.screen.selected == clean  # Task Execution watches the newest
        await pilot.press("2")
        await idle(pilot)
        table = app.screen.query_one("#live", KeyedTable)
        table.focus()
        table.select_key(validate)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "tasks", what="Task Execution")
        await idle(pilot)
        await pilot.pause(1.2)  # a refresh or two later it still shows the chosen one
        assert app.screen.selected == validate
        assert "Validate prices" in panel_text(app)
        assert isinstance(app.focused, EventLog)


async def test_enter_on_history_opens_task_execution_and_t_unfolds_its_replay(
        tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED, MIGRATE))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        fixed, _migrate = plan.task_ids
        await open_panel(pilot, "6")
        await idle(pilot)
        table = app.screen.query_one("#ended", KeyedTable)
        table.select_key(fixed)
        log = app.screen.query_one("#replay", EventLog)
        await wait_for(pilot, lambda: log.task_id == fixed and len(log.lines) > 3,
                       what="the highlighted task replayed")
        assert "t to unfold" in "\n".join(line.text for line in log.lines)
        await pilot.press("t")
        await wait_for(pilot, lambda: "t to unfold" not in "\n".join(
            line.text for line in log.lines), what="thinking unfolded")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "tasks", what="Task Execution")
        await pilot.pause(1.2)
        assert app.screen.selected == fixed


async def test_enter_on_a_request_shows_the_whole_diff_full_screen(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(VALIDATE,))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, plan)
        [request] = await app.engine.pending_approvals()
        await open_panel(pilot, "3")
        await idle(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailView), what="the diff")
        await pilot.pause(0.2)
        last = request["detail"]["diff"].rstrip().splitlines()[-1]
        scroll = app.screen.query_one("#detail-scroll")
        body = str(app.screen.query_one("#detail-body").render())
        assert last in body and "+++ b/shopcart/pricing.py" in body
        assert scroll.max_scroll_y > 0  # longer than the screen: it scrolls
        await pilot.press("end")
        await pilot.pause(0.2)
        assert scroll.scroll_offset.y == scroll.max_scroll_y
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.current_mode == "approvals"
                       and not isinstance(app.screen, DetailView), what="back")


async def test_enter_drills_in_on_learnings_tools_and_spenders(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED, MIGRATE))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        fixed, _migrate = plan.task_ids
        for key, table_id, expect in (("4", "#learned", "taught by"),
                                      ("5", "#tools", "input schema")):
            await pilot.press(key)
            await idle(pilot)
            app.screen.query_one(table_id, KeyedTable).focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailView), what=table_id)
            assert expect in panel_text(app)
            await pilot.press("escape")
            await pilot.pause(0.1)
        # (Health's failures table drills in the same way; no demo task here fails.)
        for key, table_id, task in (("9", "#spenders", fixed),):
            await pilot.press(key)
            await idle(pilot)
            table = app.screen.query_one(table_id, KeyedTable)
            await wait_for(pilot, lambda t=table, k=task: k in {r.value for r in t.rows},
                           what=f"{task} in {table_id}")
            table.focus()
            table.select_key(task)
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.current_mode == "tasks", what="Task Execution")
            await wait_for(pilot, lambda t=task: app.screen.selected == t, what="that task")


# -- the log: Enter on a step ------------------------------------------------------------
async def test_enter_on_a_step_opens_its_whole_output(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED,))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        log = app.screen.query_one("#log", EventLog)
        await wait_for(pilot, lambda: any(ev["type"] == "complete" for ev in log.events),
                       what="the task's events")
        long = next(ev for ev in log.events if ev["type"] == "tool_result"
                    and len(str(ev.get("output")).splitlines()) > 6)
        tail = str(long["output"]).strip().splitlines()[-1]
        assert tail not in "\n".join(line.text for line in log.lines)  # the log shows 6 lines
        log.focus()
        log.choose(long["seq"] - 1)  # its step line
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailView), what="the output")
        body = str(app.screen.query_one("#detail-body").render())
        assert tail.strip() in body and f"step {long['step']}" in body
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, DetailView), what="back")
        assert app.focused is log


# -- `/` filters every table -------------------------------------------------------------
async def test_slash_filters_the_tables_of_every_panel(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(VALIDATE, CLEAN))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        for key, table_id, needle in (("2", "#live", "Clean"), ("3", "#queue", "rm -rf"),
                                      ("5", "#tools", "bash"), ("8", "#engines", "tui")):
            await pilot.press(key)
            await idle(pilot)
            table = await part(pilot, table_id, KeyedTable)
            await wait_for(pilot, lambda t=table: t.row_count, what=f"rows in {table_id}")
            table.focus()
            total = table.row_count
            await pilot.press("slash")
            await type_text(pilot, needle)
            await pilot.pause(0.1)
            assert 1 <= table.row_count < total or (total == 1 and table.row_count == 1), key
            for row in table.rows:
                assert needle.lower() in " ".join(map(str, table.row_cells(row.value))).lower()
            await pilot.press("enter")
            assert app.focused is table  # Enter keeps the filter and goes back to the rows
            assert table.filter_text == needle
            await pilot.press("slash", "escape")
            assert table.row_count == total and app.focused is table


# -- mouse: the tab bar ------------------------------------------------------------------
async def test_a_click_on_a_tab_switches_panel(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        top = panel_text(app).splitlines()[0]
        for label, mode in (("3 Approvals", "approvals"), ("0 Metrics", "metrics")):
            x = top.index(label) + 2
            await pilot.click(Tabs, offset=(x, 0))
            await wait_for(pilot, lambda m=mode: app.current_mode == m, what=mode)
            top = panel_text(app).splitlines()[0]


# -- typing lands in the task field (issue 13) -------------------------------------------
async def test_typing_on_a_fresh_cockpit_goes_into_the_task_field(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await pilot.pause(2)
        task = "find and fix the regression in more_itertools, then run the tests"
        await type_text(pilot, task)
        field = app.screen.query_one("#title", Input)
        assert field.value == task
        assert app.current_mode == "tasks" and not isinstance(app.screen, Confirm)
        assert not app.screen.query_one("#log", EventLog).show_thinking  # `t` did not fire


async def test_a_letter_typed_on_the_task_list_starts_a_task(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED,))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await idle(pilot)
        assert isinstance(app.focused, KeyedTable)  # a task is shown: its list has the keys
        await type_text(pilot, "find the bug")
        assert app.screen.query_one("#title", Input).value == "find the bug"


async def test_escape_and_a_letter_typed_quickly_are_not_typed_into_the_field(
        tmp_path: Path) -> None:
    """A terminal sends Escape then q, typed in quick succession, as alt+q: that is no
    letter of a task (it was typed into the field, and q did not quit)."""
    app, plan = make_app(tmp_path, tasks=(FIXED,))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await idle(pilot)
        assert isinstance(app.focused, KeyedTable)
        for letter in "qt":  # as a terminal's parser reports them: alt+q with character q
            app.post_message(events.Key(f"alt+{letter}", letter))
        await idle(pilot)
        assert app.screen.query_one("#title", Input).value == ""


async def test_after_submit_the_focus_leaves_the_task_field(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        field = app.screen.query_one("#title", Input)
        assert app.focused is field  # fresh store: the field has focus on open
        await type_text(pilot, "Add a CHANGELOG for 0.1.1")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.selected is not None, what="submitted")
        await wait_for(pilot, lambda: isinstance(app.focused, KeyedTable), what="focus moved")
        assert field.value == ""
        await pilot.press("n")  # the footer's `n` means New task again, not a letter
        assert app.focused is field and field.value == ""


async def test_a_task_refused_by_the_stop_asks_before_it_is_submitted_again(
        tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await pilot.press("ctrl+x")
        await wait_for(pilot, lambda: app.engine.stopped, what="stopped")
        field = app.screen.query_one("#title", Input)
        field.focus()
        await type_text(pilot, "Add a CHANGELOG for 0.1.1")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "refused" in panel_text(app), what="refused")
        assert field.value == "Add a CHANGELOG for 0.1.1"  # nothing lost
        await app.action_rearm()
        field.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="asked")
        assert "refused during the emergency stop" in panel_text(app)
        await pilot.press("n")
        await pilot.pause(0.3)
        assert await app.engine.list() == []  # not submitted
        field.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="asked again")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen.selected is not None, what="submitted")
        assert field.value == ""


@pytest.mark.parametrize("keys", [("4",), ("escape", "4")])
async def test_digits_switch_panels_once_the_field_is_left(tmp_path: Path,
                                                          keys: tuple[str, ...]) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await pilot.press(*keys)
        if keys == ("4",):  # the field has focus on a fresh cockpit: 4 is typed
            assert app.current_mode == "tasks"
            assert app.screen.query_one("#title", Input).value == "4"
        else:
            assert app.current_mode == "learnings"
