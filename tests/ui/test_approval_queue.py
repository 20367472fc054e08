"""The Approval Queue on the real engine with the demo's requests: it fits the screen, says
which task asks and what command would run, asks before approving a whole kind, and shows
who decided from the store (the CLI, another panel, before a restart)."""

from __future__ import annotations

from pathlib import Path

from cockpit import fmt
from cockpit.widgets import Confirm, KeyedTable

from .support import idle, make_app, open_panel, panel_text, ready, wait_for

SIZE = (120, 40)
CLEAN = "rm -rf build dist *.egg-info && git clean -fdx"


async def _pending(app) -> list[dict]:
    return await app.engine.pending_approvals()


async def test_the_queue_fits_120_columns_and_names_task_and_command(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        command = next(a for a in await _pending(app) if a["kind"] == "command")
        await open_panel(pilot, "3")
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
        assert "rule: commands #1" in text and "need" in text and "operator" in text  # wrapped
        assert r"'\bgit\s+clean\b|" in text  # the regex as written, not a repr's doubled \\


async def test_approve_all_of_a_kind_asks_first_showing_count_and_commands(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(("Clean the build artifacts", "ask", ""),
                                          ("Clean the build artifacts", "ask", "")))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        requests = await _pending(app)
        assert [a["kind"] for a in requests] == ["command", "command"]
        await open_panel(pilot, "3")
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
        table = app.screen.query_one("#queue", KeyedTable)
        keys = [str(a["id"]) for a in requests]
        # The Decision column of both rows (the detail pane repeats the selected one's).
        await wait_for(pilot, lambda: all(str(table.get_cell(k, "Decision")) ==
                                          "approved by operator" for k in keys),
                       what="both approved")
        assert "Approved 2 request(s)" in _notes(app)


async def test_decisions_made_elsewhere_show_who_decided_and_waiting_stops(
        tmp_path: Path, monkeypatch) -> None:
    app, plan = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        pending = await _pending(app)
        command = next(a for a in pending if a["kind"] == "command")
        await open_panel(pilot, "3")
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
        await pilot.press("escape", "3")
        await wait_for(pilot, lambda: "denied by cli" in panel_text(again), what="after restart")


# -- first decider wins: a key pressed on a request decided elsewhere meanwhile -----------------
def _notes(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_approve_all_reports_the_one_decided_elsewhere_meanwhile_and_approves_the_rest(
        tmp_path: Path) -> None:
    """Between `A` and the confirm's yes, another process denies one of the two requests:
    the other is still approved, and the notice says 1 of 2, naming who won the other."""
    app, plan = make_app(tmp_path, tasks=(("Clean the build artifacts", "ask", ""),
                                          ("Clean the build artifacts", "ask", "")))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        first, second = await _pending(app)
        await open_panel(pilot, "3")
        await idle(pilot)
        await pilot.press("A")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the confirm")
        await app.engine.decide(first["id"], False, by="cli (pid 4242)")  # the race
        await pilot.press("y")
        note = await wait_for(pilot, lambda: [n for n in _notes(app) if "of 2" in n],
                              what="the notice")
        assert note == [f"Approved 1 of 2 request(s); request #{first['id']} was already "
                        f"denied by cli (pid 4242), " + note[0].split("pid 4242), ")[1]]
        assert "your approve was not applied" in note[0]
        assert not any(n.startswith("Approved 2") for n in _notes(app))
        rows = {r["id"]: r for r in await app.engine.recent_approvals()}
        assert (rows[first["id"]]["state"], rows[first["id"]]["decided_by"]) == (
            "denied", "cli (pid 4242)")
        assert (rows[second["id"]]["state"], rows[second["id"]]["decided_by"]) == (
            "approved", "operator")


async def test_deny_key_on_a_request_the_timeout_decided_says_it_lost(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(("Clean the build artifacts", "ask", ""),))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        (request,) = await _pending(app)
        await open_panel(pilot, "3")
        await idle(pilot)
        # Decided in the store only, as another process would: this screen still shows it
        # pending when the key is pressed.
        await app.engine.store.decide_approval(request["id"], False, "timeout",
                                               "no decision in time")
        await pilot.press("d")
        note = await wait_for(pilot, lambda: [n for n in _notes(app) if "Not denied" in n],
                              what="the notice")
        assert note[0].startswith(f"Not denied: request #{request['id']} was already denied "
                                  "by timeout (no decision in time)")
        assert not any(n.startswith("Denied 1") for n in _notes(app))
