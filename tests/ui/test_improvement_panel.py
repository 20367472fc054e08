"""The Self-Improvement panel (7) on a real store: schedules with their next and last
runs, the latest report, the week's insights, the proposals (accept `a`, reject `d`), and
the learnings' measured effect; a scheduled run that proposes or fails pops a toast on any
panel; the Approval Queue lists pending proposals too; System Health shows the daemon."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.engine import Engine
from agent.improve import records
from agent.improve.jobs import run_job
from cockpit.app import CockpitApp
from tests import improve_world

from .support import idle, open_panel, panel_text, wait_for

SIZE = (120, 40)


@pytest.fixture
async def world(tmp_path: Path) -> improve_world.World:
    """The world after a daily and a weekly run: a report, insights, one proposal."""
    world = await improve_world.build(tmp_path)
    (world.data_dir / "config.toml").write_text(
        f'[engine]\nmodel = "scripted:{world.script}"\n'
        '[schedules]\ndaily = "0 2 * * *"\nweekly = "0 6 * * 1"\nmonthly = ""\n'
    )
    config = load_config(world.data_dir)
    engine = await Engine.open(config, role="cli")
    try:
        day = await run_job(engine, "daily", world.workspace)
        spike = next(i for i in day["insights"] if i["kind"] == "error_spike")
        improve_world.write_script(world, [spike["id"]])
        await run_job(engine, "weekly", world.workspace)
    finally:
        await engine.close()
    return world


def app_for(world: Any) -> CockpitApp:
    return CockpitApp(load_config(world.data_dir))


async def _open(pilot: Any, key: str) -> None:
    await wait_for(pilot, lambda: pilot.app.engine is not None, what="the engine")
    await open_panel(pilot, key)


async def test_the_panel_shows_schedules_report_insights_and_proposals(world: Any) -> None:
    app = app_for(world)
    async with app.run_test(size=SIZE) as pilot:
        await _open(pilot, "7")
        await wait_for(pilot, lambda: "Load JWT_SECRET" in panel_text(app), what="the proposal")
        text = panel_text(app)
        assert "No daemon running" in text
        for expected in ("0 2 * * *", "0 6 * * 1", "02:00", "weekly · ", "-weekly.md",
                         "error_spike", "New error:", "pending",
                         "high/low", "Evidence spike-"):
            assert expected in text, expected
        if not hasattr(Engine, "learning_stats"):  # main before the learnings work: said so
            assert "does not measure learnings' effect yet" in text
        proposal = (await records.proposals(app.engine.store))[0]
        # `a` accepts the selected proposal; a second key on it is refused, nothing changes.
        await pilot.press("a")
        await wait_for(pilot, lambda: "accepted by operator" in panel_text(app),
                       what="the acceptance")
        row = await records.get_proposal(app.engine.store, proposal["id"])
        assert (row["state"], row["decided_by"]) == ("accepted", "operator")
        await pilot.press("d")
        await idle(pilot)
        assert any("Select a pending proposal" in n.message for n in app._notifications)
        assert (await records.get_proposal(app.engine.store, proposal["id"]))["state"] == "accepted"
        audit = await app.engine.store.fetch("SELECT action FROM audit WHERE action LIKE 'proposal%'")
        assert [a["action"] for a in audit] == ["proposal_accept"]


async def test_reject_with_a_key_and_the_measured_effect_when_the_engine_has_it(
    world: Any, monkeypatch: Any
) -> None:
    async def learning_stats(self: Any, query: str | None = None) -> list[dict[str, Any]]:
        return [{"id": 7, "text": "run make test before finishing", "category": "pattern",
                 "source_task": "seed00aaaa", "uses": 12, "success_with": 0.75,
                 "success_without": 0.5, "state": "active",
                 "confidence": {"level": 0.95, "low": 0.03, "high": 0.47}}]

    monkeypatch.setattr(Engine, "learning_stats", learning_stats, raising=False)
    app = app_for(world)
    async with app.run_test(size=SIZE) as pilot:
        await _open(pilot, "7")
        await wait_for(pilot, lambda: "pending" in panel_text(app), what="the proposal")
        text = panel_text(app)
        assert "run make test before finishing" in text
        assert "+25 pts: 75% of tasks succeed with it, 50% without" in text
        assert "95% interval +3 to +47 pts" in text
        await pilot.press("d")
        await wait_for(pilot, lambda: "rejected by operator" in panel_text(app),
                       what="the rejection")
        (row,) = await records.proposals(app.engine.store)
        assert row["state"] == "rejected"


async def test_a_scheduled_run_that_proposes_or_fails_pops_a_toast(world: Any) -> None:
    app = app_for(world)
    async with app.run_test(size=SIZE) as pilot:
        await _open(pilot, "4")  # any panel
        store = app.engine.store
        # What a daemon writes when its weekly run ends with a proposal, and a daily fails.
        weekly, _ = await records.claim_run(store, "weekly", "schedule", "daemon-x", "w",
                                            time.time() - 5)
        await records.save_proposals(store, weekly, [{
            "id": "ptoast01", "source": "weekly", "title": "Rotate the cache keys", "task": "t",
            "rationale": "", "impact": "low", "effort": "low", "evidence": [],
            "workspace": "w"}])
        await records.finish_run(store, weekly, "succeeded")
        daily, _ = await records.claim_run(store, "daily", "schedule", "daemon-x", "w",
                                           time.time() - 4)
        await records.finish_run(store, daily, "failed", "the logs are gone")
        manual, _ = await records.claim_run(store, "monthly", "manual", "cli-x", "w")
        await records.finish_run(store, manual, "failed", "not scheduled: no toast")

        def titles() -> list[str]:
            return [n.title for n in app._notifications]

        await wait_for(pilot, lambda: len([t for t in titles() if "Liv Hana" in t]) >= 2,
                       timeout=15, what="the toasts")
        await idle(pilot)
        told = {n.title: n.message for n in app._notifications if "Liv Hana" in n.title}
        assert set(told) == {"Liv Hana: weekly proposes 1 change(s)",
                             "Liv Hana: the daily run failed"}
        assert "Rotate the cache keys" in told["Liv Hana: weekly proposes 1 change(s)"]
        assert told["Liv Hana: the daily run failed"] == "the logs are gone"


async def test_the_approval_queue_lists_pending_proposals_and_accepts_them(world: Any) -> None:
    app = app_for(world)
    async with app.run_test(size=SIZE) as pilot:
        await _open(pilot, "3")
        await wait_for(pilot, lambda: "proposal" in panel_text(app), what="the proposal row")
        text = panel_text(app)
        assert "Load JWT_SECRET from the environment" in text and "1 pending" in text
        await pilot.press("a")
        await wait_for(pilot, lambda: "Nothing waits for you" in panel_text(app)
                       or "0 pending" in panel_text(app), what="the queue to empty")
        (row,) = await records.proposals(app.engine.store)
        assert row["state"] == "accepted"


async def test_system_health_shows_the_daemon_schedules_and_last_run(world: Any) -> None:
    app = app_for(world)
    async with app.run_test(size=SIZE) as pilot:
        await _open(pilot, "8")
        run_id, _ = await records.claim_run(app.engine.store, "daily", "schedule", "daemon-y",
                                            "w", time.time() - 60)
        await records.finish_run(app.engine.store, run_id, "failed", "boom")
        app.screen.request_refresh()
        await wait_for(pilot, lambda: "last daily" in panel_text(app), what="the daemon card")
        text = panel_text(app)
        assert "no daemon running" in text
        assert re.search(r"next daily (\d\d-\d\d )?02:00", text)
        assert "failed" in text

