"""Any terminal from 80x24 up: tables drop columns in their declared order with a sign,
logs re-wrap and stay where the reader put them, the top bar keeps its counters, the
footer keeps help and quit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.app import App, ComposeResult

from cockpit.panels import PANELS
from cockpit.widgets import EventLog, KeyedTable
from cockpit.widgets.keyed_table import HIDDEN_KEY, Col
from cockpit.widgets.nav_bar import Counters

from .support import idle, make_app, panel_text, ready, wait_for


class Host(App[None]):
    def __init__(self, widget: Any) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


def _labels(table: KeyedTable) -> list[str]:
    return [str(c.label) for c in table.columns.values()]


async def test_a_narrow_table_drops_columns_in_order_and_says_how_many() -> None:
    table = KeyedTable(("ID", 8), Col("Cost", 8, drop=1), "Task", Col("When", 10, drop=2),
                       ("State", 10), flex="Task", flex_min=10)
    async with Host(table).run_test(size=(80, 10)) as pilot:
        table.sync({"a": ("a1", "$1", "fix the thing", "12:00", "done")})
        await pilot.pause()
        assert _labels(table) == ["ID", "Cost", "Task", "When", "State"]
        assert table.hidden_columns == []
        await pilot.resize_terminal(45, 10)
        await pilot.pause()
        # 8+8+10+10+10 and padding do not fit 45: Cost goes first, then When.
        assert table.hidden_columns == ["Cost", "When"]
        assert _labels(table) == ["ID", "Task", "State", "+2"]
        assert "…" in str(table.get_cell("a", HIDDEN_KEY))
        assert str(table.get_cell("a", "State")) == "done"
        await pilot.resize_terminal(80, 10)
        await pilot.pause()
        assert table.hidden_columns == [] and HIDDEN_KEY not in table.columns
        assert str(table.get_cell("a", "Cost")) == "$1"  # nothing was lost meanwhile


async def test_a_row_new_at_the_top_is_shown_at_the_top() -> None:
    table = KeyedTable("Name", "When")
    async with Host(table).run_test() as pilot:
        table.sync({"b": ("beta", "11:00"), "a": ("alpha", "10:00")})
        await pilot.pause()
        table.move_cursor(row=1)
        table.sync({"c": ("gamma", "12:00"), "b": ("beta", "11:00"), "a": ("alpha", "10:00")})
        order = [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(3)]
        assert order == ["c", "b", "a"]  # newest first, as given: not appended at the bottom
        assert table.selected_key == "a"


async def test_the_filter_keeps_matching_rows_and_gives_the_rest_back() -> None:
    table = KeyedTable("Name", Col("Note", 10, drop=1))
    async with Host(table).run_test(size=(80, 10)) as pilot:
        table.sync({"a": ("alpha", "red"), "b": ("beta", "blue"), "c": ("gamma", "[b]red[/]")})
        await pilot.pause()
        table.set_filter("RED")
        assert list(table.rows) and [k.value for k in table.rows] == ["a", "c"]
        table.sync({"a": ("alpha", "red"), "b": ("beta", "red"), "c": ("gamma", "x")})
        assert [k.value for k in table.rows] == ["a", "b"]  # a sync applies it too
        table.set_filter("")
        assert [k.value for k in table.rows] == ["a", "b", "c"]


def _event(seq: int, text: str) -> dict[str, Any]:
    return {"task_id": "t", "seq": seq, "ts": 0, "type": "text", "text": text}


async def test_log_lines_rewrap_when_the_pane_is_resized() -> None:
    log = EventLog()
    long = " ".join(f"word{n}" for n in range(60))
    async with Host(log).run_test(size=(120, 30)) as pilot:
        log.add([_event(1, long), _event(2, "short")])
        await pilot.pause()
        wide = len(log.lines)
        await pilot.resize_terminal(60, 30)
        await wait_for(pilot, lambda: len(log.lines) > wide, what="re-wrapped narrower")
        width = log.scrollable_content_region.width
        assert all(line.cell_length <= width for line in log.lines)
        assert "word59" in "".join(line.text for line in log.lines)  # nothing cut off
        await pilot.resize_terminal(120, 30)
        await wait_for(pilot, lambda: len(log.lines) == wide, what="re-wrapped wider")


async def test_home_stays_at_the_top_while_the_task_writes_and_end_follows_again() -> None:
    log = EventLog()
    async with Host(log).run_test(size=(80, 20)) as pilot:
        log.add([_event(n, f"line {n}") for n in range(1, 100)])
        log.focus()
        await pilot.pause()
        assert log.scroll_offset.y == log.max_scroll_y > 0  # it follows the end
        await pilot.press("home")
        await pilot.pause()
        log.add([_event(n, f"line {n}") for n in range(100, 140)])
        await pilot.pause()
        assert log.scroll_offset.y == 0  # still at the top: the reader is reading
        for _ in range(3):
            log.post_message(events.MouseScrollDown(log, 1, 1, 0, 1, 0, False, False, False))
        await pilot.pause(0.2)
        assert 0 < log.scroll_offset.y < log.max_scroll_y  # the mouse scrolls the log
        log.add([_event(140, "more")])
        await pilot.pause()
        assert log.scroll_offset.y < log.max_scroll_y  # and new lines do not yank it back
        await pilot.press("end")
        log.add([_event(n, f"line {n}") for n in range(141, 160)])
        await pilot.pause()
        assert log.scroll_offset.y == log.max_scroll_y  # at the end it follows again


async def test_enter_on_a_chosen_event_asks_for_it_in_full() -> None:
    log = EventLog()
    opened: list[dict[str, Any]] = []

    class Catcher(Host):
        def on_event_log_open(self, message: EventLog.Open) -> None:
            opened.append(message.event)

    async with Catcher(log).run_test(size=(80, 20)) as pilot:
        log.add([{"task_id": "t", "seq": 1, "ts": 0, "type": "step", "step": 1,
                  "action": "run_tests", "target": "make test"},
                 {"task_id": "t", "seq": 2, "ts": 0, "type": "tool_result", "step": 1,
                  "output": "\n".join(f"FAIL test_{n}" for n in range(40))},
                 _event(3, "done")])
        log.focus()
        await pilot.pause()
        await pilot.press("up", "up", "enter")
        await pilot.pause()
        assert [ev["seq"] for ev in opened] == [2]
        assert log.cursor == 2


SIZES = [(80, 24), (100, 30), (120, 40)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_top_bar_keeps_pending_and_halted_and_footer_keeps_help_and_quit(
        tmp_path: Path, size: tuple[int, int]) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=size) as pilot:
        await ready(pilot, plan)
        twelve = [{"id": n, "task_id": "t", "kind": "command", "summary": "x", "risk": "low",
                   "created_at": 0.0} for n in range(100, 112)]

        async def waiting() -> list[dict[str, Any]]:
            return twelve

        app.engine.pending_approvals = waiting  # twelve requests wait (as the store says)
        app._signature = None
        await wait_for(pilot, lambda: app.pending_count == 12, what="twelve waiting")
        await pilot.press("ctrl+x")
        await wait_for(pilot, lambda: app.halted, what="halted")
        for panel in PANELS:
            await pilot.press("escape", panel.key)
            await wait_for(pilot, lambda p=panel: app.current_mode == p.mode, what=panel.mode)
            await idle(pilot)
            lines = panel_text(app).splitlines()
            top, bottom = lines[0], lines[-1]
            assert "⚑12" in top and "■ HALTED" in top, (panel.mode, top)
            assert top.rstrip().endswith(("HALTED", "demo")), top  # nothing cut at the right
            assert "? Help" in bottom and "q Quit" in bottom and "STOP" in bottom, bottom
        counters = app.screen.query_one(Counters)
        assert counters.region.right <= size[0]


@pytest.mark.parametrize("panel", PANELS, ids=[p.mode for p in PANELS])
async def test_every_panel_is_usable_at_80x24(tmp_path: Path, panel: Any) -> None:
    """What each panel is for is on screen (or one scroll away) at 80x24."""
    must = {
        "tasks": ["What should the agent do?", "Submit", "ask: I approve"],
        "active": ["live ·", "Elapsed"],
        "approvals": ["pending ·", "Summary"],
        "learnings": ["search learnings", "Learning", "State", "Used", "Effect"],
        "capabilities": ["Policy", "input schema"],
        "history": ["Outcome", "replay"],
        "improve": ["Proposals", "Learnings: measured effect", "Schedules"],
        "health": ["Model", "Event loop"],
        "safety": ["EMERGENCY STOP", "Top spenders", "Verify audit chain", "Re-arm"],
        "metrics": ["Tasks per day", "Success rate %", "Working / waiting (s)", "Cost per day",
                    "Learnings accumulated", "Last 14 days"],
    }[panel.mode]
    app, plan = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, plan)
        await pilot.press("escape", panel.key)
        await idle(pilot)
        await pilot.pause(0.3)
        text = panel_text(app)
        missing = [m for m in must if m not in text]
        assert not missing, f"{panel.mode} lacks {missing} at 80x24:\n{text}"
        if panel.mode == "health":  # the rest is one scroll away
            app.screen.query_one("#health-body").scroll_end(animate=False)
            await pilot.pause(0.2)
            assert "Recent failures" in panel_text(app)


async def test_the_task_form_stacks_above_the_stream_when_narrow(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, plan)
        form, stream = (app.screen.query_one(s).region for s in ("#compose", "#stream-pane"))
        assert form.x < stream.x and form.y == stream.y  # side by side
        await pilot.resize_terminal(80, 24)
        await idle(pilot)
        await pilot.pause(0.2)
        form, stream = (app.screen.query_one(s).region for s in ("#compose", "#stream-pane"))
        assert form.bottom <= stream.y and stream.width >= 76  # stacked, the log full width
        recent = app.screen.query_one("#recent", KeyedTable)
        assert recent.region.height >= 5  # header and four tasks, not two
        log = app.screen.query_one("#log", EventLog)
        assert log.region.height >= 6
