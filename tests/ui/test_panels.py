"""Pilot tests of the read-mostly panels (Learnings, History, Health, Safety, Metrics,
Self-Improvement) and the theme colours, on the real engine with the demo's data."""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path
from typing import Any

import pytest
from rich.style import Style
from textual.color import Color
from textual.widgets import Input, Static
from textual_plotext import PlotextPlot

from agent.views import Views
from cockpit import fmt
from cockpit.cli import build_parser
from cockpit.themes import load_themes
from cockpit.widgets import EventLog, KeyedTable
from cockpit.widgets.event_log import render

from .support import idle, make_app, open_panel, panel_text, ready, task_state, wait_for

SIZE = (120, 40)
FIXED = ("Fix the off-by-one in paginate()", "auto", "")
CHANGELOG = ("Add a CHANGELOG for 0.1.1", "auto", "")
MIGRATE = ("Migrate the settings to YAML", "ask", "")  # fails: the model API is "overloaded"


def contrast(a: Color, b: Color) -> float:
    """WCAG contrast ratio of two colours (4.5 is the bar for normal text)."""
    def lum(c: Color) -> float:
        def ch(v: int) -> float:
            s = v / 255
            return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4
        return 0.2126 * ch(c.r) + 0.7152 * ch(c.g) + 0.0722 * ch(c.b)
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def colour_of(markup: str) -> Color:
    style = re.match(r"\[([^\]]*)\]", markup)
    assert style, f"no colour in {markup!r}"
    hexes = [w for w in style.group(1).split() if w.startswith("#")]
    assert hexes, f"no theme colour in {markup!r}"
    return Color.parse(hexes[0])


# -- 2: state and risk colours read well on every theme ---------------------------------
@pytest.mark.parametrize("theme", load_themes(), ids=lambda t: t.name)
def test_every_state_and_risk_is_legible_on_every_theme(theme: Any) -> None:
    colours = theme.to_color_system().generate()
    grounds = [Color.parse(colours[k]) for k in ("background", "surface", "panel")]
    coloured = [fmt.state(s, theme) for s, style in fmt.STATE_STYLE.items() if "$" in style]
    coloured += [fmt.risk(r, theme) for r in fmt.RISK_STYLE]
    for markup in coloured:
        for ground in grounds:
            assert contrast(colour_of(markup), ground) >= 4.5, (theme.name, markup, ground.hex)
    # States an operator must tell apart at a glance do not share a colour.
    apart = {fmt.state(s, theme) for s in ("awaiting_approval", "cancelled", "succeeded",
                                            "failed", "running")}
    assert len({colour_of(m).hex for m in apart}) == 5


async def test_a_theme_switch_repaints_the_tables_in_the_new_colours(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED,))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await open_panel(pilot, "6")
        await idle(pilot)
        table = app.screen.query_one("#ended", KeyedTable)
        fixed = plan.task_ids[0]

        def state_colour() -> str | None:
            cell = table.get_cell(fixed, "State")
            if not cell.spans:
                return None
            style = Style.parse(str(cell.spans[0].style))
            return style.color.triplet.hex.upper() if style.color and style.color.triplet else None

        for name in ("livhana-light", "livhana-contrast", "livhana-dark"):
            app.theme = name
            want = app.get_theme(name).to_color_system().generate()["text-success"].upper()
            await wait_for(pilot, lambda w=want: state_colour() == w, timeout=5,
                           what=f"the succeeded cell in {name}'s colour")


# -- 5: health pings the model itself, and fills the screen with what matters -----------
async def test_health_pings_the_model_on_its_own_and_keeps_the_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, live, most = getattr(Views, "ping_model", None), [0], [0]

    async def counted(views: Any) -> dict[str, Any]:
        live[0] += 1
        most[0] = max(most[0], live[0])
        try:
            assert real is not None
            return await real(views)
        finally:
            live[0] -= 1

    monkeypatch.setattr(Views, "ping_model", counted, raising=False)
    app, plan = make_app(tmp_path, tasks=(FIXED, MIGRATE))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await open_panel(pilot, "8")
        card = app.screen.query_one("#card-model", Static)
        await wait_for(pilot, lambda: "checked" in str(card.render()), timeout=10,
                       what="a ping without pressing p")
        assert "● ok" in str(card.render()) and "n/a" not in str(card.render())
        for _ in range(3):  # polls come and go: the ping result stays
            app.screen.request_refresh()
            await idle(pilot)
        assert "checked" in str(card.render())
        await pilot.press("p", "p", "p")
        await idle(pilot)
        assert most[0] == 1  # never two pings at once
        text = panel_text(app)
        assert "Engines on this store" in text and "tui" in text
        assert "Recent failures" in text and "Migrate the settings to YAML" in text
        assert re.search(r"tasks 2 · events \d+", text)


def test_the_sandbox_card_names_bubblewrap_once() -> None:
    from cockpit.screens.health import sandbox_card

    _level, body = sandbox_card({"available": True, "version": "bubblewrap 0.8.0",
                                 "reason": "commands run under bubblewrap"})
    assert body.count("bubblewrap") == 1 and "0.8.0" in body
    _level, body = sandbox_card({"available": False, "version": "",
                                 "reason": "bubblewrap (bwrap) is not installed"})
    assert "not installed" in body


