"""Who may call the API, and what it says to everyone else: every route with no token, a
garbage, forged, alg:none or expired token, a viewer token, and a foreign Origin; bad
bodies named by field; 404, 413 (enforced while reading), 429 with Retry-After; the
signing secret in the keyring or a 0600 file; `token create` on the real CLI."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_kit import SUBJECT, alg_none_token, expired_token, forged_token, served
from tests.conftest import cli

ACTING = [
    ("POST", "/api/autonomous/execute", {"task": "x"}),
    ("POST", "/api/autonomous/approve/{id}", {"approved": True}),
    ("POST", "/api/autonomous/cancel/{id}", None),
    ("POST", "/api/autonomous/rollback/{id}", None),
]
READING = [
    ("GET", "/api/autonomous/tasks/{id}", None),
    ("GET", "/api/autonomous/tasks", None),
    ("GET", "/api/autonomous/stream/{id}", None),
    ("GET", "/api/autonomous/history", None),
    ("GET", "/api/autonomous/learnings", None),
    ("GET", "/api/autonomous/capabilities", None),
    ("GET", "/api/autonomous/metrics", None),
]
ROUTES = ACTING + READING


@pytest.fixture
async def api(engine_factory: Any, config: Any, repo: Path) -> Any:
    """The API on an engine holding one ended task (so {id} routes have a real target)."""
    engine = await engine_factory(role="daemon")
    task_id = await engine.submit("nothing to do", repo, approve="deny")
    await engine.cancel(task_id)
    await engine.wait(task_id)
    async with served(engine, config, workspace=repo) as running:
        running.task_id = task_id  # type: ignore[attr-defined]
        yield running


async def _call(api: Any, client: httpx.AsyncClient, route: tuple[str, str, Any]) -> httpx.Response:
    method, path, body = route
    path = path.replace("{id}", api.task_id)
    if path.startswith("/api/autonomous/stream/"):
        async with client.stream(method, path) as resp:  # a stream answers at once; don't read it
            if resp.status_code != 200:
                await resp.aread()
            return resp
    return await client.request(method, path, json=body)


@pytest.mark.parametrize(
    "kind", ["none", "garbage", "not bearer", "forged", "alg none", "expired", "huge"]
)
async def test_every_route_refuses_a_missing_or_bad_token_with_401(api: Any, kind: str) -> None:
    token = {
        "none": None,
        "garbage": "not.a.jwt",
        "not bearer": None,
        "forged": forged_token(),
        "alg none": alg_none_token(),
        "expired": expired_token(api.secret),
        "huge": "a" * 20_000,
    }[kind]
    headers = {"Authorization": f"Basic {api.token()}"} if kind == "not bearer" else {}
    async with api.client(token, **headers) as client:
        for route in ROUTES:
            resp = await _call(api, client, route)
            assert resp.status_code == 401, (route, kind, resp.text)
            assert resp.headers["www-authenticate"].startswith("Bearer")
            body = json.loads(await resp.aread() or b"{}")
            assert body["error"]
            if kind == "expired":
                assert "expired" in body["error"]
            if kind == "alg none":
                assert "HS256" in body["error"] or "not valid" in body["error"]
    engine = api.server.engine
    assert len(await engine.list(limit=10)) == 1  # nothing was started by any of them


async def test_a_token_that_worked_is_refused_once_it_expires(api: Any) -> None:
    """The server remembers tokens it has checked (a client sends the same one each time):
    what it remembers never outlives the token."""
    import time

    import jwt

    from cockpit.api.tokens import LEEWAY_S
    from tests.api_kit import claims

    now = int(time.time())
    token = jwt.encode(claims(iat=now - 60, exp=now - LEEWAY_S + 2), api.secret, algorithm="HS256")
    async with api.client(token) as client:
        assert (await client.get("/api/autonomous/capabilities")).status_code == 200
        await asyncio.sleep(max(0.0, now + 2.2 - time.time()))  # past exp and the leeway
        late = await client.get("/api/autonomous/capabilities")
        assert late.status_code == 401 and "expired" in late.json()["error"]


async def test_a_viewer_reads_but_may_not_act(api: Any) -> None:
    async with api.client("viewer") as client:
        for route in ACTING:
            resp = await _call(api, client, route)
            assert resp.status_code == 403, (route, resp.text)
            assert "operator token" in resp.json()["error"]
        for route in READING:
            resp = await _call(api, client, route)
            assert resp.status_code == 200, (route, resp.text)
    assert len(await api.server.engine.list(limit=10)) == 1


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://localhost:4002"])
async def test_a_foreign_origin_is_refused_on_every_route_even_with_a_good_token(
    api: Any, origin: str
) -> None:
    async with api.client("operator", Origin=origin) as client:
        for route in [*ROUTES, ("GET", "/healthz", None), ("GET", "/api/openapi.json", None)]:
            resp = await _call(api, client, route)
            assert resp.status_code == 403, (route, resp.text)
            body = json.loads(await resp.aread())
            assert body["field"] == "Origin" and "allowed_origins" in body["error"]
    assert len(await api.server.engine.list(limit=10)) == 1


async def test_a_listed_origin_is_served_and_a_rebound_host_is_not(
    engine_factory: Any, config: Any, repo: Path
) -> None:
    config.api.allowed_origins = ["http://localhost:5173"]
    engine = await engine_factory(role="daemon")
    async with served(engine, config) as api:
        async with api.client("viewer", Origin="http://localhost:5173") as client:
            resp = await client.get("/api/autonomous/history")
            assert resp.status_code == 200
            assert resp.headers["access-control-allow-origin"] == "http://localhost:5173"
        # DNS rebinding: a page whose name now points at 127.0.0.1 still sends its name.
        async with api.client("viewer", Host="attacker.example:4002") as client:
            resp = await client.get("/api/autonomous/history")
            assert resp.status_code == 403 and resp.json()["field"] == "Host"
        async with api.client("viewer", Host="localhost:4002") as client:
            assert (await client.get("/api/autonomous/history")).status_code == 200


async def test_health_and_the_openapi_document_need_no_token(api: Any) -> None:
    async with api.client(None) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        spec = (await client.get("/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    for method, path, _ in ROUTES:
        assert (method, path) in documented


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, "body"),
        (b"[1, 2]", 400, "body"),
        (b"", 400, "body"),
        (b"\xff\xfe", 400, "body"),
        (b'{"task": NaN}', 400, "body"),
        (b'{"task": 5}', 422, "task"),
        (b'{"task": ""}', 422, "task"),
        (b'{"task": "   "}', 422, "task"),
        (b'{"workspace": "/tmp"}', 422, "task"),
        (b'{"task": "x", "approve": "maybe"}', 422, "approve"),
        (b'{"task": "x", "approve": true}', 422, "approve"),
        (b'{"task": "x", "workspace": 7}', 422, "workspace"),
        (b'{"task": "x", "workspace": "relative/dir"}', 422, "workspace"),
        (b'{"task": "x", "workspace": "/no/such/dir"}', 422, "workspace"),
        (b'{"task": "x", "workspace": "/tmp/a\\u0000b"}', 422, "workspace"),
        (b'{"task": "x", "workspace": "/tmp/\\ud800"}', 422, "workspace"),
        (b'{"task": "x", "workspace": "/"}', 422, "workspace"),
        (b'{"task": "x", "workspace": "/etc/ssl"}', 422, "workspace"),
        (b'{"task": "x", "workspace": "/tmp"}', 422, "workspace"),
        (b'{"task": "x", "context": "text"}', 422, "context"),
        (b'{"task": "x", "maxSteps": 0}', 422, "maxSteps"),
        (b'{"task": "x", "maxSteps": 1.5}', 422, "maxSteps"),
        (b'{"task": "x", "maxCost": -1}', 422, "maxCost"),
        (b'{"task": "x", "requireApproval": true}', 422, "requireApproval"),
        (b'{"task": "' + b"x" * 10_001 + b'"}', 422, "task"),
    ],
)
async def test_bad_execute_bodies_name_the_field(
    api: Any, body: bytes, status: int, field: str
) -> None:
    async with api.client() as client:
        resp = await client.post("/api/autonomous/execute", content=body,
                                 headers={"Content-Type": "application/json"})
    assert resp.status_code == status, resp.text
    assert resp.json()["field"] == field
    assert "\n" not in resp.json()["error"]
    assert len(await api.server.engine.list(limit=10)) == 1


async def test_bad_approve_bodies_unknown_tasks_and_ended_tasks(api: Any) -> None:
    async with api.client() as client:
        resp = await client.post(f"/api/autonomous/approve/{api.task_id}", json={"approved": "yes"})
        assert resp.status_code == 422 and resp.json()["field"] == "approved"
        resp = await client.post(f"/api/autonomous/approve/{api.task_id}", json={})
        assert resp.status_code == 422 and resp.json()["field"] == "approved"
        for path in ("tasks/ffffffffffff", "tasks/____", "tasks/%25", "stream/0000",
                     "tasks/" + "a" * 300):
            resp = await client.get(f"/api/autonomous/{path}")
            assert resp.status_code == 404, (path, resp.text)
        for verb in ("approve", "cancel", "rollback"):
            resp = await client.post(f"/api/autonomous/{verb}/abcdef12", json={"approved": True})
            assert resp.status_code == 404
        # The task ended (cancelled): nothing to approve or cancel; the answer says why.
        resp = await client.post(f"/api/autonomous/approve/{api.task_id}", json={"approved": True})
        assert resp.status_code == 409 and "no pending approval" in resp.json()["error"]
        resp = await client.post(f"/api/autonomous/cancel/{api.task_id}")
        assert resp.status_code == 409 and "already ended" in resp.json()["error"]
        resp = await client.get("/api/autonomous/history", params={"limit": "lots"})
        assert resp.status_code == 400 and resp.json()["field"] == "limit"
        resp = await client.delete(f"/api/autonomous/tasks/{api.task_id}")
        assert resp.status_code == 405


async def test_a_body_over_1_mb_is_refused_while_it_is_read(api: Any) -> None:
    async with api.client() as client:
        declared = await client.post("/api/autonomous/execute", content=b"x" * (1024 * 1024 + 1))
        assert declared.status_code == 413
    # No Content-Length (chunked), and the sender never finishes: the answer must come as
    # soon as 1 MB has passed, not after a body that never ends.
    host, port = api.server.host, api.server.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /api/autonomous/execute HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + api.token().encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"a" * 65536
    for _ in range(20):  # 1.25 MB, then silence
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 413")
    writer.close()


async def test_the_rate_limit_is_per_token_with_retry_after(
    engine_factory: Any, config: Any
) -> None:
    config.api.rate_limit = 1.0
    config.api.rate_burst = 3
    engine = await engine_factory(role="daemon")
    async with (
        served(engine, config) as api,
        api.client("viewer") as first,
        api.client("viewer") as second,
    ):
        codes = [(await first.get("/api/autonomous/learnings")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        refused = await first.get("/api/autonomous/learnings")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "retry in" in refused.json()["error"]
        assert (await second.get("/api/autonomous/learnings")).status_code == 200


async def test_decisions_through_the_api_are_audited_with_the_tokens_subject(api: Any) -> None:
    engine = api.server.engine
    async with api.client(api.token(subject="ci-bot")) as client:
        answer = await client.post("/api/autonomous/execute",
                                   json={"task": "tidy up", "approve": "deny"})
        task_id = answer.json()["taskId"]
        await client.post(f"/api/autonomous/cancel/{task_id}")
    await engine.wait(task_id)
    rows = await engine.store.fetch(
        "SELECT actor, action FROM audit WHERE task_id = ? ORDER BY id", [task_id]
    )
    assert ("api:ci-bot", "submit") in [(r["actor"], r["action"]) for r in rows]
    assert ("api:ci-bot", "cancel") in [(r["actor"], r["action"]) for r in rows]
    ok, _ = await engine.audit_verify()
    assert ok


# -- the signing secret and `token create` ---------------------------------------------------


def test_token_create_prints_the_token_alone_signed_with_the_keyring_secret(
    tmp_path: Path,
) -> None:
    import jwt

    from agent import secrets
    from cockpit.api.tokens import JWT_SECRET_NAME

    made = cli("token", "create", "--scope", "viewer", "--ttl", "30m", "--subject", "ops-board")
    assert made.returncode == 0, made.stderr
    token = made.stdout
    assert token.count("\n") == 1 and token.count(".") == 2 and made.stderr == ""
    secret = secrets.get_secret(JWT_SECRET_NAME)
    assert secret  # in the (test's) OS keyring, not a file
    assert not (tmp_path / "data" / "api-jwt-secret").exists()
    claims = jwt.decode(token.strip(), secret, algorithms=["HS256"], issuer="livhana-cockpit")
    assert claims["scope"] == "viewer" and claims["sub"] == "ops-board"
    assert 1790 <= claims["exp"] - claims["iat"] <= 1800
    again = cli("token", "create")  # the same secret signs the next one
    assert jwt.decode(again.stdout.strip(), secret, algorithms=["HS256"])["scope"] == "operator"
    for bad in (["--ttl", "forever"], ["--ttl", "0s"], ["--ttl", "400d"], ["--scope", "admin"]):
        result = cli("token", "create", *bad)
        assert result.returncode == 2 and result.stdout == "", bad
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_without_a_keyring_the_secret_is_a_0600_file_with_a_notice(
    broken_keyring: Any, tmp_path: Path
) -> None:
    import jwt

    made = cli("token", "create", "--subject", SUBJECT)
    assert made.returncode == 0, made.stderr
    path = tmp_path / "data" / "api-jwt-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert made.stderr.count("\n") == 1 and str(path) in made.stderr and "0600" in made.stderr
    secret = path.read_text()
    assert jwt.decode(made.stdout.strip(), secret, algorithms=["HS256"])["sub"] == SUBJECT
    # Once chosen, it stays (and says nothing more); opened to others, it is refused.
    again = cli("token", "create")
    assert again.returncode == 0 and again.stderr == ""
    os.chmod(path, 0o644)
    refused = cli("token", "create")
    assert refused.returncode == 2 and refused.stdout == ""
    assert "can be read by others" in refused.stderr and "Traceback" not in refused.stderr


async def test_a_token_from_the_cli_opens_the_api_and_viewer_tokens_stay_viewers(
    engine_factory: Any, config: Any
) -> None:
    operator = (await asyncio.to_thread(cli, "token", "create")).stdout.strip()
    viewer = (await asyncio.to_thread(cli, "token", "create", "--scope", "viewer")).stdout.strip()
    engine = await engine_factory(role="daemon")
    async with served(engine, config) as api:
        async with api.client(viewer) as client:
            assert (await client.get("/api/autonomous/history")).status_code == 200
            assert (await client.post("/api/autonomous/execute", json={"task": "x"})).status_code == 403
        async with api.client(operator) as client:
            resp = await client.post("/api/autonomous/execute", json={"task": "x"})
            assert resp.status_code == 422  # past auth: it only lacks a workspace


async def _raw(api: Any, request: bytes) -> bytes:
    """One request written byte for byte (what a client library would refuse to send)."""
    reader, writer = await asyncio.open_connection(api.server.host, api.server.port)
    writer.write(request)
    await writer.drain()
    head = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    return head


async def test_odd_numbers_and_bytes_are_refused_as_bad_input_never_a_5xx(api: Any) -> None:
    auth = b"Authorization: Bearer " + api.token().encode() + b"\r\n"
    stream = f"/api/autonomous/stream/{api.task_id}".encode()
    requests = {
        "a superscript digit as a limit": b"GET /api/autonomous/history?limit=%C2%B2 HTTP/1.1\r\n",
        "a 5000-digit limit": b"GET /api/autonomous/history?limit=" + b"9" * 5000 + b" HTTP/1.1\r\n",
        "a superscript Last-Event-ID": b"GET " + stream + b" HTTP/1.1\r\nLast-Event-ID: \xb9\r\n",
        "a superscript Content-Length": b"POST /api/autonomous/execute HTTP/1.1\r\n"
                                        b"Content-Length: \xb2\r\n",
        "undecodable bytes in the path": b"GET /api/autonomous/tasks/%ff%fe HTTP/1.1\r\n",
        "a lone surrogate in the path": b"GET /api/autonomous/tasks/%ED%A0%80 HTTP/1.1\r\n",
        "latin-1 in the Origin": b"GET /healthz HTTP/1.1\r\nOrigin: http://\xe9vil\r\n",
        "latin-1 in the token": b"GET /api/autonomous/history HTTP/1.1\r\n"
                                b"Authorization: Bearer \xe9\xe9.\xe9.\xe9\r\n",
    }
    for what, head in requests.items():
        if b"Authorization" not in head:
            head += auth
        answer = await _raw(api, head + b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, (what, answer[:300])


async def test_a_token_cannot_aim_the_agent_at_home_system_or_the_data_dir(
    engine_factory: Any, config: Any, repo: Path, tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    engine = await engine_factory(role="daemon")
    async with served(engine, config) as api, api.client() as client:
        for place in (Path.home(), config.data_dir, Path("/usr/lib"), Path("/")):
            resp = await client.post("/api/autonomous/execute",
                                     json={"task": "x", "workspace": str(place)})
            assert resp.status_code == 422 and resp.json()["field"] == "workspace", place
    config.api.workspaces = [str(repo)]
    async with served(engine, config) as api, api.client() as client:
        resp = await client.post("/api/autonomous/execute",
                                 json={"task": "x", "workspace": str(other)})
        assert resp.status_code == 422 and "[api] workspaces" in resp.json()["error"]
        resp = await client.post("/api/autonomous/execute",
                                 json={"task": "x", "workspace": str(repo), "approve": "deny"})
        assert resp.status_code == 202, resp.text
        await client.post(f"/api/autonomous/cancel/{resp.json()['taskId']}")
        await engine.wait(resp.json()["taskId"])
    assert len(await engine.list(limit=10)) == 1
