"""The real engine and CLI driven by a deterministic scripted model (mini-swe-agent style)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import cli, git, write_script

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
    assert {row["text"] for row in learned} == {"app.py holds helpers", "add tests"}


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
