"""The engine's slot for timed work (issue 10's scheduler): it runs beside the engine's own
loops and stops with the engine."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import until


class Ticker:
    def __init__(self) -> None:
        self.ticks = 0
        self.stopped = False

    async def run(self) -> None:
        try:
            while True:
                self.ticks += 1
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            self.stopped = True
            raise


async def test_a_scheduler_attached_to_a_running_engine_runs_until_close(
    engine_factory: Any,
) -> None:
    engine = await engine_factory()
    ticker = Ticker()
    engine.attach_scheduler(ticker)
    await until(lambda: ticker.ticks >= 3)
    await engine.close()
    assert ticker.stopped


async def test_a_scheduler_attached_before_start_starts_with_the_engine(config: Any) -> None:
    from agent.engine import Engine
    from agent.store import Store

    engine = Engine(config, await Store.open(config.store_path), role="test")
    ticker = Ticker()
    engine.attach_scheduler(ticker)
    await asyncio.sleep(0.05)
    assert ticker.ticks == 0  # not before the engine starts
    await engine.start()
    try:
        await until(lambda: ticker.ticks >= 3)
    finally:
        await engine.close()
    assert ticker.stopped
