"""The cockpit's building blocks: bounded event view, keyed tables, themes, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult

from cockpit.themes import load_theme, load_themes
from cockpit.widgets import EventLog, KeyedTable
from cockpit.widgets.event_log import render

ROOT = Path(__file__).resolve().parents[2]


class Host(App[None]):
    def __init__(self, widget: Any) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


async def test_event_log_stays_bounded_however_long_the_task_runs() -> None:
    log = EventLog(max_lines=100)
    async with Host(log).run_test() as pilot:
        for start in range(0, 20_000, 500):
            log.add([{"task_id": "t", "seq": n + 1, "ts": 0, "type": "text", "text": f"line {n}"}
                     for n in range(start, start + 500)])
        await pilot.pause()
        assert len(log.events) == 100
        assert len(log.lines) <= 100
        assert log.events[-1]["seq"] == 20_000
        log.add([{"task_id": "t", "seq": 5, "ts": 0, "type": "text", "text": "old"}])
        assert log.events[-1]["seq"] == 20_000  # replayed events already shown are skipped


async def test_thinking_is_folded_until_asked() -> None:
    event = {"task_id": "t", "seq": 1, "ts": 0, "type": "thinking", "text": "secret plan " * 20}
    assert "secret" not in render(event).plain
    assert "secret plan" in render(event, show_thinking=True).plain
    log = EventLog()
    async with Host(log).run_test() as pilot:
        log.add([event])
        log.toggle_thinking()
        await pilot.pause()
        assert any("secret plan" in line.text for line in log.lines)


async def test_every_event_type_renders_one_line_without_markup_errors() -> None:
    types = ["analysis", "thinking", "text", "plan", "step", "tool_result", "progress",
             "approval_requested", "approval_decided", "verification", "usage", "learning",
             "rollback", "checkpoint", "status", "warning", "error", "complete", "novel"]
    for kind in types:
        line = render({"task_id": "t", "seq": 1, "ts": 0, "type": kind, "text": "[bold]x[/",
                       "summary": "[red]", "message": "a [b] c", "steps": [{"title": "[x]"}]})
        assert line is not None and line.plain


async def test_keyed_table_changes_only_the_cells_that_changed() -> None:
    table = KeyedTable("Name", "State")
    async with Host(table).run_test() as pilot:
        table.sync({"a": ("alpha", "queued"), "b": ("beta", "queued")})
        await pilot.pause()
        table.move_cursor(row=1)
        calls: list[tuple[str, str, Any]] = []
        original = table.update_cell

        def counting(row: Any, column: Any, value: Any, **kw: Any) -> None:
            calls.append((row, column, str(value)))
            original(row, column, value, **kw)

        table.update_cell = counting  # type: ignore[method-assign]
        table.sync({"a": ("alpha", "running"), "b": ("beta", "queued"), "c": ("gamma", "queued")})
        assert calls == [("a", "State", "running")]
        assert table.selected_key == "b"  # the cursor stays on its row
        table.sync({"b": ("beta", "queued"), "c": ("gamma", "queued")})
        assert table.row_count == 2 and table.selected_key == "b"
        table.sync({"c": ("gamma", "queued"), "b": ("beta", "queued")})  # new order: rebuilt
        assert [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(2)] == ["c", "b"]
        assert table.selected_key == "b"


def test_themes_load_from_files_dark_and_light() -> None:
    themes = {t.name: t for t in load_themes()}
    assert themes["livhana-dark"].dark and not themes["livhana-light"].dark


def test_a_broken_theme_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text('primary = "#123456"\n')
    (tmp_path / "bad.toml").write_text('primary = "#123456"\nsparkle = true\n')
    (tmp_path / "worse.toml").write_text("not toml [")
    assert [t.name for t in load_themes(tmp_path)] == ["good"]
    assert load_theme(tmp_path / "good.toml").primary == "#123456"


def test_the_first_frame_needs_no_heavy_sdk() -> None:
    code = ("import sys, cockpit.app, cockpit.demo, cockpit.screens.task_execution;"
            "from cockpit.panels import PANELS;"
            "[p.factory() for p in PANELS];"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('anthropic', 'google')];"
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_learning_line_says_what_was_learned() -> None:
    event = {"task_id": "t", "seq": 1, "ts": 0, "type": "learning",
             "patterns": ["prefer small diffs", "run the tests first"],
             "improvements": ["cache the analysis"], "nextSteps": []}
    line = render(event).plain
    assert line.startswith("◆ learned 2 patterns, 1 improvement:")
    assert "prefer small diffs" in line
    empty = render({**event, "patterns": [], "improvements": []}).plain
    assert empty.strip() != "◆ learning" and "nothing new" in empty


def test_tool_output_keeps_its_first_lines() -> None:
    output = "\n".join(f"line {n}" for n in range(1, 11))
    text = render({"task_id": "t", "seq": 1, "ts": 0, "type": "tool_result", "output": output,
                   "is_error": False, "changed": []}).plain
    lines = text.splitlines()
    assert lines[0] == "  ↳ line 1"
    assert lines[1:6] == [f"    line {n}" for n in range(2, 7)]
    assert lines[6] == "    … 4 more lines" and len(lines) == 7


def test_escape_then_a_digit_reads_as_alt_digit_not_a_symbol() -> None:
    import time

    from textual import constants
    from textual._xterm_parser import XTermParser

    import cockpit.app  # noqa: F401  (the cockpit sets the parser up on import)

    parser = XTermParser()
    keys = list(parser.feed("\x1b3"))
    time.sleep(constants.ESCAPE_DELAY + 0.05)  # the parser's wait for more of a sequence
    keys += parser.tick()
    assert [(k.key, k.character) for k in keys] == [("alt+3", "3")]  # not "£" typed
    assert [k.key for k in parser.feed("£")] == ["pound_sign"]  # a typed £ is still text


async def test_a_live_batch_ahead_of_the_log_waits_for_the_missing_events(
    engine_factory: Any, repo: Path
) -> None:
    """A panel coming back gets the tail of a task's stream as a live batch before its
    catch-up from the store has started: the log must not jump ahead and skip the middle
    (the plan bar stayed at 33% on a finished task)."""
    from agent.models.scripted import ScriptedModel

    read = {"tool_calls": [{"name": "read_file", "input": {"path": "app.py"}}]}
    engine = await engine_factory(lambda spec: ScriptedModel([{"match": ".", "turns": [read]}]))
    task_id = await engine.submit("look", repo, approve="auto")
    await engine.wait(task_id)
    stored = await engine.events(task_id)
    log = EventLog()
    async with Host(log).run_test() as pilot:
        log.follow(task_id)
        log.add(stored[:2])  # seen before the panel was left
        assert log.feed(stored[-2:]) == []  # the tail came first: held, not shown
        assert log.needs_catch_up
        added = await log.catch_up(engine)
        await pilot.pause()
        assert [e["seq"] for e in log.events] == [e["seq"] for e in stored]  # whole, in order
        assert [e["seq"] for e in added] == [e["seq"] for e in stored[2:]]
        assert not log.needs_catch_up
        assert log.feed([{**stored[-1]}]) == []  # a repeat is still skipped
