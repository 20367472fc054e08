"""The hash-chained audit log: real SQLite, tampering detected, no fork across processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent import audit
from agent import events as ev
from agent.store import Store
from tests.conftest import until, write_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def store(tmp_path: Path):
    s = await Store.open(tmp_path / "t.db")
    yield s
    await s.close()


async def fill(store: Store, n: int) -> None:
    for i in range(n):
        await audit.append(store, "engine", "tool_call", f"task{i % 3}",
                           {"tool": "execute_bash", "n": i, "text": "ünïcode ✓"})  # fmt: skip


async def test_clean_chain_of_100_verifies(store: Store) -> None:
    await fill(store, 100)
    assert await audit.verify(store) == (True, "100 records verified")
    rows = await store.fetch("SELECT * FROM audit ORDER BY id")
    assert rows[0]["prev_hash"] == "" and all(
        b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:], strict=False)
    )
    assert json.loads(rows[5]["detail"])["n"] == 5 and rows[5]["task_id"] == "task2"


async def test_empty_log_verifies(store: Store) -> None:
    assert await audit.verify(store) == (True, "0 records verified")


async def test_tampered_detail_detected(store: Store) -> None:
    await fill(store, 30)
    await store.execute(
        "UPDATE audit SET detail = ? WHERE id = 17", ['{"tool":"read_file","n":16}']
    )
    assert await audit.verify(store) == (False, "audit record 17 was altered (hash mismatch)")


@pytest.mark.parametrize("column, value", [("actor", "operator"), ("action", "approve"),
                                           ("task_id", None), ("ts", 0.0)])  # fmt: skip
async def test_every_field_is_covered(store: Store, column: str, value: object) -> None:
    await fill(store, 10)
    await store.execute(f"UPDATE audit SET {column} = ? WHERE id = 4", [value])
    ok, message = await audit.verify(store)
    assert not ok and message == "audit record 4 was altered (hash mismatch)"


async def test_recomputed_hash_breaks_the_next_link(store: Store) -> None:
    await fill(store, 10)
    row = (await store.fetch("SELECT * FROM audit WHERE id = 5"))[0]
    forged = audit.record_hash(row["prev_hash"], 5, row["ts"], "operator", row["action"],
                               row["task_id"], row["detail"])  # fmt: skip
    await store.execute("UPDATE audit SET actor = 'operator', hash = ? WHERE id = 5", [forged])
    assert await audit.verify(store) == (
        False, "audit chain broken at record 6 (prev_hash does not match)"
    )  # fmt: skip


async def test_deleted_rows_detected(store: Store) -> None:
    await fill(store, 20)
    await store.execute("DELETE FROM audit WHERE id = 9")
    assert await audit.verify(store) == (
        False, "audit record 9 is missing (id gap before record 10)"
    )  # fmt: skip
    await store.execute("DELETE FROM audit WHERE id IN (1, 2)")
    ok, message = await audit.verify(store)
    assert not ok and message.startswith("audit record 1-2 is missing")


async def test_truncated_tail_detected_and_not_papered_over(store: Store) -> None:
    await fill(store, 10)
    await store.execute("DELETE FROM audit WHERE id >= 9")
    assert await audit.verify(store) == (
        False, "audit record 9-10 is missing (log truncated after record 8)"
    )  # fmt: skip
    await audit.append(store, "engine", "stop", None, {})  # a new append keeps the gap visible
    ok, message = await audit.verify(store)
    assert not ok and "missing" in message


async def test_concurrent_appends_in_one_process_and_two_connections(tmp_path: Path) -> None:
    a = await Store.open(tmp_path / "c.db")
    b = await Store.open(tmp_path / "c.db")
    try:
        await asyncio.gather(
            *(audit.append(s, "engine", "step", None, {"i": i}) for i in range(40) for s in (a, b))
        )
        assert await audit.verify(a) == (True, "80 records verified")
    finally:
        await a.close()
        await b.close()


WRITER = """
import asyncio, sys
from pathlib import Path
from agent import audit
from agent.store import Store
async def main():
    store = await Store.open(Path(sys.argv[1]))
    for i in range(60):
        await audit.append(store, sys.argv[2], "step", None, {"i": i})
    await store.close()
