"""Approvals end to end: requested by a running task in this process, decided here or from
another process (the real CLI), with the decider recorded and a timeout that denies."""

from __future__ import annotations

import asyncio
import http.server
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent import events as ev
from agent.config import DeployTarget
from agent.errors import UsageError
from cockpit import run_command
from tests.conftest import ROOT, cli, pending_for, until, write_script


def script(tmp_path: Path, *turns: dict[str, Any]) -> str:
    return write_script(tmp_path / "s.json", [{"match": ".", "turns": list(turns)}])


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "input": args}]}


async def of_type(engine: Any, task_id: str, type_: str) -> list[dict[str, Any]]:
    return [e for e in await engine.events(task_id) if e["type"] == type_]


def pending_rows(db: Path) -> list[tuple[int, str]]:
    """(id, task_id) of the open requests, read from the store file another process writes."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as conn:
            sql = "SELECT id, task_id FROM approvals WHERE state = 'pending' ORDER BY id"
            return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the schema is not there yet
        return []


@pytest.fixture
def deploy_config(config: Any) -> Any:
    config.deploy = {"prod": DeployTarget(command="echo shipped > deployed.txt")}
    return config


async def test_deploy_approved_from_another_process_unblocks_the_task(
    repo: Path, tmp_path: Path, deploy_config: Any, engine_factory: Any
) -> None:
    model = script(tmp_path, call("deploy_code", target="prod"))
    engine = await engine_factory()
    task_id = await engine.submit("deploy it", repo, model=model, apply=False)
    (request,) = await until(lambda: pending_for(engine, task_id))
    assert request["kind"] == "deploy" and request["risk"] == "high"
    assert (await engine.get(task_id))["state"] == ev.AWAITING_APPROVAL
    await asyncio.sleep(0.3)  # it really waits: nothing ran yet
    assert not (Path((await engine.get(task_id))["worktree"]) / "deployed.txt").exists()

    result = await asyncio.to_thread(cli, "approve", task_id)
    assert result.returncode == 0, result.stderr
    assert "approved 1 request" in result.stdout

    task = await asyncio.wait_for(engine.wait(task_id), 5)
    assert task["state"] == ev.SUCCEEDED
    row = await engine.store.get_approval(request["id"])
    by = row["decided_by"]  # the command line, with its pid (two racing ones differ)
    assert row["state"] == "approved" and by.startswith("cli (pid ")
    (decided,) = await of_type(engine, task_id, ev.APPROVAL_DECIDED)
    assert decided["approved"] is True and decided["by"] == by
    (output,) = await of_type(engine, task_id, ev.TOOL_RESULT)
    assert output["is_error"] is False and output["output"].startswith("deployed: target 'prod'")
    assert "deployed.txt" in task["changes"]  # the deploy command really ran, in the worktree
    states = [e["state"] for e in await of_type(engine, task_id, ev.STATUS)]
    assert states[states.index("awaiting_approval") + 1] == "running"  # resumed, then on
    audit = await engine.store.fetch("SELECT actor, action FROM audit WHERE action = 'approve'")
    assert audit == [{"actor": by, "action": "approve"}]


async def test_network_command_denied_from_another_process_goes_on_but_does_not_succeed(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    model = script(
        tmp_path,
        call("execute_bash", command="curl -s http://127.0.0.1:9/ ; touch ran.txt"),
        call("write_file", path="notes.txt", content="no network, writing notes instead\n"),
    )
    engine = await engine_factory()
    task_id = await engine.submit("fetch then note", repo, model=model, apply=False)
    (request,) = await until(lambda: pending_for(engine, task_id))
    assert request["kind"] == "command"
    assert request["detail"]["rule"] == "built-in: looks like network use"

    result = await asyncio.to_thread(cli, "deny", task_id)
    assert result.returncode == 0, result.stderr

    task = await asyncio.wait_for(engine.wait(task_id), 5)
    first, second = await of_type(engine, task_id, ev.TOOL_RESULT)
    assert first["is_error"] is True and "denied" in first["output"]
    assert second["action"] == "write_file" and second["is_error"] is False  # it went on
    assert task["changes"] == ["notes.txt"]  # the denied command never ran
    row = await engine.store.get_approval(request["id"])
    assert row["state"] == "denied" and row["decided_by"].startswith("cli (pid ")
    # The fetch it set out to do never happened: not `succeeded`, and its notes are kept
    # on its branch rather than passed off as the whole job (agent/outcome.py).
    assert task["state"] == ev.FAILED
    assert f"execute_bash curl -s http://127.0.0.1:9/ ; touch ran.txt was denied by {row['decided_by']}" in task["error"]
    assert f"1 changed file(s) kept on branch livhana/{task_id}, not applied" in task["error"]


async def test_in_process_decision_records_who_and_is_final(
    repo: Path, tmp_path: Path, deploy_config: Any, engine_factory: Any
) -> None:
    model = script(tmp_path, call("deploy_code", target="prod"))
    engine = await engine_factory()
    task_id = await engine.submit("deploy it", repo, model=model, apply=False)
    (request,) = await until(lambda: pending_for(engine, task_id))
    await engine.decide(request["id"], False, by="alice", reason="not on a Friday")
    task = await asyncio.wait_for(engine.wait(task_id), 5)
    assert task["state"] == ev.FAILED and task["changes"] == []
    assert task["error"].startswith("not done: deploy_code prod was denied by alice")
    (decided,) = await of_type(engine, task_id, ev.APPROVAL_DECIDED)
    assert decided == {**decided, "approved": False, "by": "alice", "reason": "not on a Friday"}
    # First decider wins: a late answer from anywhere is refused, clearly.
    with pytest.raises(UsageError, match=r"already denied by alice \(not on a Friday\)"):
        await engine.decide(request["id"], True, by="bob")
    late = await asyncio.to_thread(cli, "approve", task_id)
    assert late.returncode == 2 and "no pending approval" in late.stderr
    assert "was denied by alice (not on a Friday)" in late.stderr
    assert (await engine.store.get_approval(request["id"]))["decided_by"] == "alice"


async def test_approval_timeout_denies_with_decided_by_timeout(
    repo: Path, tmp_path: Path, deploy_config: Any, engine_factory: Any
) -> None:
    deploy_config.engine.approval_timeout_s = 0.3
    model = script(tmp_path, call("deploy_code", target="prod"))
    engine = await engine_factory()
    started = time.monotonic()
    task_id = await engine.submit("deploy it", repo, model=model, apply=False)
    task = await asyncio.wait_for(engine.wait(task_id), 5)
    assert time.monotonic() - started < 3
    assert task["state"] == ev.FAILED and task["changes"] == []  # nothing deployed
    assert "deploy_code prod was denied by timeout" in task["error"]
    (decided,) = await of_type(engine, task_id, ev.APPROVAL_DECIDED)
    assert decided["approved"] is False and decided["by"] == "timeout"
    (row,) = await engine.store.approvals(None, task_id=task_id)
    assert row["state"] == "denied" and row["decided_by"] == "timeout"
    (output,) = await of_type(engine, task_id, ev.TOOL_RESULT)
    assert output["is_error"] is True and "denied" in output["output"]


async def test_apply_waits_for_the_operator_and_lands_when_approved_elsewhere(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    model = script(tmp_path, call("write_file", path="app.py", content="def greet():\n    pass\n"))
    engine = await engine_factory()
    task_id = await engine.submit("rewrite app", repo, model=model)
    (request,) = await until(lambda: pending_for(engine, task_id))
    assert request["kind"] == "apply" and request["detail"]["files"] == ["app.py"]
    assert "greet():" in request["detail"]["diff"]
    assert "pass" not in (repo / "app.py").read_text()  # nothing applied before the answer

    result = await asyncio.to_thread(cli, "approve", task_id)
    assert result.returncode == 0, result.stderr
    task = await asyncio.wait_for(engine.wait(task_id), 5)
    assert task["state"] == ev.SUCCEEDED
    assert (repo / "app.py").read_text() == "def greet():\n    pass\n"


async def test_requests_of_a_crashed_engine_leave_the_queue_on_restart(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    """The process that asked died (kill -9): on restart its task is `interrupted`, and
    its request no longer waits in the approval queue for an answer nobody can use."""
    model = script(tmp_path, call("execute_bash", command="curl -s http://127.0.0.1:9/"))
    argv = [sys.executable, "-m", "cockpit", "run", "fetch", "--workspace", str(repo),
            "--model", model, "--approve", "ask", "--json"]  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        db = tmp_path / "data" / "livhana.db"
        ((_, task_id),) = await until(lambda: pending_rows(db), timeout=10)
    finally:
        proc.kill()
        proc.communicate()
    engine = await engine_factory()
    task = await engine.get(task_id)
    assert task["state"] == ev.INTERRUPTED
    assert await engine.pending_approvals() == []
    (row,) = await engine.store.approvals(None, task_id=task_id)
    assert row["state"] == "denied" and row["decided_by"] == "interrupted"
    audited = await engine.store.fetch(
        "SELECT actor FROM audit WHERE task_id = ? AND action = 'deny'", [task_id]
    )
    assert audited == [{"actor": "interrupted"}]


# -- network: an operator's yes to a network request opens the network for that command ------
@pytest.fixture
def http_server() -> Any:
    class Pong(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"pong\n")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pong)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def fetch(port: int) -> str:
    return f"curl -s -m 5 http://127.0.0.1:{port}/ping"


def sneak(port: int) -> str:
    """Network use the policy does not recognise (so it is not asked about)."""
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)"
    return f"{sys.executable} -c \"{code}\" && echo SNEAKED"


async def test_approved_network_command_gets_network_and_only_that_one(
    repo: Path, tmp_path: Path, engine_factory: Any, http_server: int
) -> None:
    model = script(
        tmp_path, call("execute_bash", command=fetch(http_server)),
        call("execute_bash", command=sneak(http_server)),
    )  # fmt: skip
    engine = await engine_factory()
    task_id = await engine.submit("fetch", repo, model=model, apply=False)
    (request,) = await until(lambda: pending_for(engine, task_id))
    assert request["detail"]["rule"] == "built-in: looks like network use"
    assert "network access" in request["summary"]  # the operator knows what a yes means
    await engine.decide(request["id"], True, by="alice")

    task = await asyncio.wait_for(engine.wait(task_id), 10)
    assert task["state"] == ev.SUCCEEDED, task["error"]
    first, second = await of_type(engine, task_id, ev.TOOL_RESULT)
    assert first["is_error"] is False and "pong" in first["output"], first["output"]
    assert first["data"]["network"] is True
    warnings = [e["message"] for e in await of_type(engine, task_id, ev.WARNING)]
    assert "network allowed for this command only: approved by alice" in warnings
    # The next command was not asked about: it runs without network.
    assert second["is_error"] is True and "SNEAKED" not in second["output"]
    assert second["data"]["network"] is False


async def test_network_command_allowed_by_a_rule_keeps_no_network(
    repo: Path, tmp_path: Path, engine_factory: Any, http_server: int
) -> None:
    model = script(tmp_path, call("execute_bash", command=fetch(http_server)))
    engine = await engine_factory()
    task_id = await engine.submit("fetch", repo, model=model, apply=False, approve="auto")
    task = await asyncio.wait_for(engine.wait(task_id), 10)
    assert task["state"] == ev.SUCCEEDED, task["error"]
    (decided,) = await of_type(engine, task_id, ev.APPROVAL_DECIDED)
    assert decided["by"] == "rule:approve=auto"
    (result,) = await of_type(engine, task_id, ev.TOOL_RESULT)
    assert result["is_error"] is True and "pong" not in result["output"]  # refused: no network
    assert result["data"]["network"] is False


# -- without bubblewrap: said before the answer, asked once ---------------------------------
@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent import sandbox

    monkeypatch.setattr(sandbox, "_probe", lambda: (False, "", "bwrap missing (test)"))


@pytest.mark.parametrize(
    "tool_call, ran",
    [
        (call("deploy_code", target="prod"), "deployed.txt"),
        (call("run_tests", command="touch tested.txt"), "tested.txt"),
        (call("execute_bash", command="touch ran.txt"), "ran.txt"),
    ],
)
async def test_unsandboxed_tools_are_asked_once_and_the_card_says_unsandboxed(
    tool_call: dict[str, Any],
    ran: str,
    repo: Path,
    tmp_path: Path,
    deploy_config: Any,
    engine_factory: Any,
    no_bwrap: None,
) -> None:
    engine = await engine_factory()
    task_id = await engine.submit("do it", repo, model=script(tmp_path, tool_call), apply=False)
    (request,) = await until(lambda: pending_for(engine, task_id))
    assert request["summary"].startswith("UNSANDBOXED")
    kinds = [e["type"] for e in await engine.events(task_id)]
    assert kinds.index(ev.WARNING) < kinds.index(ev.APPROVAL_REQUESTED)  # warned first
    await engine.decide(request["id"], True, by="alice")
    task = await asyncio.wait_for(engine.wait(task_id), 10)
    assert task["state"] == ev.SUCCEEDED, task["error"]
    assert len(await engine.store.approvals(None, task_id=task_id)) == 1  # not asked twice
    assert ran in task["changes"]


# -- run --approve ask: a prompt decided elsewhere is withdrawn ------------------------------
async def test_terminal_prompt_is_withdrawn_when_decided_elsewhere(
    repo: Path, tmp_path: Path
) -> None:
    """The first request is denied from another process while `run --approve ask` waits
    on stdin: its prompt says so and the stream goes on; the answer typed next goes to the
    request now shown, not to the one already decided."""
    model = script(
        tmp_path, call("execute_bash", command="curl -s -m 1 http://127.0.0.1:9/a ; true"),
        call("execute_bash", command="curl -s -m 1 http://127.0.0.1:9/b ; true"),
    )  # fmt: skip
    argv = [sys.executable, "-m", "cockpit", "run", "fetch twice", "--workspace", str(repo),
            "--model", model, "--approve", "ask", "--no-apply"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdin is not None and proc.stderr is not None
    err: list[str] = []  # what the operator sees on the terminal, as it comes

    def read_terminal() -> None:  # raw reads: a prompt has no newline to wait for
        while chunk := os.read(proc.stderr.fileno(), 4096):
            err.append(chunk.decode(errors="replace"))

    reader = threading.Thread(target=read_terminal)
    reader.start()
    db = tmp_path / "data" / "livhana.db"
    try:
        ((first, task_id),) = await until(lambda: pending_rows(db), timeout=15)
        await until(lambda: "Approve:" in "".join(err), timeout=10)
        denied = await asyncio.to_thread(cli, "deny", task_id)
        assert denied.returncode == 0, denied.stderr
        withdrawn = f"(withdrawn: request {first} was denied by cli (pid "
        await until(lambda: withdrawn in "".join(err), timeout=10)  # said, and the stream goes on
        ((second, _),) = await until(
            lambda: [r for r in pending_rows(db) if r[0] != first], timeout=10
        )
        # The operator answers once the second prompt shows (its row comes first: typed
        # before the prompt, the line is one typed for the withdrawn request, and dropped).
        await until(lambda: "".join(err).count("Approve:") >= 2, timeout=10)
        proc.stdin.write("y\n")
        proc.stdin.flush()
        await asyncio.to_thread(proc.wait, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join(5)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, state, decided_by FROM approvals ORDER BY id").fetchall()
    # The second answer came through a pipe, not a terminal: it is attributed as such.
    assert [r[:2] for r in rows] == [(first, "denied"), (second, "approved")]
    assert rows[0][2].startswith("cli (pid ") and rows[1][2] == "stdin (not a terminal)"
    assert proc.returncode == 1, "".join(err)  # the first fetch was denied: not succeeded


async def test_a_line_typed_the_moment_a_prompt_shows_answers_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The prompt's reader is armed before the prompt is written: a line that arrives while
    the event loop is still busy (a loaded machine) answers it. Armed later, by a task the
    loop had not run yet, the reader thread found no prompt and dropped the line."""
    read_end, write_end = os.pipe()
    monkeypatch.setattr(sys, "stdin", os.fdopen(read_end))
    terminal = run_command._Terminal()  # noqa: SLF001
    withdrawn = terminal.ask()  # a first prompt...
    await asyncio.sleep(0.05)  # ...whose reader thread now waits on stdin...
    withdrawn.cancel()  # ...is withdrawn: the thread stays blocked in its read
    await asyncio.sleep(0.05)
    answer = terminal.ask()  # the next prompt, shown now
    os.write(write_end, b"y\n")
    time.sleep(0.3)  # the loop is busy; the reader thread takes the line meanwhile
    assert await asyncio.wait_for(answer, 5) == "y\n"
    os.close(write_end)  # EOF ends the reader thread
