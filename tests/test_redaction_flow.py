"""Secrets never reach the store or the event stream, and the audit log catches tampering.

The secrets: a value stored in the (temporary) OS keyring before the engine opens, and an
unknown token shaped like an Anthropic key. The task prints them from a command (built so
the literal values are not in the command), sends one in a header, writes one to a file
(so it is in the diff the apply approval shows), and the model echoes them in its summary
and learnings. Then every byte of the SQLite file (and its WAL) is searched.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from agent import events as ev
from agent.secrets import set_secret
from tests.conftest import cli, git, until, write_script

KEYRING_SECRET = "hunter2-Vault-Q7x9Zt"
PART = "Zq8RwT3pLm"
TOKEN = f"sk-ant-api03-{PART * 4}-tail"
# The commands hold fragments (that is how they print the values without naming them),
# so look for the whole values, and for the token's start as the redactor sees it.
NEEDLES = [KEYRING_SECRET, TOKEN, f"sk-ant-api03-{PART}"]


def leaking_script(tmp_path: Path) -> str:
    printing = (
        "printf '%s%s\\n' 'hunter2-Vault' '-Q7x9Zt'; "
        f'X={PART}; echo "key=sk-ant-api03-$X$X$X$X-tail"; echo done'
    )
    turns = [
        {"tool_calls": [{"name": "execute_bash", "input": {"command": printing}}]},
        {
            "text": f"The command printed {KEYRING_SECRET}; now I will use {TOKEN}.",
            "thinking": f"token is {TOKEN}",
            "tool_calls": [
                {
                    "name": "execute_bash",
                    "input": {
                        "command": f"curl -s -H 'x-api-key: {KEYRING_SECRET}' http://127.0.0.1:9/"
                    },
                },
                {
                    "name": "write_file",
                    "input": {"path": "settings.env", "content": f"API={TOKEN}\n"},
                },
            ],
        },
    ]
    return write_script(
        tmp_path / "leak.json",
        [
            {
                "match": ".",
                "turns": turns,
                "summary": f"Done. The keys were {KEYRING_SECRET} and {TOKEN}.",
                "learnings": {
                    "patterns": [f"the deploy token is {KEYRING_SECRET}"],
                    "improvements": [f"rotate {TOKEN}"],
                    "nextSteps": [],
                },
            }
        ],
    )


def raw_store_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("livhana.db*")))


def leaks(blob: bytes | str) -> list[str]:
    raw = blob.encode() if isinstance(blob, str) else blob
    return [n for n in NEEDLES if n.encode() in raw]


async def test_printed_secrets_leave_no_trace_in_the_store(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    set_secret("deploy_token", KEYRING_SECRET)
    engine = await engine_factory()
    task_id = await engine.submit(
        "show the keys", repo, model=leaking_script(tmp_path), approve="auto"
    )
    task = await engine.wait(task_id)
    assert task["state"] == ev.SUCCEEDED, task["error"]

    events = await engine.events(task_id)
    first = next(e for e in events if e["type"] == ev.TOOL_RESULT)
    assert "[REDACTED" in first["output"] and "done" in first["output"]  # output kept, secret not
    assert leaks(json.dumps(events)) == []
    assert leaks(json.dumps(await engine.store.approvals(None, task_id=task_id))) == []
    assert leaks(json.dumps(await engine.get(task_id), default=str)) == []
    assert leaks(json.dumps(await engine.learnings())) == []
    # The change itself is the operator's business: the token really is in their file.
    assert (repo / "settings.env").read_text() == f"API={TOKEN}\n"

    assert leaks(raw_store_bytes(config.data_dir)) == []  # live: db + WAL + shm
    await engine.close()
    assert leaks(raw_store_bytes(config.data_dir)) == []  # after the WAL is checkpointed


async def test_run_json_stdout_is_redacted(repo: Path, tmp_path: Path) -> None:
    set_secret("deploy_token", KEYRING_SECRET)
    model = leaking_script(tmp_path)
    result = cli("run", "show the keys", "--workspace", str(repo), "--json", "--model", model,
                 "--approve", "auto", "--no-apply")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert leaks(result.stdout) == [] and leaks(result.stderr) == []
    events = [json.loads(line) for line in result.stdout.splitlines()]
    outputs = [e["output"] for e in events if e["type"] == ev.TOOL_RESULT]
    assert "[REDACTED" in outputs[0]


async def test_tampering_one_audit_row_is_detected(repo: Path, tmp_path: Path) -> None:
    turns = [
        {"tool_calls": [{"name": "write_file", "input": {"path": "x.txt", "content": "x\n"}}]},
        {"tool_calls": [{"name": "execute_bash", "input": {"command": "cat x.txt"}}]},
    ]
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    run = cli("run", "write x", "--workspace", str(repo), "--model", model, "--approve", "auto")
    assert run.returncode == 0, run.stdout + run.stderr
    ok = cli("audit", "verify")
    assert ok.returncode == 0, ok.stderr
    count = int(ok.stdout.split()[0])
    assert count >= 4  # submit, two tool calls, apply

    db = sqlite3.connect(tmp_path / "data" / "livhana.db")
    with db:
        (row_id, detail) = db.execute(
            "SELECT id, detail FROM audit WHERE action = 'tool_call' ORDER BY id LIMIT 1"
        ).fetchone()
        db.execute(
            "UPDATE audit SET detail = ? WHERE id = ?",
            [detail.replace('"is_error":false', '"is_error":true'), row_id],
        )
        assert db.total_changes == 1
    db.close()
    bad = cli("audit", "verify")
    assert bad.returncode == 1
    assert f"audit record {row_id} was altered" in bad.stdout


# -- common secret shapes, env secrets, late keyring secrets, logs ---------------------------
# Values the generic shapes must catch, with nothing else to go on (not in the keyring).
ENV_VALUES = {
    "DB_PASSWORD": "pg-Pa55-w0rd-Kx81",
    "MY_TOKEN": "tok-9Hq2Lm4Zr7Vb",
    "SECRET_KEY": "django-insecure-7yQ2mWx",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "Qm3LpZr8Tv2Nc5Xw1Yb6/AkDs9Fg",
}
URL_PASSWORD = "u5er-Pa55-4db"
BEARER = "bearer-Xy7Qz3Wm9Lk2Pr5Tn"
DOT_ENV = (
    "DB_PASSWORD=pg-Pa55-w0rd-Kx81\n"
    "MY_TOKEN=tok-9Hq2Lm4Zr7Vb\n"
    'SECRET_KEY="django-insecure-7yQ2mWx"\n'
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE\n"
    "AWS_SECRET_ACCESS_KEY=Qm3LpZr8Tv2Nc5Xw1Yb6/AkDs9Fg\n"
    f"DATABASE_URL=postgres://app:{URL_PASSWORD}@db.internal:5432/app\n"
    f"Authorization: Bearer {BEARER}\n"
    "DEBUG=true\n"
)
ENV_NEEDLES = [*ENV_VALUES.values(), URL_PASSWORD, BEARER]


async def test_a_catted_dot_env_leaves_no_value_in_events_store_or_logs(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any, caplog: Any
) -> None:
    """The shadow checkpoints are the exception, by design: they are restore points of the
    worktree and hold its files byte for byte (the .env is on disk in the worktree too).
    Everything that records what happened (events, task rows, approvals, audit, logs) is
    clean."""
    (repo / ".env").write_text(DOT_ENV)  # committed, as in many projects (alas)
    git(repo, "add", ".env")
    git(repo, "commit", "-q", "-m", "env")
    turns = [{"tool_calls": [{"name": "execute_bash", "input": {"command": "cat .env"}}]}]
    model = write_script(tmp_path / "env.json", [{"match": ".", "turns": turns}])
    engine = await engine_factory()
    caplog.set_level("DEBUG")
    task_id = await engine.submit("show env", repo, model=model, approve="auto", apply=False)
    task = await engine.wait(task_id)
    assert task["state"] == ev.SUCCEEDED, task["error"]

    (output,) = [e["output"] for e in await engine.events(task_id) if e["type"] == ev.TOOL_RESULT]
    assert "DEBUG=true" in output and "DB_PASSWORD=[REDACTED" in output  # readable, not leaky
    found = [n for n in ENV_NEEDLES if n in output]
    assert found == []
    await engine.close()
    raw = raw_store_bytes(config.data_dir)
    assert [n for n in ENV_NEEDLES if n.encode() in raw] == []
    assert [n for n in ENV_NEEDLES if n in caplog.text] == []


async def test_secrets_named_by_env_and_set_while_running_are_redacted(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any, monkeypatch: Any
) -> None:
    env_secret = "svc-Zk3Pq8Lw2Xm7"
    late_secret = "late-Vault-R4t8Yq2"
    monkeypatch.setenv("BILLING_SERVICE_TOKEN", env_secret)
    engine = await engine_factory()
    # Set from another process while this engine runs: it must learn the value now.
    stored = await asyncio.to_thread(cli, "secrets", "set", "late_one", input=late_secret + "\n")
    assert stored.returncode == 0, stored.stderr
    await until(lambda: engine.safety.redact(late_secret) != late_secret, timeout=5)
    # Printed bare: no key=value shape to give them away, only the known values.
    command = (
        "printf '%s%s\\n' 'svc-Zk3Pq8' 'Lw2Xm7'; printf '%s%s\\n' 'late-Vault' '-R4t8Yq2'"
    )
    turns = [{"tool_calls": [{"name": "execute_bash", "input": {"command": command}}]}]
    model = write_script(tmp_path / "bare.json", [{"match": ".", "turns": turns}])
    task_id = await engine.submit("print", repo, model=model, approve="auto", apply=False)
    assert (await engine.wait(task_id))["state"] == ev.SUCCEEDED
    (output,) = [e["output"] for e in await engine.events(task_id) if e["type"] == ev.TOOL_RESULT]
    assert "[REDACTED" in output and env_secret not in output and late_secret not in output
    await engine.close()
    raw = raw_store_bytes(config.data_dir)
    assert env_secret.encode() not in raw and late_secret.encode() not in raw


async def test_log_records_and_tracebacks_are_redacted(engine_factory: Any, caplog: Any) -> None:
    import logging

    set_secret("deploy_token", KEYRING_SECRET)
    await engine_factory()
    caplog.set_level("INFO")
    log = logging.getLogger("agent.worker")
    log.error("task %s crashed with key %s", "t1", KEYRING_SECRET)
    try:
        raise RuntimeError(f"upstream said: Authorization: Bearer {BEARER} and {TOKEN}")
    except RuntimeError:
        log.exception("task t2 crashed")
    logging.getLogger("some.library").warning("password=%s", "hunter22-xyz")
    assert leaks(caplog.text) == [] and BEARER not in caplog.text
    assert "hunter22-xyz" not in caplog.text
    assert "task t1 crashed with key [REDACTED:" in caplog.text
    assert "RuntimeError: upstream said: Authorization: Bearer [REDACTED" in caplog.text


# -- titles, and secrets printed encoded -------------------------------------------------------
def test_a_title_holding_a_key_is_redacted_everywhere(repo: Path, tmp_path: Path) -> None:
    """Store, events, audit, the listings and the commit messages of the task's branch."""
    set_secret("ci_deploy", KEYRING_SECRET)
    title = f"deploy with {KEYRING_SECRET} and then {TOKEN} please"
    turns = [{"tool_calls": [{"name": "write_file", "input": {"path": "x.txt", "content": "x\n"}}]}]
    model = write_script(tmp_path / "t.json", [{"match": ".", "turns": turns}])
    run = cli("run", title, "--workspace", str(repo), "--json", "--model", model,
              "--approve", "auto")  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    assert leaks(run.stdout) == [] and leaks(run.stderr) == []
    status = next(json.loads(line) for line in run.stdout.splitlines() if '"status"' in line)
    assert status["title"].startswith("deploy with [REDACTED") and "please" in status["title"]
    for args in (("history",), ("history", "--json"), ("tasks", "--json"), ("metrics", "--json")):
        shown = cli(*args)
        assert shown.returncode == 0 and leaks(shown.stdout + shown.stderr) == [], args
    assert leaks(raw_store_bytes(tmp_path / "data")) == []  # the task row and the audit log
    assert leaks(git(repo, "log", "--all", "--format=%B")) == []  # applied commit, branch


