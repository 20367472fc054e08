"""Serving the API with uvicorn inside the engine's own event loop (daemon or cockpit).

We bind the socket ourselves: a port in use is one clear line (uvicorn would `sys.exit`),
port 0 tells us which port it got, and the loopback rule is checked before anything
listens. uvicorn's own signal handling is left out: the host process (the daemon's
SIGTERM handling, the cockpit's keys) decides when we stop, by cancelling `serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import ConfigError

from .guard import is_loopback

if TYPE_CHECKING:
    from agent.config import Config
    from agent.engine import Engine

log = logging.getLogger(__name__)

SHUTDOWN_S = 3.0  # streams are told to end at once; this bounds the rest


class ApiError(ConfigError):
    """The API cannot be served as asked (a busy port, a remote bind not allowed)."""


def remote_warning(host: str, port: int) -> str:
    return (
        f"livhana-cockpit: warning: the HTTP API listens on {host}:{port}, beyond this "
        "machine: anyone who can reach it and holds a token drives the agent, and tokens "
        "travel in clear text over plain HTTP (put it behind TLS)"
    )


def check_bind(host: str, allow_remote: bool) -> None:
    if not is_loopback(host) and not allow_remote:
        raise ApiError(
            f"--api-host {host} is not a loopback address: add --api-allow-remote (or "
            "[api] allow_remote = true) to expose the agent's API to the network"
        )


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ApiError(f"the HTTP API cannot listen on {host}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    # The proto matters: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say
    # IPPROTO_TCP, and with Nagle on, an answer's body waits ~40 ms for the headers' ACK.
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        hint = " (another daemon? use --api-port N or --no-api)" if exc.errno == 98 else ""
        raise ApiError(
            f"the HTTP API cannot listen on {host}:{port}: {exc.strerror or exc}{hint}"
        ) from None
    sock.setblocking(False)
    return sock


class ApiServer:
    """One listening API: `await start()`, then `port`; `await stop()` ends it."""

    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        host: str,
        port: int,
        allow_remote: bool = False,
        workspace: str | Path | None = None,
        secret: str | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        # Where a one-line notice goes (the secret kept in a file): stderr for the daemon,
        # a notification in the cockpit (its screen owns the terminal).
        self.notice = notice or (lambda line: print(line, file=sys.stderr))
        self.config = config
        self.host = host
        self.port = port
        self.allow_remote = allow_remote or config.api.allow_remote
        self.workspace = str(workspace or config.engine.workspace or "")
        self.secret = secret
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self.app: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        import uvicorn

        from .app import create_app
        from .tokens import load_secret

        check_bind(self.host, self.allow_remote)
        if self.workspace:
            ws = Path(self.workspace).expanduser()
            if not ws.is_dir():
                raise ApiError(f"the default workspace {ws} is not a directory")
            self.workspace = str(ws.resolve())
        if self.secret is None:
            notes: list[str] = []
            self.secret = await asyncio.to_thread(load_secret, self.config.data_dir, notes.append)
            for line in notes:
                log.warning("%s", line)
                self.notice(line)
        self._sock = _bind(self.host, self.port)
        self.port = self._sock.getsockname()[1]
        self.app = create_app(
            self.engine,
            self.config,
            secret=self.secret,
            workspace=self.workspace,
            loopback_only=is_loopback(self.host),
        )
        config = uvicorn.Config(
            self.app,
            log_config=None,  # our process owns logging (the cockpit's screen, the daemon's log)
            access_log=False,
            lifespan="off",
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=SHUTDOWN_S,
            timeout_keep_alive=30,
        )
        self._server = _Quiet(config)
        started = asyncio.Event()
        self._server.on_started = started.set
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="api")
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done():  # it ended before it listened: say why
            exc = self._task.exception() if not self._task.cancelled() else None
            raise ApiError(f"the HTTP API did not start: {exc or 'cancelled'}")

    async def wait(self) -> None:
        assert self._task is not None
        await asyncio.shield(self._task)

    async def stop(self) -> None:
        if self._server is None:
            return
        await self.app.state.ctx.feeds.close()  # open streams end now, not at the timeout
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), SHUTDOWN_S + 2)
            if not self._task.done():
                self._server.force_exit = True
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
        if self._sock is not None:
            self._sock.close()
        self._server = None


def _uvicorn_server_class() -> Any:
    import uvicorn

    class Quiet(uvicorn.Server):
        """uvicorn without its own signal handlers, telling us when it listens."""

        on_started: Any = None

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and self.on_started is not None:
                self.on_started()

    return Quiet


def _Quiet(config: Any) -> Any:  # noqa: N802 - a class made lazily (uvicorn is heavy)
    return _uvicorn_server_class()(config)


async def serve_api(
    engine: Engine,
    config: Config,
    *,
    host: str,
    port: int,
    allow_remote: bool = False,
    started: asyncio.Event | None = None,
    workspace: str | Path | None = None,
    notice: Callable[[str], None] | None = None,
) -> None:
    """Serve the API until cancelled; ApiError (one line) when it cannot listen. Where it
    listens (and, beyond loopback, the warning) goes to `notice` (default: stderr)."""
    server = ApiServer(
        engine, config, host=host, port=port, allow_remote=allow_remote, workspace=workspace,
        notice=notice,
    )
    await server.start()
    if not is_loopback(host):
        server.notice(remote_warning(host, server.port))
    server.notice(f"livhana-cockpit: HTTP API on {server.url}")
    if started is not None:
        started.set()
    try:
        await server.wait()
    finally:
        await asyncio.shield(server.stop())
