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

    from .api.service import start_api, stop_api

    engine = await Engine.open(config, role="daemon")
    try:
        api = await start_api(engine, config, args)  # the HTTP API, unless --no-api
    except BaseException:
        await engine.close(reason="daemon shut down")
        raise
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    print(f"livhana-cockpit daemon {engine.engine_id} running on {config.store_path}", file=sys.stderr)
    try:
        await done.wait()
    finally:
        await stop_api(api)
        await engine.close(reason="daemon shut down")
    return 0
