"""The API server inside an engine's process: answers are not held back by Nagle, `serve_api`
runs until cancelled and then frees its port, open streams end at once when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from cockpit.api.server import serve_api
from cockpit.api.tokens import create_token, load_secret
from tests.api_kit import served
from tests.conftest import until, write_script


async def test_connections_have_nagle_off(engine_factory: Any, config: Any) -> None:
    """With Nagle on, each answer's body waits ~40 ms for the ACK of its headers."""
    engine = await engine_factory(role="daemon")
    async with served(engine, config) as api, api.client(None) as client:
        assert (await client.get("/healthz")).status_code == 200  # a kept-alive connection
        connections = api.server._server.server_state.connections
        sockets = [c.transport.get_extra_info("socket") for c in connections]
        assert sockets
        assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)


async def test_serve_api_runs_until_cancelled_then_frees_its_port(
    engine_factory: Any, config: Any
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = await engine_factory(role="daemon")
    started = asyncio.Event()
    said: list[str] = []
    serving = asyncio.create_task(
        serve_api(engine, config, host="127.0.0.1", port=port, started=started, notice=said.append)
    )
    await asyncio.wait_for(started.wait(), 30)
    assert said == [f"livhana-cockpit: HTTP API on http://127.0.0.1:{port}"]
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    with socket.socket() as again:  # the port is free again
        again.bind(("127.0.0.1", port))


@contextlib.asynccontextmanager
async def following(
    engine_factory: Any, config: Any, repo: Path, tmp_path: Path
) -> AsyncIterator[tuple[Any, str, list[str], asyncio.Task[None]]]:
    """A served API with a slow task and one client following its stream: (the served
    API, the task's id, the stream's lines so far, the reading task)."""
    config.engine.model = write_script(
        tmp_path / "s.json", [{"match": ".", "turns": [{"delay_s": 60, "text": "slow"}]}]
    )
    engine = await engine_factory(role="daemon")
    token = create_token(load_secret(config.data_dir))
    async with served(engine, config, workspace=repo) as api, api.client(token) as client:
        answer = await client.post("/api/autonomous/execute", json={"task": "wait"})
        task_id = answer.json()["taskId"]
        lines: list[str] = []

        async def read() -> None:
            async with client.stream("GET", f"/api/autonomous/stream/{task_id}") as resp:
                async for line in resp.aiter_lines():
                    lines.append(line)

        reading = asyncio.create_task(read())
        await until(lambda: any(line.startswith("data:") for line in lines), 30)
        yield api, task_id, lines, reading


async def test_stopping_ends_open_streams_at_once(
    engine_factory: Any, config: Any, repo: Path, tmp_path: Path
) -> None:
    async with following(engine_factory, config, repo, tmp_path) as (api, _, _, reading):
        began = time.monotonic()
        await api.server.stop()
        await asyncio.wait_for(reading, 10)
        assert time.monotonic() - began < 2  # not the 15 s keep-alive, nor the shutdown timeout


async def test_a_stream_open_at_the_stop_gets_what_was_stored_before_it(
    engine_factory: Any, config: Any, repo: Path, tmp_path: Path
) -> None:
    """Stopping ends a stream only after the events already stored: a client that was
    following a task gets them now, not at its resume (CI once saw a stream end with
    none, the server stopping before its first read)."""
    from agent.store import Store

    async with following(engine_factory, config, repo, tmp_path) as (api, task_id, lines, reading):
        # Another process (a cockpit) stores an event just before the stop: this one's feed
        # has not read it yet.
        other = await Store.open(config.store_path)
        try:
            seq = await other.max_seq(task_id) + 1
            await other.append_events([{"task_id": task_id, "seq": seq, "ts": time.time(),
                                        "type": "text", "text": "stored before the stop"}])
        finally:
            await other.close()
        await api.server.stop()
        await asyncio.wait_for(reading, 10)
    assert f"id: {seq}" in lines
    assert any("stored before the stop" in line for line in lines if line.startswith("data:"))