async def test_secrets_printed_encoded_leave_no_trace(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    import base64
    from urllib.parse import quote

    secret = "Vault-Key/With&Odd?Chars=9"
    set_secret("ci_deploy", secret)
    raw = secret.encode()
    needles = [base64.b64encode(raw).decode().rstrip("="), raw.hex(), quote(secret, safe=""),
               json.dumps(secret), base64.b64encode(b"xx" + raw).decode()[4:30]]  # fmt: skip
    part1, part2 = secret[:10], secret[10:]
    show = f"printf '%s%s' '{part1}' '{part2}'"
    command = "; ".join([
        f"{show} | base64",
        f"{show} | basenc --base64url",
        f"{show} | od -An -tx1 | tr -d ' \\n'; echo",
        f"{show} | python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.stdin.read(), safe=\"\"))'",
        f"{show} | python3 -c 'import sys, json; print(json.dumps({{\"k\": sys.stdin.read()}}))'",
        f"(head -c 200 /dev/zero | tr '\\0' A; {show}; head -c 100 /dev/zero) | base64",
        f"(head -c 50 /dev/zero; {show}) | xxd -p",
    ])  # fmt: skip
    turns = [{"tool_calls": [{"name": "execute_bash", "input": {"command": command}}]}]
    model = write_script(tmp_path / "enc.json", [{"match": ".", "turns": turns}])
    engine = await engine_factory()
    task_id = await engine.submit("print it", repo, model=model, approve="auto", apply=False)
    assert (await engine.wait(task_id))["state"] == ev.SUCCEEDED
    (output,) = [e["output"] for e in await engine.events(task_id) if e["type"] == ev.TOOL_RESULT]
    assert output.count("[REDACTED:") >= 7, output
    assert [n for n in needles if n in output] == []
    await engine.close()
    raw_store = raw_store_bytes(config.data_dir)
    assert [n for n in needles if n.encode() in raw_store] == []
