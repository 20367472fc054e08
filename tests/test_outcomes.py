"""True outcomes (agent/outcome.py): a task whose action was denied, or whose deploy
failed, and never made good, is not `succeeded`, whatever the model says at the end; and
a request nobody answered is recorded as exactly that, never as the operator's no."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from agent import events as ev
from agent.config import DatabaseConfig, DeployTarget
from tests.conftest import ROOT, cli, git, pending_for, until, write_script

NOBODY = "nobody (stdin closed)"
DEPLOYED = "Deployed to production."


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "input": args}]}


def script(tmp_path: Path, *turns: dict[str, Any], summary: str = DEPLOYED) -> str:
    scripts = [{"match": ".", "turns": list(turns), "summary": summary}]
    return write_script(tmp_path / "s.json", scripts)


def configure_deploy(tmp_path: Path, command: str = "echo shipped > deployed.txt") -> None:
    """config.toml in the data dir every command line of the test uses."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "config.toml").write_text(f"[deploy.prod]\ncommand = {json.dumps(command)}\n")


def events_of(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def store(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "data" / "livhana.db") as conn:
        return conn.execute(sql).fetchall()


def asked(db: Path) -> list[tuple[Any, ...]]:
    """The requests in the store another process is writing (none before its schema)."""
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT task_id FROM approvals").fetchall()
    except sqlite3.OperationalError:
        return []


def run_argv(repo: Path, model: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cockpit", "run", "deploy it", "--workspace", str(repo),
            "--model", model, *extra]  # fmt: skip


def assert_failed_by(tmp_path: Path, events: list[dict[str, Any]], who: str) -> None:
    """Stream, record and audit agree: denied by `who`, the task failed, not 'Deployed'."""
    missed = f"not done: deploy_code prod was denied by {who}"
    (decided,) = [e for e in events if e["type"] == "approval_decided"]
    assert decided["approved"] is False and decided["by"] == who
    verification = [e for e in events if e["type"] == "verification"][-1]
    assert verification["passed"] is False and verification["evidence"].startswith(missed)
    states = [e["state"] for e in events if e["type"] == "status"]
    assert states[-1] == "failed" and "succeeded" not in states
    complete = events[-1]
    assert complete["type"] == "complete" and complete["success"] is False
    assert complete["summary"].startswith(missed) and DEPLOYED not in complete["summary"]
    (task,) = json.loads(cli("history", "--json").stdout)
    assert task["state"] == "failed" and task["error"].startswith(missed)
    rows = store(tmp_path, "SELECT state, decided_by FROM approvals")
    assert rows == [("denied", who)]
    audit = store(tmp_path, "SELECT actor FROM audit WHERE action IN ('approve', 'deny')")
    assert audit == [(who,)]


# -- nobody at the prompt ---------------------------------------------------------------------
@pytest.mark.parametrize("stdin", ["devnull", "closed"])
def test_deploy_unanswered_because_stdin_is_closed_fails_by_nobody(
    repo: Path, tmp_path: Path, stdin: str
) -> None:
    configure_deploy(tmp_path)
    argv = run_argv(repo, script(tmp_path, call("deploy_code", target="prod")),
                    "--approve", "ask", "--json")  # fmt: skip
    if stdin == "closed":  # `run ... <&-`: no stdin at all
        argv = ["bash", "-c", 'exec "$@" <&-', "bash", *argv]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL if stdin == "devnull" else None)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"denied, decided by {NOBODY}" in result.stderr
    assert_failed_by(tmp_path, events_of(result.stdout), NOBODY)
    assert "operator (terminal)" not in result.stdout + result.stderr


