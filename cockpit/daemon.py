"""`livhana-cockpit --daemon`: the engine without a screen. It runs the tasks it is given,
keeps its heartbeat in the store (so cockpits see it alive) and obeys stop/cancel rows.
Schedules and the HTTP API attach here."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any


def run_daemon(config: Any, args: Any = None) -> int:
    return asyncio.run(_main(config, args))


async def _main(config: Any, args: Any = None) -> int:
    from agent.engine import Engine

    from .api.service import api_service

    engine = await Engine.open(config, role="daemon")
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    try:
        async with api_service(engine, config, args):  # the HTTP API, unless --no-api
            print(f"livhana-cockpit daemon {engine.engine_id} running on {config.store_path}", file=sys.stderr)
            await done.wait()
    finally:
        await engine.close(reason="daemon shut down")
    return 0
