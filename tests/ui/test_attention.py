"""A request that starts waiting gets the operator's attention on any panel: a toast, the
bell, a desktop notification; the queue puts it where the eye goes; `w` gets there."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.attention import notify_protocol, notify_sequence
from cockpit.demo import TASKS
from cockpit.widgets import KeyedTable

from .support import idle, make_app, open_panel, panel_text, part, ready, wait_for

SIZE = (120, 40)
FIXED, CHANGELOG, MIGRATE, VALIDATE, CLEAN = TASKS


def test_the_desktop_notification_speaks_the_terminals_dialect() -> None:
    assert notify_protocol({"TERM_PROGRAM": "iTerm.app"}) == "osc9"
    assert notify_protocol({"TERM": "xterm-kitty"}) == "osc9"
    assert notify_protocol({"TERM": "foot"}) == "osc777"
    assert notify_protocol({"TERM_PROGRAM": "WezTerm"}) == "osc777"
    assert notify_protocol({"VTE_VERSION": "7200"}) == "osc777"
    assert notify_protocol({"TERM": "xterm-256color"}) is None  # unknown: nothing sent
    seq = notify_sequence("Liv Hana", "#3 command\x07: rm -rf", {"TERM": "foot"})
    assert seq == "\x1b]777;notify;Liv Hana;#3 command : rm -rf\x07"  # no early terminator
    assert notify_sequence("t", "b", {"TERM_PROGRAM": "iTerm.app"}) == "\x1b]9;t: b\x07"
    wrapped = notify_sequence("t", "b", {"TERM": "foot", "TMUX": "/tmp/tmux-0/default,1,0"})
    assert wrapped == "\x1bPtmux;\x1b\x1b]777;notify;t;b\x07\x1b\\"  # tmux passthrough


async def test_a_new_request_toasts_rings_and_notifies_on_another_panel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM_PROGRAM", "WezTerm")
    app, plan = make_app(tmp_path, tasks=(FIXED,))  # one task: auto-approved, no bell
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot, plan)
        await pilot.press("escape", "4")  # the operator reads Learnings
        await idle(pilot)
        await pilot.pause(0.6)
        assert app.attention.rung == 0  # an auto-approved apply never waited for anyone
        assert "Approval needed" not in panel_text(app)
        task_id = await app.engine.submit(CLEAN[0], app.workspace, approve="ask")
        await wait_for(pilot, lambda: "Approval needed" in panel_text(app), what="a toast")
        text = panel_text(app)
        assert "command" in text and "rm -rf build" in text and "w to review" in text
        assert app.current_mode == "learnings"  # nothing took the operator elsewhere
        assert app.attention.rung == 1
        assert len(app.attention.sent) == 1 and app.attention.sent[0].startswith("\x1b]777;")
        # Seen once, announced once: later refreshes of the same request stay quiet.
        await pilot.pause(1.2)
        assert app.attention.rung == 1
        await app.engine.cancel(task_id)


async def test_bell_and_desktop_notification_follow_the_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM_PROGRAM", "iTerm.app")
    app, plan = make_app(tmp_path, tasks=())
    app.config.ui.bell = False
    app.config.ui.desktop_notify = False
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot, plan)
        task_id = await app.engine.submit(CLEAN[0], app.workspace, approve="ask")
        await wait_for(pilot, lambda: "Approval needed" in panel_text(app), what="a toast")
        assert app.attention.rung == 0 and app.attention.sent == []  # the toast only
        await app.engine.cancel(task_id)


def _order(table: KeyedTable) -> list[str]:
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value)
            for i in range(table.row_count)]


async def test_the_queue_lists_pending_first_oldest_first_and_follows_new_ones(
        tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(VALIDATE, CLEAN))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot, plan)
        first = {a["kind"]: a for a in await app.engine.pending_approvals()}
        apply_id, command_id = str(first["apply"]["id"]), str(first["command"]["id"])
        await app.engine.decide(int(apply_id), False, by="operator")  # decided: goes below
        await open_panel(pilot, "3")
        await idle(pilot)
        table = await part(pilot, "#queue", KeyedTable)
        await wait_for(pilot, lambda: _order(table) == [command_id, apply_id], what="order")
        assert table.selected_key == command_id
        table.move_cursor(row=1)  # the operator looks at the decided one
        await pilot.pause(0.3)
        assert table.selected_key == apply_id
        # A new request arrives: listed after the older pending one, before the decided,
        # and the cursor goes to the first pending one.
        again = await app.engine.submit(CLEAN[0], app.workspace, approve="ask")
        await wait_for(pilot, lambda: len(_order(table)) == 3, what="the new request")
        new_id = next(k for k in _order(table) if k not in (apply_id, command_id))
        assert _order(table) == [command_id, new_id, apply_id]
        assert table.selected_key == command_id
        await app.engine.cancel(again)


async def test_w_jumps_to_the_next_waiting_request_from_any_panel(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(VALIDATE, CLEAN))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot, plan)
        pending = sorted(await app.engine.pending_approvals(), key=lambda a: a["created_at"])
        ids = [str(a["id"]) for a in pending]
        await pilot.press("escape", "5")
        await idle(pilot)
        await pilot.press("w")
        await wait_for(pilot, lambda: app.current_mode == "approvals", what="the queue")
        await idle(pilot)
        table = await part(pilot, "#queue", KeyedTable)
        await wait_for(pilot, lambda: table.selected_key == ids[0], what="the first waiting")
        await pilot.press("w")
        assert table.selected_key == ids[1]
        await pilot.press("w")
        assert table.selected_key == ids[0]  # round again
        assert app.focused is table
        assert "⚑2 w" in panel_text(app).splitlines()[0]  # the top bar names the key


async def test_active_tasks_marks_and_lists_first_the_tasks_waiting_for_the_operator(
        tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(VALIDATE,), live=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot, plan)
        waiting, live = plan.task_ids
        await open_panel(pilot, "2")
        await idle(pilot)
        table = await part(pilot, "#live", KeyedTable)
        await wait_for(pilot, lambda: table.row_count == 2, what="both live tasks")
        assert _order(table)[0] == waiting
        assert str(table.get_cell(waiting, "ID")).startswith("⚑")
        assert not str(table.get_cell(live, "ID")).startswith("⚑")
        assert "⚑ 1 waiting for you (w)" in panel_text(app)
