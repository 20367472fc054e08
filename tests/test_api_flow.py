"""The seed's flow through the HTTP API: a real uvicorn on loopback, the real engine on a real
git repository, the real AsyncAnthropic client against the fake Messages server.

execute (approve: ask) -> stream -> approve over the API -> the stream ends after
`complete` -> the fix is in the operator's checkout -> history and metrics show it. Then
the stream resumed with Last-Event-ID, mid-task and after the end, and its keep-alive."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.api_kit import SUBJECT, Sse, read_sse, served
from tests.conftest import until
from tests.fake_anthropic import FakeAnthropic

FIXED = "def greet(name):\n    return 'hello ' + name.strip()\n"
TURNS = [
    {
        "thinking": "Read the helper first.",
        "tool_calls": [{"name": "read_file", "input": {"path": "app.py"}}],
    },
    {
        "thinking": "Names with spaces break the greeting: strip them.",
        "tool_calls": [{"name": "write_file", "input": {"path": "app.py", "content": FIXED}}],
    },
    {"text": "greet() now strips surrounding spaces from the name."},
]
LEARNED = {"patterns": ["greet() is the only entry point"], "improvements": [], "nextSteps": []}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    with FakeAnthropic(TURNS, learnings_reply=LEARNED) as server:
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def model_config(config: Any) -> Any:
    config.engine.model_retries = 2
    config.engine.retry_base_s = 0.05
    return config


async def _stream(client: Any, task_id: str, into: Sse, last: int | None = None,
                  stop_after: int | None = None) -> Sse:  # fmt: skip
    headers = {"Last-Event-ID": str(last)} if last is not None else {}
    async with client.stream("GET", f"/api/autonomous/stream/{task_id}", headers=headers) as resp:
        assert resp.status_code == 200, await resp.aread()
        assert resp.headers["content-type"].startswith("text/event-stream")
        return await read_sse(resp, into, stop_after)


async def test_execute_stream_approve_complete_applied_history_metrics(
    repo: Path, fake: Any, model_config: Any, engine_factory: Any
) -> None:
    engine = await engine_factory(cfg=model_config, role="daemon")
    async with served(engine, model_config) as api, api.client() as client:
        answer = await client.post(
            "/api/autonomous/execute",
            json={"task": "greet() breaks on names with spaces", "workspace": str(repo),
                  "approve": "ask", "context": {"ticket": "BUG-7"}},
        )  # fmt: skip
        assert answer.status_code == 202, answer.text
        body = answer.json()
        task_id = body["taskId"]
        assert body["status"] == "queued"
        assert body["streamUrl"] == f"/api/autonomous/stream/{task_id}"

        seen = Sse()
        streaming = asyncio.create_task(_stream(client, task_id, seen))
        # The apply request reaches the stream; the task waits for us.
        await until(lambda: any(e["type"] == "approval_requested" for e in seen.events), 60)
        asked = next(e for e in seen.events if e["type"] == "approval_requested")
        assert asked["kind"] == "apply" and "app.py" in asked["detail"]["files"]
        assert "strip" not in (repo / "app.py").read_text()  # nothing applied before the yes
        status = (await client.get(f"/api/autonomous/tasks/{task_id}")).json()
        assert status["state"] == "awaiting_approval"
        assert [a["state"] for a in status["approvals"]] == ["pending"]
        assert "name.strip()" in status["approvals"][0]["detail"]["diff"]

        decided = await client.post(f"/api/autonomous/approve/{task_id}",
                                    json={"approved": True, "notes": "reviewed the diff"})
        assert decided.status_code == 200, decided.text
        assert decided.json()["decided"] == 1 and decided.json()["by"] == f"api:{SUBJECT}"

        await asyncio.wait_for(streaming, 60)  # the server closed the stream by itself...
        assert seen.closed
        assert seen.events[-1]["type"] == "complete"  # ...right after the final event
        assert seen.events[-1]["success"] is True and seen.events[-1]["changes"] == ["app.py"]
        # One event shape, numbered like the store, each exactly once.
        stored = await engine.events(task_id)
        assert seen.events == stored
        assert seen.ids == [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
        said = next(e for e in seen.events if e["type"] == "approval_decided")
        assert said["by"] == f"api:{SUBJECT}" and said["approved"] is True

        assert (repo / "app.py").read_text() == FIXED  # the fix is in the operator's checkout
        history = (await client.get("/api/autonomous/history")).json()
        assert [(t["id"], t["state"]) for t in history["tasks"]] == [(task_id, "succeeded")]
        assert "BUG-7" in history["tasks"][0]["title"]  # the context reached the agent's task
        assert "BUG-7" in json.dumps(fake.requests[0]["messages"][0])
        totals = (await client.get("/api/autonomous/metrics")).json()["totals"]
        assert totals["succeeded"] == 1 and totals["success_rate"] == 1.0
        learned = (await client.get("/api/autonomous/learnings")).json()
        assert learned == {"patterns": LEARNED["patterns"], "improvements": [], "nextSteps": []}

    audit = await engine.store.fetch("SELECT actor, action, detail FROM audit ORDER BY id")
    mine = [(a["actor"], a["action"]) for a in audit if a["actor"] == f"api:{SUBJECT}"]
    assert ("api:alice", "submit") in mine and ("api:alice", "approve") in mine
    approve_row = next(a for a in audit if a["action"] == "approve")
    assert json.loads(approve_row["detail"])["reason"] == "reviewed the diff"


async def test_resume_with_last_event_id_mid_task_and_after_the_end(
    repo: Path, fake: Any, model_config: Any, engine_factory: Any
) -> None:
    engine = await engine_factory(cfg=model_config, role="daemon")
    async with served(engine, model_config) as api, api.client() as client:
        task_id = (await client.post("/api/autonomous/execute", json={
            "task": "greet() breaks on names with spaces", "workspace": str(repo)})).json()["taskId"]
        first = await _stream(client, task_id, Sse(), stop_after=3)  # the client drops off
        assert first.ids == [1, 2, 3] and not first.closed
        await until(lambda: engine.pending_approvals(), 60)
        # Reconnect where it left off: the rest, from 4, nothing twice, nothing skipped.
        second = Sse()
        resumed = asyncio.create_task(_stream(client, task_id, second, last=first.ids[-1]))
        await until(lambda: any(e["type"] == "approval_requested" for e in second.events), 30)
        assert second.ids[0] == 4
        await client.post(f"/api/autonomous/approve/{task_id}", json={"approved": True})
        await asyncio.wait_for(resumed, 60)
        stored = await engine.events(task_id)
        assert first.events + second.events == stored
        assert second.closed and second.events[-1]["type"] == "complete"

        # After the end: a resume replays only what came after the given id, then closes.
        tail = await _stream(client, task_id, Sse(), last=len(stored) - 2)
        assert tail.events == stored[-2:] and tail.closed
        # A whole replay of an ended task, and an id past the end: both close, no hang.
        assert (await _stream(client, task_id, Sse())).events == stored
        assert (await _stream(client, task_id, Sse(), last=len(stored) + 50)).events == []
        bad = await client.get(f"/api/autonomous/stream/{task_id}",
                               headers={"Last-Event-ID": "seven"})
        assert bad.status_code == 400 and bad.json()["field"] == "Last-Event-ID"


async def test_a_quiet_stream_sends_keep_alive_comments(
    repo: Path, fake: Any, model_config: Any, engine_factory: Any, monkeypatch: Any
) -> None:
    from cockpit.api import stream

    monkeypatch.setattr(stream, "KEEPALIVE_S", 0.2)
    engine = await engine_factory(cfg=model_config, role="daemon")
    async with served(engine, model_config) as api, api.client() as client:
        task_id = (await client.post("/api/autonomous/execute", json={
            "task": "greet() breaks on names with spaces", "workspace": str(repo)})).json()["taskId"]
        await until(lambda: engine.pending_approvals(), 60)  # it waits for us: a quiet stream
        seen = Sse()
        reading = asyncio.create_task(_stream(client, task_id, seen))
        await until(lambda: len(seen.comments) >= 2, 10)
        assert set(seen.comments) == {"keep-alive"}
        count = len(seen.events)
        await client.post(f"/api/autonomous/cancel/{task_id}")
        await asyncio.wait_for(reading, 30)
        assert seen.closed and seen.events[-1]["type"] == "complete"
        assert len(seen.events) > count
        states = [e["state"] for e in seen.events if e["type"] == "status"]
        assert states[-1] == "cancelled"


async def test_the_default_workspace_is_the_servers(
    repo: Path, fake: Any, model_config: Any, engine_factory: Any
) -> None:
    engine = await engine_factory(cfg=model_config, role="daemon")
    async with served(engine, model_config, workspace=repo) as api, api.client() as client:
        answer = await client.post("/api/autonomous/execute", json={"task": "fix greet()"})
        assert answer.status_code == 202, answer.text
        task = (await client.get(f"/api/autonomous/tasks/{answer.json()['taskId']}")).json()
        assert task["workspace"] == str(repo.resolve())
        await client.post(f"/api/autonomous/cancel/{task['id']}")
        await engine.wait(task["id"])
    async with served(engine, model_config) as api, api.client() as client:  # none to default to
        answer = await client.post("/api/autonomous/execute", json={"task": "fix greet()"})
        assert answer.status_code == 422 and answer.json()["field"] == "workspace"
        assert "--workspace" in answer.json()["error"]
