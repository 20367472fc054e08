"""Hangs in tools, through the real CLI: a catastrophic regex from the model must not take
the engine with it. `cancel` and `livhana-cockpit stop` from another process end the task
within moments, and the running engine keeps its heartbeat meanwhile."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, cli, git, until, write_script

EVIL_LINE = "a" * 48 + "!"  # (a+)+$ backtracks about 2^48 times on it: hours


@pytest.fixture
def evil_repo(repo: Path) -> Path:
    (repo / "data.txt").write_text(EVIL_LINE + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    return repo


class Running:
    """A `run --json` in the background, its events collected as they come."""

    def __init__(self, repo: Path, tmp_path: Path, call: dict[str, Any]) -> None:
        model = write_script(
            tmp_path / "s.json", [{"match": ".", "turns": [{"tool_calls": [call]}]}]
        )
        # A long tool limit (120 s): only a working cancel or stop ends it within the test.
        (tmp_path / "config.toml").write_text("[engine]\ncommand_timeout_s = 600\n")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cockpit", "--config", str(tmp_path / "config.toml"), "run",
             "search the data", "--workspace", str(repo), "--model", model,
             "--approve", "auto", "--no-apply", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def step_started(self) -> bool:
        return any(e["type"] == "step" for e in self.events)

    def finish(self, timeout: float) -> tuple[int, str]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the run did not end within {timeout}s") from None
        self._reader.join(10)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


@pytest.fixture
def start(evil_repo: Path, tmp_path: Path) -> Any:
    """Start a Running; whatever the test's outcome, no run is left spinning after it."""
    runs: list[Running] = []

    def make(call: dict[str, Any]) -> Running:
        runs.append(Running(evil_repo, tmp_path, call))
        return runs[-1]

    yield make
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


def heartbeat(data_dir: Path) -> float:
    conn = sqlite3.connect(data_dir / "livhana.db")
    try:
        row = conn.execute("select max(heartbeat) from engines").fetchone()
        return row[0] or 0.0
    finally:
        conn.close()


CALLS = [
    {"name": "search_codebase", "input": {"pattern": "(a+)+$"}},
    {"name": "analyze_logs", "input": {"path": "data.txt", "pattern": "(a+)+$"}},
]


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c["name"])
async def test_cancel_from_another_process_ends_a_catastrophic_regex(
    start: Any, tmp_path: Path, call: dict[str, Any]
) -> None:
    run = start(call)
    await until(run.step_started, timeout=60)
    # The engine stays alive while the regex spins: its heartbeat moves on.
    first = heartbeat(tmp_path / "data")
    await until(lambda: heartbeat(tmp_path / "data") > first + 1, timeout=30)
    (task,) = json.loads(cli("tasks", "--json").stdout)
    cancel = cli("cancel", task["id"])
    assert cancel.returncode == 0, cancel.stderr
    code, stderr = run.finish(timeout=30)
    assert code == 7, stderr
    assert "Traceback" not in stderr
    result = next(e for e in run.events if e["type"] == "tool_result")
    assert result["is_error"] and "stopped: the task was stopped" in result["output"]
    assert run.events[-1]["type"] == "complete" and not run.events[-1]["success"]
    (done,) = json.loads(cli("history", "--json").stdout)
    assert done["state"] == "cancelled"


async def test_emergency_stop_from_another_process_ends_a_catastrophic_regex(
    start: Any,
) -> None:
    run = start(CALLS[0])
    await until(run.step_started, timeout=60)
    stop = cli("stop")
    assert stop.returncode == 0, stop.stderr
    assert "1 running task(s) stopped on 1 engine(s)" in stop.stdout
    code, stderr = run.finish(timeout=30)
    assert code == 7 and "Traceback" not in stderr, stderr
    (done,) = json.loads(cli("history", "--json").stdout)
    assert done["state"] == "cancelled" and "emergency stop" in done["error"]


def test_a_fifo_left_by_the_model_blocks_no_tool(repo: Path, tmp_path: Path) -> None:
    """A named pipe with no writer: opening it to read blocks forever (on the event loop,
    it froze the engine). Every reading tool names it instead."""
    calls = [
        {"name": "execute_bash", "input": {"command": "mkfifo pipe.txt && ln -s pipe.txt p2"}},
        {"name": "read_file", "input": {"path": "pipe.txt"}},
        {"name": "read_file", "input": {"path": "p2"}},
        {"name": "search_codebase", "input": {"pattern": "x", "path": "pipe.txt"}},
        {"name": "analyze_logs", "input": {"path": "pipe.txt"}},
        {"name": "write_file", "input": {"path": "pipe.txt", "content": "x"}},
    ]
    turns = [{"tool_calls": [call]} for call in calls]
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    result = cli(
        "run", "pipes", "--workspace", str(repo), "--model", model,
        "--approve", "auto", "--no-apply", "--json", timeout=90,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    results = [e for e in outputs if e["type"] == "tool_result"]
    assert not results[0]["is_error"], results[0]
    for res in results[1:]:
        assert res["is_error"] and "is not a regular file (a named pipe)" in res["output"], res
