"""Conflict radar and disk in the cockpit, on the real engine with the demo's scripted model:
two live tasks changing one file are both marked on Active Tasks (the paths above the peeked
task's log) and on their apply cards; R on the second's card rebases it and its request
comes back; System Health shows the disk the data dir's parts take."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from textual.widgets import Static

from cockpit.widgets import KeyedTable

from .support import idle, make_app, open_panel, panel_text, part, ready, wait_for

SIZE = (120, 40)
PRICES = "Validate prices in parse_price()"  # the demo script: edits shopcart/pricing.py


async def waiting(app, task_id: str) -> list[dict]:
    return [r for r in await app.engine.store.approvals("pending", task_id=task_id)
            if r["kind"] == "apply"]


async def until(pilot, check, timeout: float, what: str):
    """Like wait_for, for an async check."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (found := await check()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
    return found


async def _both(app, first: str, second: str) -> bool:
    return bool(await waiting(app, first)) and bool(await waiting(app, second))


async def _newer(app, task_id: str, than: int) -> list[dict]:
    return [r for r in await waiting(app, task_id) if r["id"] > than]


async def test_two_live_tasks_on_one_file_are_marked_on_active_tasks_and_their_cards(
        tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        engine = app.engine
        first = await engine.submit(PRICES, app.workspace, approve="ask")
        second = await engine.submit(PRICES, app.workspace, approve="ask")
        await pilot.press("escape", "2")  # the task field has focus on open
        await wait_for(pilot, lambda: getattr(app.screen, "MODE", "") == "active",
                       what="Active Tasks")
        table = await part(pilot, "#live", KeyedTable)
        await until(pilot, lambda: _both(app, first, second), 60, "two apply requests")
        await wait_for(pilot, lambda: all(str(table.get_cell(t, "Task")).startswith("⚠ ")
                                          for t in (first, second) if t in table.rows)
                       and len(table.rows) == 2, timeout=10, what="both rows marked")
        table.move_cursor(row=table.get_row_index(second))
        line = app.screen.query_one("#conflict", Static)
        await wait_for(pilot, lambda: app.screen.peeking == second and line.display
                       and f"task {first[:8]}" in str(line.render()), what="the peeked task's paths")
        assert "⚠ conflict: shopcart/pricing.py" in panel_text(app)
        said = str(line.render())
        assert re.search(f"task {first[:8]} \\([a-z ]+\\) also changes shopcart/pricing.py", said)

        # The apply cards: each names the other task and the file.
        await pilot.press("3")
        queue = app.screen.query_one("#queue", KeyedTable)
        rows = {t: (await waiting(app, t))[0] for t in (first, second)}
        for me, other in ((first, second), (second, first)):
            assert f"CONFLICT: task {other[:8]}" in rows[me]["summary"]
            queue.move_cursor(row=queue.get_row_index(str(rows[me]["id"])))
            await idle(pilot)
            text = panel_text(app)
            assert "⚠ conflict" in text
            assert f"task {other[:8]} also changes shopcart/pricing.py" in text

        # The first lands; R on the second's card rebases it: its apply request comes back.
        await engine.decide(rows[first]["id"], True)
        await engine.wait(first)
        queue.move_cursor(row=queue.get_row_index(str(rows[second]["id"])))
        await idle(pilot)
        await pilot.press("R")
        await wait_for(pilot, lambda: str(queue.get_cell(str(rows[second]["id"]), "Decision"))
                       == "rebase by operator", timeout=10, what="the rebase decision")
        again = await until(pilot, lambda: _newer(app, second, rows[second]["id"]), 20,
                            "the apply request again")
        assert "CONFLICT" not in again[0]["summary"]
        task = await engine.get(second)
        assert task["options"]["rebased"]["by"] == "operator"


async def test_system_health_shows_the_disk_the_data_dir_takes(tmp_path: Path) -> None:
    app, plan = make_app(tmp_path, tasks=(("Add a CHANGELOG for 0.1.1", "auto", ""),))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, plan)
        await open_panel(pilot, "8")
        disk = app.screen.query_one("#task-disk", Static)
        await wait_for(pilot, lambda: "worktrees" in str(disk.render()), timeout=10,
                       what="the disk section")
        text = panel_text(app)
        assert "Disk used in the data dir" in text
        usage = await app.engine.disk_usage()
        assert usage["worktrees"]["count"] == 1 and usage["worktrees"]["bytes"] > 0
        rendered = str(disk.render())
        assert "worktrees " in rendered and "(1)" in rendered and "checkpoints " in rendered
        assert "store " in rendered and "no gc yet" in rendered
