"""A snapshot of each of the ten panels with the demo's data, from the real engine, at
120x40 and at 80x24 (the smallest terminal the cockpit is made for).

Deterministic: the clock is frozen (a fixed day at noon), task ids come from a counter, the
cursor does not blink, and the few machine-specific numbers (free disk, store size,
process ids, test run times) are pinned.
"""

from __future__ import annotations

import fcntl
import itertools
import random
import re
import shutil
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from textual.widgets import Input

from agent import diskuse
from agent.engine import Engine
from agent.learnings import book
from agent.views import Views
from cockpit.app import CockpitApp
from cockpit.panels import PANELS
from cockpit.widgets import event_log
from cockpit.widgets.event_log import EventLog

from .support import make_app, open_panel, ready, wait_for

# A fixed day, not today: the panels show dates (a replay's day, the schedules' next runs)
# and a snapshot taken yesterday must still match.
FIXED_NOW = datetime(2026, 1, 15, 12, 0).timestamp()
BASE = Path(tempfile.gettempdir()) / "livhana-ui-snapshots"
_SECONDS = re.compile(r"\b\d+\.\d+s\b")


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: FIXED_NOW)
    counter = itertools.count(1)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(f"{next(counter):02x}c0ffee" + "0" * 24))
    monkeypatch.setattr(CockpitApp, "_measure_lag", lambda self: None)
    # Which task is a learnings holdout is drawn at random (agent/learnings/book.py): a
    # seed whose first draws hold none out, so the demo's learnings are always given.
    monkeypatch.setattr(book, "random", SimpleNamespace(Random=lambda: random.Random(0)))
    real_health = Views.health

    async def steady_health(views: Any, ping: bool = False) -> dict[str, Any]:
        health = await real_health(views, ping)
        health["disk_free_bytes"] = 100 << 30
        health["store"]["size_bytes"] = 1 << 20
        health["store"]["db_bytes"] = health["store"]["wal_bytes"] = 1 << 19
        health["key_present"] = False
        for row in health["engines"]:
            row["pid"], row["host"] = 4242, "host"
        return health

    monkeypatch.setattr(Views, "health", steady_health)
    real_budget = Views.budget

    async def steady_budget(views: Any) -> dict[str, Any]:
        # A few cents of a $50 cap is a sub-cell bar whose half-cell rounding flickered
        # under load; the budget's own behaviour is tested in test_panels.py.
        return {**await real_budget(views), "spent_today": 0.0}

    monkeypatch.setattr(Views, "budget", steady_budget)

    async def steady_disk(engine: Any) -> dict[str, Any]:
        # Measured at once (never "measuring…"), in pinned sizes: blocks differ by machine.
        usage = diskuse.measure(engine.config.data_dir, engine.config.store_path)
        for n, part in enumerate(("worktrees", "shadow", "journals", "store")):
            usage[part]["bytes"] = (n + 1) << 20
        usage.update(total_bytes=10 << 20, last_gc=None)
        return usage

    monkeypatch.setattr(Engine, "disk_usage", steady_disk)
    real_render = event_log.render

    def steady_render(event: dict[str, Any], show_thinking: bool = False) -> Any:
        line = real_render(event, show_thinking)
        if line is None:
            return None
        return type(line).from_markup(_SECONDS.sub("0.01s", line.markup))

    monkeypatch.setattr(event_log, "render", steady_render)


@pytest.fixture
def own_base() -> Any:
    """The snapshots show BASE's path, so it is fixed: two suites on one machine (parallel
    checkouts) take turns on it instead of deleting each other's demo mid-run."""
    with open(f"{BASE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


SIZES = [(120, 40), (80, 24)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("panel", PANELS, ids=[p.mode for p in PANELS])
def test_panel_snapshot(panel: Any, size: tuple[int, int], own_base: None, frozen: None,
                        snap_compare: Any) -> None:
    shutil.rmtree(BASE, ignore_errors=True)
    app, plan = make_app(BASE)

    async def run_before(pilot: Any) -> None:
        await ready(pilot, plan)
        await open_panel(pilot, panel.key)
        # Approval toasts depend on when the demo's requests arrived (one toast for two,
        # or two): tests/ui/test_attention.py checks them; here they would only flicker.
        attention = pilot.app.attention
        await wait_for(pilot, lambda: attention._timer is None, what="the toasts")
        pilot.app.clear_notifications()
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        # A log that follows its task scrolls to the end after the next refresh, which
        # under load can come after a fixed pause: wait for it.
        logs = [log for log in pilot.app.screen.query(EventLog) if log.display]
        await wait_for(pilot, lambda: all(log.scroll_y >= log.max_scroll_y
                                          for log in logs if log.following), what="the logs")
        await pilot.pause(0.2)

    try:
        assert snap_compare(app, terminal_size=size, run_before=run_before)
    finally:
        shutil.rmtree(BASE, ignore_errors=True)
