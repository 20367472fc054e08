"""The Learnings panel: each learning's measured effect, and the operator's keys (pin,
edit, retire after a confirm, restore), on the real engine with the demo's data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Input, Static

from cockpit.widgets import Confirm, KeyedTable
from cockpit.widgets.edit_text import EditText

from .support import idle, make_app, open_panel, ready, wait_for

SIZE = (120, 40)
FIXED = ("Fix the off-by-one in paginate()", "auto", "")


async def lesson(app: Any, learning_id: int) -> dict[str, Any]:
    (row,) = [s for s in await app.engine.learning_stats() if s["id"] == learning_id]
    return row


async def test_pin_edit_retire_and_restore_with_keys(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED,))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await open_panel(pilot, "4")
        await idle(pilot)
        table = app.screen.query_one("#learned", KeyedTable)
        stats = await app.engine.learning_stats()
        pattern = next(s for s in stats if s["category"] == "pattern")
        key = str(pattern["id"])
        assert str(table.get_cell(key, "State")) == "active"
        assert str(table.get_cell(key, "Effect")) == pattern["verdict"]
        table.move_cursor(row=table.get_row_index(key))
        await idle(pilot)
        shown = " ".join(str(app.screen.query_one("#detail", Static).render()).split())
        assert f"effect: {pattern['summary']}" in shown

        # p pins (no confirm: nothing is lost), p again unpins.
        await pilot.press("p")
        await wait_for(pilot, lambda: str(table.get_cell(key, "State")) == "pinned",
                       what="the pinned state")
        assert (await lesson(app, pattern["id"]))["pinned"] is True

        # e edits in a dialog; Escape leaves the text as it was.
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditText), what="the edit dialog")
        field = app.screen.query_one("#text", Input)
        assert field.value == pattern["text"]
        await pilot.press("escape")
        await idle(pilot)
        assert (await lesson(app, pattern["id"]))["text"] == pattern["text"]
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditText), what="the edit dialog")
        await pilot.press(*" in shopcart")  # typed at the end, the old text kept
        await pilot.press("enter")
        new = pattern["text"] + " in shopcart"
        await wait_for(pilot, lambda: new in str(table.get_cell(key, "Learning")),
                       what="the edited text")
        edited = await lesson(app, pattern["id"])
        assert edited["text"] == new and edited["edited"] and pattern["text"] in edited["said"]

        # r retires only after a confirm: "n" keeps it.
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the confirm")
        await pilot.press("n")
        await idle(pilot)
        assert (await lesson(app, pattern["id"]))["state"] == "active"
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the confirm")
        assert "It is pinned" in str(app.screen.query_one("#question", Static).render())
        await pilot.press("y")
        await wait_for(pilot, lambda: str(table.get_cell(key, "State")) == "retired",
                       what="the retired state")
        retired = await lesson(app, pattern["id"])
        assert retired["state"] == "retired" and not retired["pinned"]
        await idle(pilot)
        shown = " ".join(str(app.screen.query_one("#detail", Static).render()).split())
        assert "why retired: retired by the operator in the cockpit" in shown
        assert new not in (await app.engine.learnings_by_kind())["patterns"]

        # u restores.
        await pilot.press("u")
        await wait_for(pilot, lambda: str(table.get_cell(key, "State")) == "active",
                       what="the restored state")
        assert (await lesson(app, pattern["id"]))["state"] == "active"

        audit = await app.engine.store.fetch(
            "SELECT actor, action FROM audit WHERE action LIKE 'learning_%' ORDER BY id")
        assert [(a["actor"], a["action"]) for a in audit] == [
            ("operator", "learning_pin"), ("operator", "learning_edit"),
            ("operator", "learning_retire"), ("operator", "learning_restore")]


async def test_keys_typed_into_the_search_field_change_no_learning(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(FIXED,))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await open_panel(pilot, "4")
        await idle(pilot)
        before = await app.engine.learning_stats()
        await pilot.press("slash", *"pure", "escape")  # p, u, r, e: letters of a search
        await idle(pilot)
        assert await app.engine.learning_stats() == before
        assert not isinstance(app.screen, Confirm | EditText)
