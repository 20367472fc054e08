"""Cosmetics seen by a new user (issue 12): no stray scrollbar glyphs under tables, one
way to change the theme in the palette, a visible log border on the light theme, and
Capabilities saying why an allowed tool's calls still wait for approval."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.color import Color
from textual.command import CommandList
from textual.widgets import Static

from cockpit.demo import TASKS
from cockpit.panels import PANELS
from cockpit.themes import load_themes
from cockpit.widgets import EventLog, KeyedTable

from .support import idle, make_app, open_panel, panel_text, part, ready, wait_for

FIXED, CHANGELOG, MIGRATE, VALIDATE, CLEAN = TASKS


async def test_no_table_grows_a_sideways_scrollbar(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED, CLEAN))
    for size in ((120, 40), (80, 24)):
        async with app.run_test(size=size) as pilot:
            await ready(pilot, plan)
            for panel in PANELS:
                await pilot.press(panel.key)
                await idle(pilot)
                for table in app.screen.query(KeyedTable):
                    if table.display and table.size.width:
                        # The scrollbar's thumb is the stray "▎▊▉" under the rows.
                        assert not table.show_horizontal_scrollbar, (size, panel.mode, table.id)
            await open_panel(pilot, "5")
            await idle(pilot)
            header = next(line for line in panel_text(app).splitlines() if "Tool " in line)
            assert "Last used" in header or size == (80, 24), header
        app, plan = make_app(tmp_path / "again", tasks=(FIXED, CLEAN))


async def test_capabilities_say_why_execute_bash_still_asks(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(CLEAN,))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, plan)
        await open_panel(pilot, "5")
        table = await part(pilot, "#tools", KeyedTable)
        await wait_for(pilot, lambda: table.row_count, what="the tools")
        table.move_cursor(row=[str(k.value) for k in table.rows].index("execute_bash"))
        await idle(pilot)
        assert "allow*" in panel_text(app)
        markup = str(app.screen.query_one("#detail", Static).content)
        detail = " ".join(Text.from_markup(markup).plain.split())
        assert "some calls still ask or are refused" in detail
        assert "ask: commands #1 '" in detail and "approval mode is ask" in detail


async def test_the_palette_offers_one_way_to_change_the_theme(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"theme")
        options = await wait_for(pilot, lambda: [
            str(o.prompt) for o in app.screen.query_one(CommandList).options], what="hits")
        await pilot.pause(0.5)  # every provider has answered
        options = [str(o.prompt) for o in app.screen.query_one(CommandList).options]
        ours = [f"Theme: {t.name}" for t in load_themes()]
        themes = [o for o in options if "theme" in o.lower()]
        assert sorted(o.split("\n")[0] for o in themes) == sorted(ours), options


def _luminance(c: Color) -> float:
    def channel(v: int) -> float:
        v = v / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b)


def _contrast(a: Color, b: Color) -> float:
    """The WCAG contrast ratio of two opaque colours (1: invisible, 21: black on white)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


async def test_the_light_themes_log_border_is_visible(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=(120, 40)) as pilot:
        app.theme = "livhana-light"
        log = await part(pilot, EventLog)
        await idle(pilot)
        _, colour = log.styles.border_top
        behind = log.styles.background
        # The border's colour as drawn: its alpha blended over the log's own background.
        drawn = behind.blend(colour.with_alpha(1), colour.a)
        assert _contrast(drawn, behind) >= 2.0, (drawn.hex, behind.hex)
