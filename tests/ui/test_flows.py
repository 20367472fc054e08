"""Pilot tests of the operator's flows, on the real engine with the demo's scripted model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.widgets import Input, Select

from agent.config import load_config
from agent.errors import StopActive
from cockpit.app import CockpitApp
from cockpit.demo import WORKSPACE
from cockpit.widgets import EventLog, KeyedTable
from cockpit.widgets.halt_banner import HaltBanner

from .support import idle, make_app, open_panel, panel_text, ready, task_state, wait_for

SIZE = (120, 40)


async def type_text(pilot, text: str) -> None:
    await pilot.press(*["space" if ch == " " else ch for ch in text])


async def test_submit_a_task_and_see_it_finish(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await pilot.press("n")
        await type_text(pilot, "Summarise the ")
        app.screen.query_one("#title", Input).insert_text_at_cursor("[b]project[/]")  # markup-like
        app.screen.query_one("#approve", Select).value = "auto"
        await pilot.press("enter")
        tasks = await wait_for(pilot, lambda: app.screen.selected, what="the new task selected")
        await wait_for(pilot, lambda: "complete" in "\n".join(
            str(line.text) for line in app.screen.query_one("#log", EventLog).lines), what="complete")
        assert await task_state(app, tasks) == "succeeded"
        await idle(pilot)
        text = panel_text(app)
        assert "Summarise the [b]project[/]" in text and "succeeded" in text
        assert app.screen.query_one("#title", Input).value == ""


async def test_digits_type_into_a_field_and_escape_leaves_it(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        # A fresh cockpit puts the focus in the task field: Escape leaves it.
        await pilot.press("escape", "3")
        assert app.current_mode == "approvals"
        await pilot.press("1", "n", "3", "2")
        assert app.current_mode == "tasks"
        assert app.screen.query_one("#title", Input).value == "32"
        await pilot.press("escape", "3")
        assert app.current_mode == "approvals"


async def _approvals(app) -> dict[str, dict]:
    return {a["kind"]: a for a in await app.engine.pending_approvals()}


async def test_approve_from_the_queue(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        apply = (await _approvals(app))["apply"]
        await open_panel(pilot, "3")
        await idle(pilot)
        table = app.screen.query_one("#queue", KeyedTable)
        assert table.selected_key == str(apply["id"])  # oldest first
        await pilot.press("a")
        await wait_for(pilot, lambda: "approved by operator" in panel_text(app), what="decision shown")
        task_id = apply["task_id"]
        await wait_for(pilot, lambda: app.engine and app.engine.state_of(task_id) == "succeeded",
                       what="task applied")
        workspace = Path(app.workspace)
        assert "negative price" in (workspace / "shopcart" / "pricing.py").read_text()


async def test_deny_from_the_queue(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        command = (await _approvals(app))["command"]
        await open_panel(pilot, "3")
        await idle(pilot)
        await pilot.press("down", "d")
        await wait_for(pilot, lambda: "denied by operator" in panel_text(app), what="denial shown")
        rows = await app.engine.store.approvals("denied")
        assert [r["id"] for r in rows] == [command["id"]]
        assert "apply" in await _approvals(app)  # the other request still waits


@pytest.mark.parametrize("key", ["1", "3", "6"])
async def test_emergency_stop_from_any_panel_kills_the_running_command(
        tmp_path: Path, key: str) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        engine = app.engine
        task_id = await engine.submit("Soak test the cart", app.workspace, approve="auto")
        pgids = await wait_for(pilot, lambda: (engine.live(task_id) or None) and engine.live(task_id).process_groups,
                               what="the soak command running")
        await pilot.press(key)
        if key == "1":
            await pilot.press("n")  # a text field has focus: the stop still works (priority)
        await pilot.press("ctrl+x")
        await wait_for(pilot, lambda: engine.state_of(task_id) == "cancelled", timeout=5,
                       what="the task cancelled")
        for pgid in pgids:
            with pytest.raises(ProcessLookupError):
                os.killpg(pgid, 0)
        assert app.halted and engine.stopped
        await pilot.pause(0.2)
        assert app.screen.query_one(HaltBanner).has_class("-halted")
        assert "EMERGENCY STOP ENGAGED" in panel_text(app)
        with pytest.raises(StopActive):
            await engine.submit("Summarise the project", app.workspace)
        await pilot.press("escape", "9", "r")
        await wait_for(pilot, lambda: not app.halted and not engine.stopped, what="re-armed")
        assert "ARMED" in panel_text(app)


async def test_rollback_from_history(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        fixed = plan.task_ids[0]
        assert await task_state(app, fixed) == "succeeded"
        page = Path(app.workspace) / "shopcart" / "pagination.py"
        assert "(page - 1)" in page.read_text()
        await open_panel(pilot, "6")
        await idle(pilot)
        table = app.screen.query_one("#ended", KeyedTable)
        table.move_cursor(row=table.get_row_index(fixed))
        await pilot.press("r")
        await pilot.pause(0.2)
        await pilot.press("y")
        await wait_for(pilot, lambda: app.engine.state_of(fixed) == "rolled_back" or None,
                       what="rolled back")
        assert page.read_text() == (WORKSPACE / "shopcart" / "pagination.py").read_text()
        await wait_for(pilot, lambda: "rolled back" in panel_text(app), what="history shows it")


async def _pick_theme(pilot, app, name: str) -> None:
    await pilot.press("ctrl+p")
    await type_text(pilot, f"Theme: {name}")
    await pilot.pause(0.5)
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.theme == name, what="theme applied")


async def test_theme_switch_from_the_palette_is_saved(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the operator's own cockpit, on their own data dir
    config = load_config(tmp_path / "user")
    app = CockpitApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine is not None, what="the engine")
        assert app.theme == "livhana-dark"
        await _pick_theme(pilot, app, "livhana-light")
        config_file = tmp_path / "user" / "config.toml"
        await wait_for(pilot, lambda: config_file.exists() and 'theme = "livhana-light"'
                       in config_file.read_text(), what="theme saved")
    # A new cockpit on the same config starts in the saved theme.
    again = CockpitApp(load_config(tmp_path / "user"))
    assert again.theme == "livhana-light"


async def test_the_demo_never_writes_the_operators_config(tmp_path: Path) -> None:
    operator = tmp_path / "user" / "config.toml"
    operator.parent.mkdir()
    operator.write_text('[ui]\ntheme = "livhana-dark"\n')
    before = operator.read_text()
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await _pick_theme(pilot, app, "livhana-light")
        own = tmp_path / "demo" / "data" / "config.toml"
        await wait_for(pilot, lambda: own.exists() and 'theme = "livhana-light"'
                       in own.read_text(), what="theme saved in the demo's own config")
    assert operator.read_text() == before  # the operator's config is untouched
    assert not (tmp_path / "user" / "livhana.db").exists()  # and no store appeared there


async def test_keys_are_remappable_from_the_config(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(), keymap={"panel.metrics": "m", "emergency_stop": "f9"})
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await pilot.press("escape", "m")
        assert app.current_mode == "metrics"
        await pilot.press("f9")
        await wait_for(pilot, lambda: app.engine.stopped, what="stop on the remapped key")


async def test_escape_then_a_digit_typed_fast_switches_panels(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await pilot.press("escape", "n", "a", "b")
        # A terminal sends escape and a quick digit as one alt+digit key.
        await pilot.press("alt+3")
        assert app.current_mode == "approvals"
        await pilot.press("alt+1")
        assert app.current_mode == "tasks"
        assert app.screen.query_one("#title", Input).value == "ab"
        await pilot.press("2")  # the field was left, as Escape would have: digits switch
        assert app.current_mode == "active"


async def test_remapped_keys_are_the_ones_shown(tmp_path: Path) -> None:
    keymap = {"panel.health": "h", "panel.safety": "s", "emergency_stop": "f9"}
    app, plan = make_app(tmp_path, tasks=(), keymap=keymap)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        text = panel_text(app)
        assert " h Health " in text and " 8 Health " not in text
        assert "f9 STOP" in text and "^x STOP" not in text
        await pilot.press("f9")
        await wait_for(pilot, lambda: "EMERGENCY STOP ENGAGED" in panel_text(app), what="halted")
        assert "Safety Controls (s)" in panel_text(app)
        await pilot.press("escape", "s")
        await idle(pilot)
        text = panel_text(app)
        assert "f9" in text and "ctrl+x" not in text


async def test_task_execution_labels_its_fields_and_fits_states_and_titles(
        tmp_path: Path) -> None:
    app, plan = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await idle(pilot)
        text = panel_text(app)
        assert "Workspace" in text and "Approval mode" in text
        table = app.screen.query_one("#recent", KeyedTable)
        waiting = [k for k, cells in table._cells.items() if "awaiting" in str(cells[1])]
        assert waiting and "awaiting a…" not in text
        assert "awaiting" in text
        used = sum(c.get_render_width(table) for c in table.columns.values())
        assert used >= table.size.width - 2  # the title column takes the room there is
