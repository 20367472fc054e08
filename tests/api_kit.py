"""Helpers for the HTTP API tests: a real uvicorn on loopback over a real engine, tokens of
every kind (good, viewer, expired, forged, alg:none), and a Server-Sent Events reader."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from cockpit.api.server import ApiServer
from cockpit.api.tokens import ISSUER, create_token

SUBJECT = "alice"


@dataclass
class Api:
    server: ApiServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def secret(self) -> str:
        assert self.server.secret is not None
        return self.server.secret

    def token(self, scope: str = "operator", subject: str = SUBJECT, ttl_s: float = 3600) -> str:
        return create_token(self.secret, scope=scope, ttl_s=ttl_s, subject=subject)

    def client(self, token: str | None = "operator", **headers: str) -> httpx.AsyncClient:
        """A client with `Authorization: Bearer <token>` (`token` may be a scope name)."""
        if token in ("operator", "viewer"):
            token = self.token(token)
        if token is not None:
            headers = {"Authorization": f"Bearer {token}", **headers}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@contextlib.asynccontextmanager
async def served(engine: Any, config: Any, **kwargs: Any) -> AsyncIterator[Api]:
    server = ApiServer(engine, config, host="127.0.0.1", port=0, **kwargs)
    await server.start()
    try:
        yield Api(server)
    finally:
        await server.stop()


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "sub": SUBJECT, "scope": "operator", "iat": now, "exp": now + 3600,
            "jti": "t1", **over}  # fmt: skip


def alg_none_token() -> str:
    """An unsigned token claiming operator scope: what a forger tries first."""
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims())}."


def forged_token() -> str:
    """Well-formed and HS256, but signed with a secret that is not the server's."""
    import jwt

    return jwt.encode(claims(), "not-the-secret-" * 4, algorithm="HS256")


def expired_token(secret: str) -> str:
    import jwt

    past = int(time.time()) - 7200
    return jwt.encode(claims(iat=past, exp=past + 60), secret, algorithm="HS256")


@dataclass
class Sse:
    """What one SSE connection delivered: events (id, data) and comment lines."""

    events: list[dict[str, Any]] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    closed: bool = False  # the server ended the stream


async def read_sse(response: httpx.Response, into: Sse, stop_after: int | None = None) -> Sse:
    """Parse the stream into `into` until the server closes it (or `stop_after` events)."""
    event_id, data = None, []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            into.comments.append(line[1:].strip())
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line == "":
            if data:
                into.events.append(json.loads("\n".join(data)))
                into.ids.append(int(event_id or 0))
                if stop_after is not None and len(into.events) >= stop_after:
                    return into
            event_id, data = None, []
    into.closed = True
    return into


class Daemon:
    """`livhana-cockpit --daemon` as a subprocess, its API on a free loopback port; its
    stderr goes to a file (read for the URL), so a chatty daemon never blocks on a pipe."""

    def __init__(self, data_dir: Any, *flags: str, config: Any = None) -> None:
        import subprocess
        import sys
        from pathlib import Path

        from tests.conftest import ROOT

        self.log = Path(data_dir).parent / f"daemon-{id(self)}.log"
        args = [sys.executable, "-m", "cockpit"]
        if config is not None:
            args += ["--config", str(config)]
        self._stderr = self.log.open("w")
        self.proc = subprocess.Popen(
            [*args, "--daemon", "--api-port", "0", *flags],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._stderr, text=True,
        )  # fmt: skip
        self.url = ""

    def wait_ready(self, timeout: float = 60) -> str:
        import re

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"HTTP API on (http://\S+)", self.log.read_text())
            if found:
                self.url = found.group(1)
                return self.url
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"daemon not serving after {timeout}s: {self.log.read_text()}")

    def stop(self) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self._stderr.close()
        return code
