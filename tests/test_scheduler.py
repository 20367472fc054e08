"""The scheduler in-process (agent/schedule.py): overlapping runs are skipped and recorded
once, a due time during an emergency stop is held and run once after the re-arm, and the
operator hears of runs that produce proposals or fail: a webhook (a loopback HTTP server
here) and a desktop notification (`notify-send`)."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.cron import latest_due
from agent.improve import records
from agent.notify import announce
from agent.schedule import Scheduler
from tests import improve_world
from tests.conftest import until


@pytest.fixture
async def world(tmp_path: Path) -> improve_world.World:
    return await improve_world.build(tmp_path)


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on loopback: (its URL, the JSON bodies it got)."""
    got: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            size = int(self.headers.get("Content-Length", 0))
            got.append({"path": self.path, **json.loads(self.rfile.read(size))})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook?token=hunter2-secret", got
    finally:
        server.shutdown()


async def test_an_overlapping_due_time_is_skipped_and_recorded_once(
    world: Any, engine_factory: Any
) -> None:
    cfg = load_config(world.data_dir)
    a = await engine_factory(cfg=cfg, role="daemon")
    b = await engine_factory(cfg=cfg, role="daemon")
    running, _ = await records.claim_run(a.store, "daily", "schedule", a.engine_id,
                                         str(world.workspace), 1000.0)
    told: list[dict[str, Any]] = []

    async def tell(ended: dict[str, Any]) -> None:
        told.append(ended)

    for engine in (a, b):  # the same due time, seen by both daemons
        await Scheduler(engine, world.workspace, on_end=tell)._run("daily", 2000.0, "schedule")
    runs = await records.runs(a.store, "daily")
    skipped = [r for r in runs if r["scheduled_for"] == 2000.0]
    assert len(skipped) == 1 and skipped[0]["outcome"] == "skipped"
    assert f"run {running} of daily" in skipped[0]["error"]
    assert [t["outcome"] for t in told] == ["skipped"]  # told once, not by both
    # A run left by an engine that died does not block: it is closed as interrupted.
    await records.claim_run(b.store, "weekly", "schedule", "daemon-gone", "x", 3000.0)
    run_id, why = await records.claim_run(a.store, "weekly", "schedule", a.engine_id, "x", 4000.0)
    assert run_id and not why
    (gone,) = [r for r in await records.runs(a.store, "weekly") if r["scheduled_for"] == 3000.0]
    assert gone["outcome"] == "interrupted"


async def test_a_due_time_during_the_stop_is_held_and_run_once_after_rearm(
    world: Any, engine_factory: Any
) -> None:
    cfg = load_config(world.data_dir)
    cfg.schedules.daily = "* * * * *"
    engine = await engine_factory(cfg=cfg, role="daemon")
    scheduler = Scheduler(engine, world.workspace)
    await engine.emergency_stop(by="test")
    scheduler._next["daily"] = time.time() - 1  # due now
    for _ in range(3):
        scheduler.tick()
    assert not scheduler.tasks and not await records.runs(engine.store)
    await engine.rearm(by="test")
    scheduler.tick()
    scheduler.tick()
    await until(lambda: not scheduler.tasks, timeout=60)
    (run,) = await records.runs(engine.store)
    assert run["outcome"] == "succeeded"
    assert run["scheduled_for"] == latest_due("* * * * *", run["started_at"])