# -- 7: learnings: merged duplicates, the full text, plurals -----------------------------
async def test_learnings_merge_duplicates_and_show_the_selected_one_in_full(
        tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED, CHANGELOG))
    lesson = ("clean build artifacts with git clean -fdX so ignored files go and tracked "
              "work stays, then run the tests again")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        engine = app.engine
        for task_id in plan.task_ids:
            await engine.store.add_learnings(task_id, [("pattern", lesson)])
        await open_panel(pilot, "4")
        await idle(pilot)
        table = app.screen.query_one("#learned", KeyedTable)
        rows = [k for k in table.rows if "git clean -fdX" in str(table.get_cell(k, "Learning"))]
        assert len(rows) == 1
        assert str(table.get_cell(rows[0], "Tasks")) == "2"
        table.move_cursor(row=table.get_row_index(rows[0]))
        await idle(pilot)
        detail = str(app.screen.query_one("#detail", Static).render())
        assert lesson in " ".join(detail.split())  # the whole text, not cut at the column
        assert "taught by 2 tasks" in detail
        assert FIXED[0] in detail and CHANGELOG[0] in detail
        counts = str(app.screen.query_one("#counts", Static).render())
        assert not re.search(r"\b1 (patterns|improvements|next steps)\b", counts)
        assert re.search(r"\b\d+ patterns?\b", counts)


# -- 8: charts: gaps for days without data, axes that fit, every ending counted ---------
async def test_charts_leave_empty_days_out_fit_small_costs_and_count_every_ending(
        tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED, (CHANGELOG[0], "auto", "rollback")))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await open_panel(pilot, "0")
        await idle(pilot)
        totals = str(app.screen.query_one("#totals", Static).render())
        assert "1 succeeded" in totals and "1 rolled back" in totals
        success = app.screen.query_one("#chart-success", PlotextPlot)
        chart = _widget_text(app, success)
        zero_row = next(line for line in chart if re.match(r"\s*0┤", line))
        assert set(zero_row.split("┤", 1)[1].strip(" │")) == set()  # no line along zero
        cost = _widget_text(app, app.screen.query_one("#chart-cost", PlotextPlot))
        labels = [float(m) for line in cost for m in re.findall(r"\$(\d+\.\d+)┤", line)]
        assert labels, "the cost axis is labelled in dollars"
        spent = (await app.engine.metrics())["cost_per_day"][-1]
        assert spent > 0 and max(labels) < 2 * spent + 0.05  # the axis fits cents


def _widget_text(app: Any, widget: Any) -> list[str]:
    region = widget.region
    strips = app.screen._compositor.render_strips()
    rows = ["".join(seg.text for seg in strip) for strip in strips]
    return [row[region.x:region.right] for row in rows[region.y:region.bottom]]


# -- 9: self-improvement points at nothing that does not exist ---------------------------
async def test_self_improvement_empty_state_names_only_real_commands(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await pilot.press("escape", "7")
        await idle(pilot)
        text = " ".join(panel_text(app).split())
        for empty in ("No daemon running", "No proposals yet", "No insights in the last 7 days",
                      "No report yet"):
            assert empty in text, empty
        # Read widget by widget: on screen the two columns' lines interleave.
        shown = " ".join(" ".join(str(w.render()).split()) for w in app.screen.query(Static)
                         if w.display)
        commands = re.findall(r"`livhana-cockpit ([^`]+)`", shown)
        assert len(commands) >= 3, commands
        for command in commands:
            build_parser().parse_args(shlex.split(command))  # exits 2 on a made-up one


# -- 10: safety: the audit verified whenever it may have changed; who spent today -------
async def test_safety_reverifies_the_audit_and_shows_who_spent_today(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED, CHANGELOG))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        engine = app.engine

        async def records() -> int:
            return (await engine.store.fetch("SELECT COUNT(*) AS n FROM audit"))[0]["n"]

        def shown() -> int | None:
            found = re.search(r"(\d+) records", str(app.screen.query_one("#audit").render()))
            return int(found.group(1)) if found else None

        await open_panel(pilot, "9")
        await wait_for(pilot, lambda: shown() is not None, what="the first verification")
        assert shown() == await records()
        # Records written while the panel is away are verified when it comes back.
        await pilot.press("6")
        await engine.set_policy_mode("strict" if engine.policy_mode != "strict" else "normal")
        await pilot.press("9")
        want = await records()
        await wait_for(pilot, lambda: shown() == want, timeout=5, what="re-verified on return")
        # A stop from the keyboard, while shown, is verified too (its audit record).
        await pilot.press("ctrl+x")
        await wait_for(pilot, lambda: engine.stopped, what="stopped")
        await pilot.pause(0.2)
        want = await records()
        await wait_for(pilot, lambda: shown() == want, timeout=5, what="re-verified after a stop")
        # Today's top spenders, with what each spent.
        table = app.screen.query_one("#spenders", KeyedTable)
        for task_id in plan.task_ids:
            task = await engine.get(task_id)
            assert task_id in table.rows, task["title"]
            assert str(table.get_cell(task_id, "Spent")) == fmt.money(task["cost_usd"])


