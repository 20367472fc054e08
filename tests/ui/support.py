"""Helpers for the cockpit's Pilot and snapshot tests: build the app on the real engine
with demo data, and wait for it to settle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from agent.config import load_config
from cockpit.app import CockpitApp
from cockpit.demo import TASKS, DemoPlan

BUSY_GROUPS = ("refresh", "actions", "replay", "demo")


def make_app(root: Path, *, live: bool = False, tasks: tuple[tuple[str, str, str], ...] = TASKS,
             keymap: dict[str, str] | None = None) -> tuple[CockpitApp, DemoPlan]:
    config = load_config(root / "user")
    if keymap:
        config.ui.keymap = dict(keymap)
    plan = DemoPlan(base=root / "demo", live=live, tasks=tasks)
    return CockpitApp(config, demo=plan), plan


async def wait_for(pilot: Pilot[Any], check: Callable[[], Any], timeout: float = 30,
                   what: str = "condition") -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def idle(pilot: Pilot[Any], quiet: int = 4) -> None:
    """Until no panel refresh, action or replay has run for `quiet` checks in a row."""
    app = pilot.app
    calm = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while calm < quiet and loop.time() < deadline:
        await pilot.pause(0.05)
        busy = any(w.group in BUSY_GROUPS and not w.is_finished for w in app.workers)
        busy = busy or bool(getattr(app, "_pending", None))
        calm = 0 if busy else calm + 1


async def ready(pilot: Pilot[Any], plan: DemoPlan) -> None:
    """The demo tasks are submitted and settled, and the UI has caught up."""
    await wait_for(pilot, lambda: pilot.app.engine is not None, what="the engine")
    await asyncio.wait_for(plan.seeded.wait(), 90)
    await pilot.pause(0.3)
    await idle(pilot)


async def part(pilot: Pilot[Any], selector: str, kind: type[Any] | None = None) -> Any:
    """A widget of the visible panel's body, once the body is mounted (it is mounted
    lazily, after the panel's first frame)."""
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.query(selector), what=selector)
    return screen.query_one(selector, kind) if kind else screen.query_one(selector)


async def open_panel(pilot: Pilot[Any], key: str) -> None:
    """Switch to panel `key` as the operator does, and wait until it is shown: out of the
    task field first (a fresh cockpit's focus is there, and a digit would be typed)."""
    from cockpit.panels import PANELS

    (mode,) = [p.mode for p in PANELS if p.key == key]
    await pilot.press("escape", key)
    await wait_for(pilot, lambda: getattr(pilot.app.screen, "MODE", None) == mode,
                   what=f"panel {key}")
    await idle(pilot)


def panel_text(app: CockpitApp) -> str:
    """The visible screen as plain text (for assertions)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


async def task_state(app: CockpitApp, task_id: str) -> str:
    assert app.engine is not None
    task = await app.engine.get(task_id)
    assert task is not None
    return str(task["state"])
