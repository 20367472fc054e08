"""A panel's worker that fails, or outlives its widgets (the panel torn down while it read
the store, as on quit), never ends the cockpit with a traceback: found by quitting the
demo in tmux while Task Execution was replaying a task's events."""

from __future__ import annotations

from pathlib import Path

from .support import make_app, ready, wait_for


async def test_a_failing_panel_worker_says_so_in_one_line_and_the_cockpit_stays(
    tmp_path: Path,
) -> None:
    app, plan = make_app(tmp_path, tasks=())
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, plan)
        screen = app.screen

        async def gone() -> None:
            screen.query_one("#no-such-widget")

        async def broken() -> None:
            raise RuntimeError("the store said no\nsecond line")

        await screen.run_worker(gone).wait()
        await screen.run_worker(broken).wait()
        await wait_for(pilot, lambda: any("the store said no" in n.message
                                          for n in app._notifications), what="the notice")
        assert [n.message for n in app._notifications if "store said" in n.message] == [
            "the store said no"]
        assert app.is_running and app.return_code is None