asyncio.run(main())
"""


async def test_two_processes_cannot_fork_the_chain(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    await (await Store.open(db)).close()  # create the schema before the writers race
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), f"engine{k}"], cwd=ROOT)
        for k in range(3)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    store = await Store.open(db)
    try:
        assert await audit.verify(store) == (True, "180 records verified")
        actors = {r["actor"] for r in await store.fetch("SELECT actor FROM audit")}
        assert actors == {"engine0", "engine1", "engine2"}
    finally:
        await store.close()


# -- what the engine audits ----------------------------------------------------------------
async def audit_rows(engine: Any, task_id: str) -> list[dict[str, Any]]:
    rows = await engine.store.fetch(
        "SELECT actor, action, detail FROM audit WHERE task_id = ? ORDER BY id", [task_id]
    )
    return [{**r, "detail": json.loads(r["detail"])} for r in rows]


async def test_rule_decisions_and_tool_arguments_are_audited(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    secret = "Xq7Wm2Lp9Rt4Zk8Vb3"
    big = "x" * 5000
    turns = [
        {"tool_calls": [{"name": "execute_bash", "input": {
            "command": f"curl -s -m 1 -H 'Authorization: Bearer {secret}' http://127.0.0.1:9/"}}]},
        {"tool_calls": [{"name": "write_file", "input": {"path": "big.txt", "content": big}}]},
        {"tool_calls": [{"name": "read_file", "input": {"path": "a" * 2000}}]},
    ]  # fmt: skip
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    engine = await engine_factory()
    task_id = await engine.submit("audit me", repo, model=model, approve="auto", apply=False)
    assert (await engine.wait(task_id))["state"] == ev.SUCCEEDED
    rows = await audit_rows(engine, task_id)
    (decision,) = [r for r in rows if r["action"] == "approve"]
    assert decision["actor"] == "rule:approve=auto" and decision["detail"]["kind"] == "command"
    calls = [r["detail"] for r in rows if r["action"] == "tool_call"]
    assert [c["tool"] for c in calls] == ["execute_bash", "write_file", "read_file"]
    command = calls[0]["args"]["command"]
    assert command.startswith("curl -s -m 1 -H 'Authorization: Bearer [REDACTED")
    assert secret not in json.dumps(rows)
    assert calls[1]["args"] == {"path": "big.txt", "content": calls[1]["args"]["content"]}
    assert calls[1]["args"]["content"].startswith("<5000 characters, sha256 ")
    assert len(calls[2]["args"]["path"]) < 600  # capped
    ok, _ = await audit.verify(engine.store)
    assert ok


async def test_timeout_and_task_stop_decisions_are_audited(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    from agent.config import DeployTarget

    config.deploy = {"prod": DeployTarget(command="true")}
    config.engine.approval_timeout_s = 0.3
    deploy = {"tool_calls": [{"name": "deploy_code", "input": {"target": "prod"}}]}
    model = write_script(tmp_path / "d.json", [{"match": ".", "turns": [deploy]}])
    engine = await engine_factory()
    timed = await engine.submit("deploy", repo, model=model, apply=False)
    assert (await engine.wait(timed))["state"] == ev.FAILED  # its deploy never happened
    (denied,) = [r for r in await audit_rows(engine, timed) if r["action"] == "deny"]
    assert denied["actor"] == "timeout" and denied["detail"]["kind"] == "deploy"

    config.engine.approval_timeout_s = 0
    stopped = await engine.submit("deploy", repo, model=model, apply=False)
    await until(lambda: engine.store.approvals("pending", task_id=stopped))
    await until(lambda: (engine.live(stopped) or None) and engine.live(stopped).waiting_on)
    await engine.cancel(stopped, by="bob")
    assert (await engine.wait(stopped))["state"] == ev.CANCELLED
    (denied,) = [r for r in await audit_rows(engine, stopped) if r["action"] == "deny"]
    assert denied["actor"] == "cancelled by bob"
    assert denied["detail"]["reason"] == "task stopped"