def test_plain_output_and_exit_code_say_the_same(repo: Path, tmp_path: Path) -> None:
    configure_deploy(tmp_path)
    model = script(tmp_path, call("deploy_code", target="prod"))
    result = subprocess.run(run_argv(repo, model, "--approve", "ask"), cwd=ROOT, text=True,
                            capture_output=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    missed = f"not done: deploy_code prod was denied by {NOBODY}"
    assert any(f"approval #1 denied by {NOBODY}" in line for line in lines)
    assert any(f"verification FAILED: {missed}" in line for line in lines)
    assert f"state: failed — {missed}" in result.stdout
    # The last event says it, and so does the closing summary under it.
    rule = next(n for n, line in enumerate(lines) if line.startswith("─" * 20))
    assert f"task did not succeed: {missed}" in lines[rule - 1]
    assert re.fullmatch(r"task [0-9a-f]{12} failed", lines[rule + 1])
    assert any(line.split()[:1] == ["why"] and missed in line for line in lines[rule:])
    assert "task succeeded" not in result.stdout


class Terminal:
    """`run --approve ask` on a real terminal (a pty): what it prints, and typing into it."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=slave, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)  # fmt: skip
        os.close(slave)
        self.err: list[str] = []
        assert self.proc.stderr is not None
        stderr = self.proc.stderr
        self.reader = threading.Thread(target=self._read, args=(stderr.fileno(),), daemon=True)
        self.reader.start()

    def _read(self, fd: int) -> None:
        while chunk := os.read(fd, 4096):
            self.err.append(chunk.decode(errors="replace"))

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def finish(self) -> tuple[int, str, str]:
        out, _ = self.proc.communicate(timeout=120)
        self.reader.join(10)
        os.close(self.master)
        return self.proc.returncode, out, "".join(self.err)


@pytest.mark.parametrize(
    "keys, who, code",
    [
        (b"\x04", NOBODY, 1),  # Ctrl-D: input closed, nobody answered
        (b"n\n", "operator (terminal)", 1),
        (b"y\n", "operator (terminal)", 0),
    ],
)
async def test_on_a_terminal_an_answer_is_the_operators_and_ctrl_d_is_nobodys(
    repo: Path, tmp_path: Path, keys: bytes, who: str, code: int
) -> None:
    configure_deploy(tmp_path)
    model = script(tmp_path, call("deploy_code", target="prod"))
    term = Terminal(run_argv(repo, model, "--approve", "ask", "--json", "--no-apply"))
    try:
        await until(lambda: "[y/N]" in "".join(term.err), timeout=60)
        term.type(keys)
        returncode, out, err = await asyncio.to_thread(term.finish)
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    assert returncode == code, err
    events = events_of(out)
    # Whoever comes after the terminal's answer is told it: by whom, and what.
    late = await asyncio.to_thread(cli, "deny", events[-1]["task_id"])
    verdict = "approved" if code == 0 else "denied"
    assert late.returncode == 2 and f"was {verdict} by {who}" in late.stderr, late.stderr
    if code == 0:
        assert events[-1]["success"] is True and "deployed.txt" in events[-1]["changes"]
        assert store(tmp_path, "SELECT state, decided_by FROM approvals") == [("approved", who)]
    else:
        assert_failed_by(tmp_path, events, who)


# -- the operator's no, and a deploy that failed -----------------------------------------------
async def test_deploy_denied_by_the_operator_elsewhere_fails_naming_them(
    repo: Path, tmp_path: Path
) -> None:
    configure_deploy(tmp_path)
    model = script(tmp_path, call("deploy_code", target="prod"))
    proc = subprocess.Popen(run_argv(repo, model, "--approve", "ask", "--json"), cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        db = tmp_path / "data" / "livhana.db"
        ((task_id,),) = await until(lambda: asked(db), timeout=60)
        denied = await asyncio.to_thread(cli, "deny", task_id)
        assert denied.returncode == 0, denied.stderr
        out, err = await asyncio.to_thread(proc.communicate, None, 120)
    finally:
        if proc.poll() is None:
            proc.kill()
    (who,) = store(tmp_path, "SELECT decided_by FROM approvals")[0]
    assert who.startswith("cli (pid ")
    assert proc.returncode == 1, err
    assert_failed_by(tmp_path, events_of(out), who)


def test_a_deploy_that_failed_is_not_a_success(repo: Path, tmp_path: Path) -> None:
    configure_deploy(tmp_path, command="echo broken >&2; exit 3")
    model = script(tmp_path, call("deploy_code", target="prod"))
    result = cli(*run_argv(repo, model, "--approve", "auto", "--json")[3:])
    assert result.returncode == 1, result.stderr
    events = events_of(result.stdout)
    (decided,) = [e for e in events if e["type"] == "approval_decided"]
    assert decided["approved"] is True and decided["by"] == "rule:approve=auto"
    complete = events[-1]
    assert complete["success"] is False and DEPLOYED not in complete["summary"]
    assert complete["summary"].startswith(
        "not done: deploy_code prod failed: deploy FAILED: target 'prod'"
    )
    (task,) = json.loads(cli("history", "--json").stdout)
    assert task["state"] == "failed"


# -- siblings ------------------------------------------------------------------------------------
def test_deny_mode_refusing_a_command_is_not_a_success_and_keeps_the_work(
    repo: Path, tmp_path: Path
) -> None:
    """--approve deny: every risky call is refused by rule. The task went on and wrote its
    file, but what it was refused never happened: failed, its work kept on its branch."""
    model = script(
        tmp_path,
        call("execute_bash", command="curl -s http://127.0.0.1:9/data -o data.json"),
        call("write_file", path="notes.txt", content="fetched nothing\n"),
        summary="Fetched the data and wrote notes.",
    )
    result = cli(*run_argv(repo, model, "--approve", "deny", "--json", "--no-apply")[3:])
    assert result.returncode == 1, result.stderr
    complete = events_of(result.stdout)[-1]
    task_id = complete["task_id"]
    assert complete["success"] is False and complete["changes"] == ["notes.txt"]
    assert complete["summary"] == (
        "not done: execute_bash curl -s http://127.0.0.1:9/data -o data.json was denied by "
        "rule:approve=deny; the task did not do all it set out to do "
        f"(1 changed file(s) kept on branch livhana/{task_id}, not applied)"
    )
    assert git(repo, "show", f"livhana/{task_id}:notes.txt") == "fetched nothing\n"
    assert not (repo / "notes.txt").exists()


async def test_a_denied_call_made_good_by_the_same_call_later_is_a_success(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    """The rule's other side: the same deploy, asked again and approved, did happen."""
    config.deploy = {"prod": DeployTarget(command="echo shipped > deployed.txt")}
    model = script(tmp_path, call("deploy_code"), call("deploy_code", target="prod"))
    engine = await engine_factory()
    task_id = await engine.submit("deploy it", repo, model=model, apply=False)
    (first,) = await until(lambda: pending_for(engine, task_id), timeout=30)
    await engine.decide(first["id"], False, by="alice", reason="not yet")
    (second,) = await until(lambda: _other(engine, task_id, first["id"]), timeout=30)
    await engine.decide(second["id"], True, by="alice")
    task = await asyncio.wait_for(engine.wait(task_id), 30)
    assert task["state"] == ev.SUCCEEDED, task["error"]
    assert "deployed.txt" in task["changes"]


async def _other(engine: Any, task_id: str, not_id: int) -> list[dict[str, Any]]:
    return [r for r in await pending_for(engine, task_id) if r["id"] != not_id]


async def test_a_database_write_nobody_approved_in_time_says_timeout_not_operator(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table users(name text)")
    config.databases = {"app": DatabaseConfig(path=str(db))}
    config.engine.approval_timeout_s = 0.2
    model = script(tmp_path, call("query_database", sql="delete from users"), summary="Done.")
    engine = await engine_factory()
    task_id = await engine.submit("clear users", repo, model=model, apply=False)
    task = await asyncio.wait_for(engine.wait(task_id), 30)
    (result,) = [e for e in await engine.events(task_id) if e["type"] == ev.TOOL_RESULT]
    assert result["is_error"] is True
    assert result["output"].startswith("denied by timeout: the statement writes to 'app'")
    assert task["state"] == ev.FAILED
    assert "query_database app: delete from users was denied by timeout" in task["error"]


def test_an_apply_nobody_answered_is_cancelled_by_nobody(repo: Path, tmp_path: Path) -> None:
    """A denied apply keeps its outcome (cancelled, exit 7), now saying who denied it."""
    model = script(tmp_path, call("write_file", path="notes.txt", content="x\n"), summary="Done.")
    result = subprocess.run(run_argv(repo, model, "--approve", "ask", "--json"), cwd=ROOT,
                            text=True, capture_output=True, timeout=120,
                            stdin=subprocess.DEVNULL)  # fmt: skip
    assert result.returncode == 7, result.stderr
    complete = events_of(result.stdout)[-1]
    assert complete["success"] is False
    assert f"changes not applied (denied by {NOBODY}); kept on branch livhana/" in (
        complete["summary"]
    )
    assert not (repo / "notes.txt").exists()
    assert store(tmp_path, "SELECT actor FROM audit WHERE action = 'deny'") == [(NOBODY,)]
