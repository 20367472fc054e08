"""The seed's story, through the real command line: "Daily cron detects error spike in logs
→ analyzes the errors (JWT validation failing) → root cause (JWT_SECRET not loaded) →
proposes a fix → generates an implementation plan → creates fix + tests → submits for
approval → deploys on approval."

The world (tests/improve_world.py): a git workspace with a week of logs and history, a
store with a week of tasks; the scripted model answers the weekly review and does the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests import improve_world
from tests.conftest import ROOT, cli

pytestmark = pytest.mark.slow


@pytest.fixture
async def world(tmp_path: Path) -> improve_world.World:
    return await improve_world.build(tmp_path)


def run(world: improve_world.World, *args: str, timeout: float = 120) -> Any:
    done = cli(*args, env=world.env(), timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "--json" in args else done.stdout


def test_daily_finds_the_jwt_spike_and_ignores_the_steady_errors(world: Any) -> None:
    day = run(world, "improve", "daily", "--workspace", str(world.workspace), "--json")
    assert set(day) >= {"job", "started_at", "insights", "proposals", "report", "tasks"}
    assert day["job"] == "daily" and day["proposals"] == [] and day["tasks"] == []
    spikes = [i for i in day["insights"] if i["kind"] == "error_spike"]
    assert len(spikes) == 1, [s["summary"] for s in spikes]  # db, queue, sshd: steady
    spike = spikes[0]
    assert {"id", "kind", "summary", "evidence"} <= set(spike)
    assert "JWT validation failed: JWT_SECRET is not set" in spike["signature"]
    assert spike["new"] and spike["count"] == world.counts["jwt"]
    assert spike["detail"] == "RuntimeError: JWT_SECRET is not set"
    assert any("JWT_SECRET is not set" in e for e in spike["evidence"])
    kinds = {i["kind"] for i in day["insights"]}
    assert {"failure_cluster", "slow_tool", "cost"} <= kinds
    cluster = next(i for i in day["insights"] if i["kind"] == "failure_cluster"
                   and i["tool"] == "run_tests")
    assert cluster["count"] == 3 and sorted(cluster["tasks"]) == sorted(world.seeded["failed"])
    slow = next(i for i in day["insights"] if i["kind"] == "slow_tool")
    assert slow["tool"] == "execute_bash" and slow["slow_calls"] == 6 and slow["mean_s"] == 45
    cost = next(i for i in day["insights"] if i["kind"] == "cost")
    assert cost["cost_usd"] == 2.0 and cost["baseline_per_day"] == 0.5 and cost["change_pct"] == 300
    logs = day["stats"]["logs"]
    assert logs["files"] == ["logs/app.log", "logs/sys/syslog.log", "logs/worker.log"]
    assert logs["unreadable"] == {"not UTF-8": 1, "cut-off JSON": 1}
    report = Path(day["report"])
    assert report.parent == world.data_dir / "reports" and report.is_file()
    text = report.read_text()
    assert "JWT_SECRET is not set" in text and spike["id"] in text
    # The run is on record, with what it produced.
    with sqlite3.connect(world.data_dir / "livhana.db") as db:
        outcome, produced = db.execute(
            "SELECT outcome, produced FROM improve_runs WHERE id = ?", [day["run_id"]]
        ).fetchone()
    assert outcome == "succeeded" and json.loads(produced)["kinds"]["error_spike"] == 1


def snapshot(world: Any) -> dict[str, Any]:
    """Everything a run could write: every table of the store, and every file of the data
    dir and of the workspace (the git dir included)."""
    tables: dict[str, Any] = {}
    with sqlite3.connect(world.data_dir / "livhana.db") as db:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            # Sorted here: some tables have no rowid (WITHOUT ROWID).
            tables[name] = sorted(db.execute(f"SELECT * FROM {name}").fetchall(), key=repr)
    files = {}
    for base in (world.data_dir, world.workspace):
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith("livhana.db"):
                files[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest()
    return {"tables": tables, "files": files}


def test_dry_run_writes_nothing_and_says_what_it_did(world: Any) -> None:
    # A real daily first: weekly then has the week's insights to propose from.
    run(world, "improve", "daily", "--workspace", str(world.workspace), "--json")
    spike = next(i for i in run(world, "improve", "daily", "--workspace",
                                str(world.workspace), "--json")["insights"]
                 if i["kind"] == "error_spike")
    improve_world.write_script(world, [spike["id"]])
    before = snapshot(world)
    for job in ("daily", "weekly", "monthly", "full", "auto"):
        out = run(world, "improve", job, "--workspace", str(world.workspace), "--dry-run",
                  "--json")
        assert out["dry_run"] is True and out["report"] is None and out["tasks"] == []
        assert out["run_id"] is None
        if job in ("weekly", "full"):
            (proposal,) = out["proposals"]
            assert proposal["evidence"] == [spike["id"]]
            assert any("model call" in n and "not recorded" in n for n in out["notes"])
        if job == "daily":
            assert any(i["id"] == spike["id"] for i in out["insights"])  # the real run's id
            assert out["model_calls"] == []
    plain = cli("improve", "weekly", "--workspace", str(world.workspace), "--dry-run",
                env=world.env())
    assert plain.returncode == 0 and "dry run: nothing was written" in plain.stdout
    assert snapshot(world) == before


def test_the_seeds_story_end_to_end(world: Any, tmp_path: Path) -> None:
    # Daily detects the spike...
    day = run(world, "improve", "daily", "--workspace", str(world.workspace), "--json")
    spike = next(i for i in day["insights"] if i["kind"] == "error_spike")
    # ...weekly turns it into a proposal (the model's call, scripted), citing its evidence.
    improve_world.write_script(world, [spike["id"], "made-up-id"])
    week = run(world, "improve", "weekly", "--workspace", str(world.workspace), "--json")
    (proposal,) = week["proposals"]
    assert {"id", "title", "task", "rationale", "impact", "effort"} <= set(proposal)
    assert proposal["evidence"] == [spike["id"]]  # the made-up id is dropped, and said so
    assert any("made-up-id" in n for n in week["notes"])
    assert "JWT_SECRET" in proposal["task"] and proposal["impact"] == "high"
    assert any(i["id"] == spike["id"] for i in week["insights"])
    assert week["model_calls"][0]["recorded"] is True
    # It waits for the operator.
    listed = run(world, "proposals", "--json")
    assert [(p["id"], p["state"]) for p in listed] == [(proposal["id"], "pending")]
    plain = run(world, "proposals").splitlines()
    assert plain[0].split() == ["ID", "State", "Impact/effort", "Proposal"]  # a header, as listings have
    assert plain[1].split()[:2] == [proposal["id"], "pending"]
    # Accepted once; a second decision says who decided first.
    assert "accepted proposal" in run(world, "proposals", "accept", proposal["id"][:4])
    again = cli("proposals", "reject", proposal["id"], env=world.env())
    assert again.returncode == 2 and "already accepted by cli" in again.stderr
    # auto runs it as an ordinary task, which waits for the apply approval...
    auto = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "improve", "auto", "--workspace",
         str(world.workspace), "--json"],
        cwd=ROOT, env={**os.environ, **world.env()}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        pending = _wait_for_apply_request(world, auto)
        task_id = pending["task_id"]
        assert pending["kind"] == "apply"
        assert sorted(pending["detail"]["files"]) == ["app/auth.py", "tests/test_auth.py"]
        assert "JWT_SECRET_KEY" in (world.workspace / "app" / "auth.py").read_text()  # not yet
        state = run(world, "proposals", "--json")[0]
        assert state["state"] == "started" and state["task_id"] == task_id
        # ...and is applied when the operator approves (from another shell here).
        assert "approved 1 request" in run(world, "approve", task_id)
        out, err = auto.communicate(timeout=120)
    finally:
        if auto.poll() is None:
            auto.kill()
    assert auto.returncode == 0, err
    result = json.loads(out)
    assert result["job"] == "auto"
    assert [(t["id"], t["proposal"], t["state"]) for t in result["tasks"]] == [
        (task_id, proposal["id"], "succeeded")]
    assert f"task {task_id} started for proposal {proposal['id']}" in err
    auth = (world.workspace / "app" / "auth.py").read_text()
    assert 'os.environ.get("JWT_SECRET", "")' in auth
    assert (world.workspace / "tests" / "test_auth.py").is_file()
    task = json.loads(cli("history", "--json", env=world.env()).stdout)
    verified = [t for t in task if t["id"] == task_id]
    assert verified and verified[0]["state"] == "succeeded"
    events = _events(world, task_id)
    assert any(e["type"] == "plan" for e in events)  # the implementation plan
    check = next(e for e in events if e["type"] == "verification")
    assert check["passed"] is True  # the new test ran, and passed
    # The proposal shows how its task ended.
    assert run(world, "proposals", "--json")[0]["task_state"] == "succeeded"


def _wait_for_apply_request(world: Any, proc: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        pending = json.loads(cli("approvals", "--json", env=world.env()).stdout)
        if pending:
            return pending[0]
        time.sleep(0.3)
    raise AssertionError("the proposal's task never asked to apply")


def _events(world: Any, task_id: str) -> list[dict[str, Any]]:
    with sqlite3.connect(world.data_dir / "livhana.db") as db:
        rows = db.execute("SELECT type, data FROM events WHERE task_id = ? ORDER BY seq",
                          [task_id]).fetchall()
    return [{"type": t, **json.loads(d)} for t, d in rows]


def test_bad_input_is_one_line(world: Any) -> None:
    for args, words in [
        (("improve", "hourly"), "invalid choice"),
        (("improve", "daily", "--workspace", "/nonexistent/x"), "does not exist"),
        (("proposals", "accept"), "needs a proposal ID"),
        (("proposals", "accept", "zz-nope"), "no proposal"),
        (("proposals", "p123"), "invalid choice"),
    ]:
        done = cli(*args, env=world.env())
        assert done.returncode == 2, (args, done.stderr)
        assert words in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    (world.data_dir / "config.toml").write_text('[schedules]\ndaily = "0 2 * *"\n')
    bad = cli("schedules", env=world.env())
    assert bad.returncode == 2 and "schedules.daily" in bad.stderr and "five-field" in bad.stderr
    (world.data_dir / "config.toml").write_text('[notify]\nwebhook = "ftp://x"\n')
    bad = cli("schedules", env=world.env())
    assert bad.returncode == 2 and "notify.webhook" in bad.stderr


def test_weekly_without_a_key_says_so_and_daily_needs_none(world: Any) -> None:
    (world.data_dir / "config.toml").write_text('[engine]\nmodel = "claude-sonnet-4-6"\n')
    env = {**world.env(), "ANTHROPIC_API_KEY": ""}
    weekly = cli("improve", "weekly", "--workspace", str(world.workspace), env=env)
    assert weekly.returncode == 4 and "improve daily` needs no key" in weekly.stderr
    daily = cli("improve", "daily", "--workspace", str(world.workspace), "--dry-run", env=env)
    assert daily.returncode == 0, daily.stderr