async def test_the_operator_hears_of_proposals_and_failures(
    world: Any, engine_factory: Any, hook: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    url, got = hook
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    said = tmp_path / "notified.txt"
    fake = bin_dir / "notify-send"  # records what it was asked to show
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" >> {said}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    cfg = load_config(world.data_dir)
    cfg.notify.webhook, cfg.notify.desktop = url, True
    engine = await engine_factory(cfg=cfg, role="daemon")
    sent: list[list[str]] = []

    async def tell(ended: dict[str, Any]) -> None:
        sent.append(await announce(cfg.notify, ended, engine.safety.redact))

    scheduler = Scheduler(engine, world.workspace, on_end=tell)
    await scheduler._run("daily", 1000.0, "schedule")  # insights, no proposal: quiet
    spike = next(i for i in await records.insights(engine.store) if i["kind"] == "error_spike")
    improve_world.write_script(world, [spike["id"]])
    await scheduler._run("weekly", 2000.0, "schedule")
    gone = Scheduler(engine, world.workspace / "nowhere", on_end=tell)
    await gone._run("daily", 3000.0, "schedule")
    assert sent == [[], ["desktop", "webhook"], ["desktop", "webhook"]]  # daily: quiet
    first, second = got
    assert first["path"] == "/hook?token=hunter2-secret"
    assert (first["job"], first["outcome"]) == ("weekly", "succeeded")
    assert first["proposals"][0]["title"] == "Load JWT_SECRET from the environment"
    assert first["report"] and Path(first["report"]).is_file()
    assert (second["job"], second["outcome"]) == ("daily", "failed")
    assert "does not exist" in second["error"]
    shown = said.read_text()
    assert "Liv Hana: weekly proposes 1 change(s)" in shown
    assert "Liv Hana: the daily run failed" in shown
    # The run records say the same.
    failed = [r for r in await records.runs(engine.store) if r["scheduled_for"] == 3000.0]
    assert failed[0]["outcome"] == "failed"


async def test_a_webhook_that_fails_never_fails_the_run(world: Any, engine_factory: Any) -> None:
    cfg = load_config(world.data_dir)
    cfg.notify.webhook = "http://127.0.0.1:9/closed"  # nothing listens on the discard port
    engine = await engine_factory(cfg=cfg)
    ended = {"job": "weekly", "outcome": "failed", "error": "boom", "proposals": []}
    done = await asyncio.wait_for(announce(cfg.notify, ended), 30)
    assert done == ["webhook to 127.0.0.1 failed: ConnectError"]
    assert "closed" not in done[0]  # the URL's path (a token, maybe) is not repeated
    del engine


@pytest.mark.parametrize("where", ["model call", "workspace check"])
async def test_closing_the_engine_records_an_attached_schedulers_run_as_interrupted(
    world: Any, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's scheduler rides on engine.attach_scheduler: closing the engine (SIGTERM)
    stops a run mid-way and records it `interrupted` before the store closes, wherever
    the run was: in its model call, or still checking its workspace (claimed, not begun:
    CI once closed the engine there and the run stayed open)."""
    from agent.engine import Engine
    from agent.improve import jobs
    from agent.improve.jobs import run_job
    from agent.store import Store

    if where == "workspace check":
        checked = jobs.check_workspace

        async def hung_check(path: Path, worktrees: Path) -> Path:
            if "Weekly" in world.script.read_text():  # the daily run below checks normally
                await asyncio.Event().wait()  # a workspace on a mount that stopped answering
            return await checked(path, worktrees)

        monkeypatch.setattr(jobs, "check_workspace", hung_check)
    cfg = load_config(world.data_dir)
    engine = await Engine.open(cfg, role="daemon")
    closed = False
    try:
        day = await run_job(engine, "daily", world.workspace)
        spike = next(i for i in day["insights"] if i["kind"] == "error_spike")
        slow = improve_world.proposal_turn([spike["id"]])
        slow["delay_s"] = 120  # the weekly model call is still going on at close
        world.script.write_text(json.dumps({"scripts": [
            {"match": "^Weekly review", "turns": [slow]}]}))
        scheduler = Scheduler(engine, world.workspace)
        engine.attach_scheduler(scheduler)
        scheduler._launch("weekly", time.time() - 1, "schedule")

        async def going() -> bool:
            return any(r["outcome"] is None for r in await records.runs(engine.store, "weekly"))

        await until(going, timeout=60)
        started = time.monotonic()
        await engine.close(reason="daemon shut down")
        closed = True
        assert time.monotonic() - started < 8
    finally:
        if not closed:
            await engine.close()
    store = await Store.open(cfg.store_path)
    try:
        (run,) = await records.runs(store, "weekly")
        assert run["outcome"] == "interrupted" and run["finished_at"] is not None
        assert not await records.proposals(store)
    finally:
        await store.close()
