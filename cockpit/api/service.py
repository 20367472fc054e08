"""The API as one of the daemon's services: `--api-host`, `--api-port`, `--no-api`,
`--api-allow-remote` (a non-loopback bind needs it, and gets a warning)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.config import Config
    from agent.engine import Engine


@contextlib.asynccontextmanager
async def api_service(engine: Engine, config: Config, args: Any) -> AsyncIterator[None]:
    """The daemon's one call: the API listens for the `async with` body and stops after
    it (open streams end first). Nothing with --no-api. It cannot listen (a busy port, a
    remote host without its flag): ApiError, one line, before the body runs."""
    task = await _start(engine, config, args)
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _start(engine: Engine, config: Config, args: Any) -> asyncio.Task[None] | None:
    """`serve_api` as a task, returned once it listens (None with --no-api)."""
    if getattr(args, "no_api", False):
        return None
    from .server import serve_api

    port = getattr(args, "api_port", None)
    started = asyncio.Event()
    task = asyncio.create_task(
        serve_api(
            engine,
            config,
            host=getattr(args, "api_host", None) or config.api.host,
            port=config.api.port if port is None else port,
            allow_remote=bool(getattr(args, "api_allow_remote", False)),
            started=started,
            workspace=getattr(args, "daemon_workspace", None),
        ),
        name="api",
    )
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()  # raises what stopped it
    return task
