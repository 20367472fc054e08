"""Operator in the loop, from the command line: an API task's request is the same row the
CLI's `approve`/`deny` decide (one queue, the store), the first decider wins, and the
other side is told who decided. (The cockpit's side: tests/ui/test_api_queue.py.)"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.api_kit import SUBJECT, Sse, read_sse, served
from tests.conftest import ROOT, cli, pending_for, until, write_script

ROUNDS = 6


def _model(tmp_path: Path) -> str:
    turns = [{"tool_calls": [{"name": "write_file",
                              "input": {"path": "NOTES.md", "content": "checked\n"}}]}]  # fmt: skip
    return write_script(tmp_path / "s.json", [{"match": ".", "turns": turns, "summary": "Noted."}])


async def test_the_cli_decides_an_api_task_and_the_api_is_told_who(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    config.engine.model = _model(tmp_path)
    engine = await engine_factory(role="daemon")
    async with served(engine, config, workspace=repo) as api, api.client() as client:
        task_id = (await client.post("/api/autonomous/execute", json={"task": "note it"})).json()[
            "taskId"
        ]
        await until(lambda: pending_for(engine, task_id), 30)
        listed = await asyncio.to_thread(cli, "approvals", "--json")
        assert task_id in listed.stdout  # the CLI sees the API task's request: one queue
        decided = await asyncio.to_thread(cli, "approve", task_id)
        assert decided.returncode == 0, decided.stderr
        late = await client.post(f"/api/autonomous/approve/{task_id}", json={"approved": False})
        assert late.status_code == 409
        error = late.json()["error"]
        assert "approved by cli (pid" in error and "\n" not in error
        assert [a["decidedBy"] for a in late.json()["approvals"]][0].startswith("cli (pid")
        seen = Sse()
        async with client.stream("GET", f"/api/autonomous/stream/{task_id}") as resp:
            await read_sse(resp, seen)
        said = next(e for e in seen.events if e["type"] == "approval_decided")
        assert said["by"].startswith("cli (pid") and said["approved"] is True
        assert seen.events[-1]["type"] == "complete" and seen.events[-1]["success"] is True
    assert (repo / "NOTES.md").read_text() == "checked\n"


async def test_the_api_and_the_cli_racing_one_wins_and_the_loser_says_who(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    from agent.config import DeployTarget

    config.deploy = {"prod": DeployTarget(command="echo shipped > deployed.txt")}
    turns = [{"tool_calls": [{"name": "deploy_code", "input": {"target": "prod"}}]}]
    config.engine.model = write_script(tmp_path / "d.json", [{"match": ".", "turns": turns}])
    engine = await engine_factory(role="daemon")
    winners = set()
    async with served(engine, config, workspace=repo) as api, api.client() as client:
        for n in range(ROUNDS):
            task_id = (await client.post("/api/autonomous/execute", json={
                "task": f"note it {n}", "apply": False})).json()["taskId"]  # fmt: skip
            (request,) = await until(lambda t=task_id: pending_for(engine, t), 30)
            proc = subprocess.Popen([sys.executable, "-m", "cockpit", "deny", task_id], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            await asyncio.sleep(0.25 * n)  # later rounds give the CLI's start-up a head start
            answer = await client.post(f"/api/autonomous/approve/{task_id}",
                                       json={"approved": True})
            out, err = await asyncio.to_thread(proc.communicate, timeout=120)
            row = await engine.store.get_approval(request["id"])
            if answer.status_code == 200:
                winners.add("api")
                assert row["decided_by"] == f"api:{SUBJECT}" and row["state"] == "approved"
                assert proc.returncode == 2 and f"approved by api:{SUBJECT}" in err, err
            else:
                winners.add("cli")
                assert answer.status_code == 409, answer.text
                assert row["decided_by"] == f"cli (pid {proc.pid})" and row["state"] == "denied"
                assert proc.returncode == 0, err
                assert f"denied by cli (pid {proc.pid})" in answer.json()["error"]
            await engine.wait(task_id)
    audited = await engine.store.fetch(
        "SELECT COUNT(*) AS n FROM audit WHERE action IN ('approve', 'deny')"
    )
    assert audited[0]["n"] == ROUNDS  # the losers left no record
    print(f"\n{ROUNDS} rounds; winners seen: {sorted(winners)}")