# -- 11: history: focus, bad dates, until, replay times, a rollback's "Working" ---------
async def test_history_filters_focus_warn_and_keep_took_after_a_rollback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED, CHANGELOG))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        fixed, changelog = plan.task_ids
        await open_panel(pilot, "6")
        await idle(pilot)
        table = app.screen.query_one("#ended", KeyedTable)
        took = [str(table.get_cell(fixed, column)) for column in ("Working", "Waiting")]

        await pilot.press("slash", "x", "escape")
        assert app.focused is table  # Escape from a filter lands on the rows
        app.screen.query_one("#text", Input).value = ""

        since = app.screen.query_one("#since", Input)
        since.value = "2024-13-01"
        await pilot.pause(0.4)
        await idle(pilot)
        assert "since “2024-13-01” is not a date" in panel_text(app)
        assert since.has_class("-invalid") and fixed in table.rows  # nothing lost
        since.value = ""
        until = app.screen.query_one("#until", Input)
        yesterday = time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400))
        until.value = yesterday
        await pilot.pause(0.4)
        await idle(pilot)
        assert fixed not in table.rows and "is not a date" not in panel_text(app)
        until.value = time.strftime("%Y-%m-%d")  # the until day counts whole
        await pilot.pause(0.4)
        await idle(pilot)
        assert fixed in table.rows

        table.focus()
        table.move_cursor(row=table.get_row_index(fixed))  # the highlighted task replays
        log = app.screen.query_one("#replay", EventLog)
        await wait_for(pilot, lambda: log.task_id == fixed and len(log.lines) > 3,
                       what="the replay")
        stamped = [line for line in log.lines if re.match(r"\d\d:\d\d:\d\d ", line.text)]
        shown = [ev for ev in log.events if render(ev) is not None]
        assert len(stamped) >= len(shown) > 3  # every event's line starts with its time

        # A rollback five minutes later does not make the run look five minutes longer.
        later = time.time() + 300
        monkeypatch.setattr(time, "time", lambda: later)
        await app.engine.rollback(fixed)
        await wait_for(pilot, lambda: "rolled back" in str(table.get_cell(fixed, "State")),
                       what="the rollback shown")
        assert await task_state(app, fixed) == "rolled_back"
        assert [str(table.get_cell(fixed, column)) for column in ("Working", "Waiting")] == took
        # It ran first, so it stays listed after the later task (newest run first).
        assert [key.value for key in table.rows][:2] == [changelog, fixed]


EVENTS = [
    {"type": "analysis", "summary": "8 files"},
    {"type": "step", "step": 1, "action": "execute_bash", "target": "pytest"},
    {"type": "approval_requested", "kind": "command", "risk": "medium", "summary": "rm -rf"},
    {"type": "approval_decided", "approved": False, "by": "operator"},
    {"type": "verification", "passed": False, "evidence": "1 failed"},
    {"type": "warning", "message": "held: emergency stop engaged"},
    {"type": "error", "message": "model API unreachable"},
    {"type": "complete", "success": True, "summary": "done"},
    {"type": "tool_result", "output": "Traceback", "is_error": True},
]


@pytest.mark.parametrize("theme", load_themes(), ids=lambda t: t.name)
def test_event_log_lines_are_legible_on_every_theme(theme: Any) -> None:
    from textual.app import App

    from cockpit.textual_private import active_app

    app: App[None] = App()
    app.register_theme(theme)
    app.theme = theme.name
    token = active_app.set(app)
    try:
        lines = [render(ev) for ev in EVENTS]
    finally:
        active_app.reset(token)
    ground = Color.parse(theme.to_color_system().generate()["surface"])
    checked = 0
    for line in lines:
        assert line is not None
        for span in line.spans:
            style = span.style if isinstance(span.style, Style) else Style.parse(str(span.style))
            if style.color is None or style.color.triplet is None:
                continue
            r, g, b = style.color.triplet
            assert contrast(Color(r, g, b), ground) >= 4.5, (theme.name, line.plain)
            checked += 1
    assert checked >= len(EVENTS)  # every line carries a theme colour, none a fixed name


async def test_safety_says_when_a_hand_edit_of_the_policy_is_ignored(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await pilot.press("escape", "9")
        policy = app.config.policy_path if app.engine is None else app.engine.config.policy_path
        good = policy.read_text()
        policy.write_text("mode = [unclosed\n")  # a typo: the last good policy keeps ruling
        await wait_for(pilot, lambda: "policy.toml ignored" in panel_text(app), timeout=10,
                       what="the broken policy named")
        policy.write_text(good)
        await wait_for(pilot, lambda: "policy.toml ignored" not in panel_text(app), timeout=10,
                       what="the note gone once fixed")
