"""The real engine and CLI driven by a deterministic scripted model (mini-swe-agent style)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, cli, git, write_script

EDIT = [
    {
        "thinking": "I should look at app.py first.",
        "tool_calls": [
            {
                "name": "update_plan",
                "input": {
                    "steps": [
                        {"title": "read app.py", "status": "in_progress"},
                        {"title": "add a farewell function", "status": "pending"},
                    ]
                },
            },
            {"name": "read_file", "input": {"path": "app.py"}},
        ],
    },
    {
        "thinking": "Now add farewell.",
        "tool_calls": [
            {
                "name": "write_file",
                "input": {
                    "path": "app.py",
                    "content": "def greet(name):\n    return 'hello ' + name\n\n\ndef farewell(name):\n    return 'bye ' + name\n",
                },
            },
            {
                "name": "update_plan",
                "input": {
                    "steps": [
                        {"title": "read app.py", "status": "done"},
                        {"title": "add a farewell function", "status": "done"},
                    ]
                },
            },
        ],
    },
]


def test_run_json_scripted_change_lands_on_task_branch(repo: Path, tmp_path: Path) -> None:
    model = write_script(
        tmp_path / "s.json",
        [
            {
                "match": "farewell",
                "turns": EDIT,
                "summary": "Added farewell().",
                "learnings": {
                    "patterns": ["app.py holds helpers"],
                    "improvements": [],
                    "nextSteps": ["add tests"],
                },
            }
        ],
    )
    result = cli(
        "run",
        "add a farewell function",
        "--workspace",
        str(repo),
        "--json",
        "--model",
        model,
        "--approve",
        "auto",
        "--no-apply",
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert {"task_id", "seq", "ts", "type"} <= set(events[0])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    states = [e["state"] for e in events if e["type"] == "status"]
    assert states == ["queued", "planning", "running", "verifying", "succeeded"]
    steps = [(e["action"], e["target"]) for e in events if e["type"] == "step"]
    assert ("read_file", "app.py") in steps and ("write_file", "app.py") in steps
    assert "plan" in types and "progress" in types and "learning" in types
    complete = events[-1]
    assert complete["type"] == "complete" and complete["success"] is True
    assert complete["changes"] == ["app.py"]
    task_id = complete["task_id"]
    # The change is on the task's branch; the operator's checkout is untouched.
    assert "farewell" in git(repo, "show", f"livhana/{task_id}:app.py")
    assert "farewell" not in (repo / "app.py").read_text()
    assert git(repo, "status", "--porcelain") == ""
    history = cli("history", "--json")
    assert json.loads(history.stdout)[0]["state"] == "succeeded"
    learned = json.loads(cli("learnings", "--json").stdout)
    # The seed's shape (DESIGN.md), nothing else.
    assert learned == {
        "patterns": ["app.py holds helpers"], "improvements": [], "nextSteps": ["add tests"]
    }


def test_run_applies_to_workspace_when_approved_and_keeps_operator_edits(
    repo: Path, tmp_path: Path
) -> None:
    (repo / "README.md").write_text("# demo project\noperator's unsaved note\n")
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": EDIT}])
    result = cli(
        "run",
        "add a farewell function",
        "--workspace",
        str(repo),
        "--model",
        model,
        "--approve",
        "auto",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "farewell" in (repo / "app.py").read_text()
    assert (repo / "README.md").read_text() == "# demo project\noperator's unsaved note\n"
    assert "livhana" in git(repo, "log", "-1", "--format=%s")


def test_bad_input_gives_one_line_and_nonzero_exit(repo: Path, tmp_path: Path) -> None:
    model = write_script(tmp_path / "s.json", [])
    empty = cli("run", "   ", "--workspace", str(repo), "--model", model)
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1 and "empty" in empty.stderr
    missing = cli("run", "x", "--workspace", str(tmp_path / "nope"), "--model", model)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr + empty.stderr
    nokey = cli("run", "do it", "--workspace", str(repo), env={"ANTHROPIC_API_KEY": ""})
    assert nokey.returncode == 4 and "secrets set anthropic_api_key" in nokey.stderr
    unknown = cli("cancel", "deadbeef")
    assert unknown.returncode == 2 and "no task" in unknown.stderr


def test_broken_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine]\nmax_steps = 'many'\n")
    result = cli("--config", str(bad), "tasks")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "livhana-cockpit: config: 'config.engine.max_steps' must be int, got 'many'"
    )


def _cli_in(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """The command line run from `cwd` (relative paths are the point)."""
    return subprocess.run(
        [sys.executable, "-m", "cockpit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=120,
    )


@pytest.mark.parametrize("how", ["--data-dir", "LIVHANA_DATA_DIR"])
def test_a_relative_data_dir_keeps_worktrees_out_of_the_workspace(
    repo: Path, tmp_path: Path, how: str
) -> None:
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": EDIT}])
    flag = ["--data-dir", "rel"] if how == "--data-dir" else []
    env = {"LIVHANA_DATA_DIR": "rel"} if how == "LIVHANA_DATA_DIR" else {}
    result = _cli_in(
        tmp_path,
        *flag,
        "run",
        "add a farewell function",
        "--workspace",
        "project",
        "--model",
        model,
        "--approve",
        "auto",
        "--no-apply",
        "--json",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    task_id = json.loads(result.stdout.splitlines()[-1])["task_id"]
    assert not (repo / "rel").exists()  # nothing landed inside the operator's checkout
    assert (tmp_path / "rel" / "worktrees" / task_id / "app.py").exists()
    assert git(repo, "status", "--porcelain") == ""
    assert "farewell" in git(repo, "show", f"livhana/{task_id}:app.py")


def _no_tasks() -> bool:
    return json.loads(cli("history", "--json").stdout) == [] and json.loads(
        cli("tasks", "--json").stdout
    ) == []


def test_setup_problems_are_one_line_exit_2_before_any_task(repo: Path, tmp_path: Path) -> None:
    script = cli("run", "x", "--workspace", str(repo), "--model", f"scripted:{tmp_path}/no.json")
    assert script.returncode == 2 and script.stderr.count("\n") == 1
    assert "no.json" in script.stderr
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q")
    model = write_script(tmp_path / "s.json", [])
    empty = cli("run", "x", "--workspace", str(fresh), "--model", model)
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1
    assert "no commits yet" in empty.stderr
    assert _no_tasks()
    assert git(fresh, "worktree", "list").count("\n") == 1


@pytest.mark.parametrize(
    "flag", [("--max-steps", "0"), ("--max-steps", "-1"), ("--max-cost", "0"), ("--max-cost", "-1")]
)
def test_non_positive_limits_are_refused(repo: Path, tmp_path: Path, flag: tuple[str, str]) -> None:
    model = write_script(tmp_path / "s.json", [])
    result = cli("run", "x", "--workspace", str(repo), "--model", model, *flag)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and flag[0] in result.stderr
    assert "Traceback" not in result.stderr
    assert _no_tasks()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("max_concurrent = 0", "'config.engine.max_concurrent' must be >= 1, got 0"),
        ("max_concurrent = -1", "'config.engine.max_concurrent' must be >= 1, got -1"),
        ("max_cost_usd = 0", "'config.engine.max_cost_usd' must be > 0, got 0.0"),
        ("verify_retries = -2", "'config.engine.verify_retries' must be >= 0, got -2"),
    ],
)
def test_out_of_range_config_is_one_line_naming_the_key(
    repo: Path, tmp_path: Path, line: str, message: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(f"[engine]\n{line}\n")
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": EDIT}])
    result = cli("--config", str(bad), "run", "x", "--workspace", str(repo), "--model", model)
    assert result.returncode == 2
    assert result.stderr.strip() == f"livhana-cockpit: config: {message}"


def test_run_json_into_a_closed_pipe_cancels_the_task_without_a_traceback(
    repo: Path, tmp_path: Path
) -> None:
    slow = [{**turn, "delay_s": 0.3} for turn in EDIT]
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": slow}])
    proc = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "run", "add farewell", "--workspace", str(repo)]
        + ["--model", model, "--approve", "auto", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())  # `| head -1`
    proc.stdout.close()
    code = proc.wait(timeout=60)
    stderr = proc.stderr.read()
    assert code == 7, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    task = json.loads(cli("history", "--json").stdout)[0]
    assert task["id"] == first["task_id"] and task["state"] == "cancelled"
    assert "stdout closed" in task["error"]


def test_a_listing_into_a_closed_pipe_exits_without_a_traceback() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "capabilities"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line
    code = proc.wait(timeout=60)
    stderr = proc.stderr.read().decode()
    assert code == 1
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and stderr == ""
