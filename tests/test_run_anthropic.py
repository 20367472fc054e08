"""`livhana-cockpit run --json` as a subprocess against our fake Messages API: the real
AsyncAnthropic client, real SSE, a real git repo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import cli, git
from tests.fake_anthropic import FakeAnthropic

TURNS = [
    {
        "thinking": "Let me read the app first.",
        "text": "Reading app.py.",
        "tool_calls": [{"name": "read_file", "input": {"path": "app.py"}}],
    },
    {
        "thinking": "Add a shout helper.",
        "tool_calls": [
            {
                "name": "write_file",
                "input": {
                    "path": "app.py",
                    "content": "def greet(name):\n    return 'hello ' + name\n\n\ndef shout(name):\n    return greet(name).upper()\n",
                },
            }
        ],
    },
    {"text": "Added shout() which upper-cases the greeting."},
]


def _config(tmp_path: Path) -> str:
    path = tmp_path / "config.toml"
    path.write_text("[engine]\nmodel_retries = 2\nretry_base_s = 0.05\n")
    return str(path)


def run_json(
    tmp_path: Path, repo: Path, fake: FakeAnthropic, *flags: str
) -> subprocess.CompletedProcess[str]:
    """`run "add a shout helper" --json --approve auto` on `repo`, against the fake API."""
    return cli(
        "--config", _config(tmp_path), "run", "add a shout helper", "--workspace", str(repo),
        "--json", "--approve", "auto", *flags, env=fake.env,
    )  # fmt: skip


def test_run_against_fake_messages_api(repo: Path, tmp_path: Path) -> None:
    with FakeAnthropic(
        TURNS,
        learnings_reply={
            "patterns": ["greet() is the base helper"],
            "improvements": [],
            "nextSteps": [],
        },
    ) as fake:
        result = run_json(tmp_path, repo, fake, "--no-apply")
    assert result.returncode == 0, result.stderr
    events = envelope_checked(result.stdout)
    types = [e["type"] for e in events]
    assert types[0] == "status" and types[-1] == "complete"
    assert "analysis" in types and "thinking" in types and "usage" in types
    thinking = [e["text"] for e in events if e["type"] == "thinking"]
    assert thinking[:2] == ["Let me read the app first.", "Add a shout helper."]
    steps = [(e["action"], e["target"]) for e in events if e["type"] == "step"]
    assert steps == [("read_file", "app.py"), ("write_file", "app.py")]
    usage = [e for e in events if e["type"] == "usage"]
    assert all(u["cost_usd"] > 0 for u in usage)
    assert usage[-1]["total_cost_usd"] == round(sum(u["cost_usd"] for u in usage), 6)
    assert events[-1]["success"] is True and events[-1]["changes"] == ["app.py"]
    task_id = events[-1]["task_id"]
    assert "def shout" in git(repo, "show", f"livhana/{task_id}:app.py")
    assert "shout" not in (repo / "app.py").read_text()
    # 3 tool-loop requests + 1 learnings request, each accepted by the strict fake.
    assert len(fake.requests) == 4
    assert fake.requests[1]["messages"][1]["content"][0]["type"] == "thinking"
    assert "tools" not in fake.requests[3]


def test_dead_model_api_fails_cleanly(repo: Path, tmp_path: Path) -> None:
    with FakeAnthropic([], always_fail=True) as fake:
        result = run_json(tmp_path, repo, fake)
        attempts = len(fake.requests)
    assert result.returncode == 5, result.stderr  # `--help`: the model API is unreachable
    assert "Traceback" not in result.stderr
    events = envelope_checked(result.stdout)
    assert events[-1]["type"] == "complete" and events[-1]["success"] is False
    errors = [e for e in events if e["type"] == "error"]
    assert errors and "unavailable" in errors[0]["message"] and "\n" not in errors[0]["message"]
    assert errors[0]["kind"] == "ModelError"
    assert attempts >= 3
    history = json.loads(cli("history", "--json").stdout)
    assert history[0]["state"] == "failed"
    assert git(repo, "status", "--porcelain") == ""
    # Nothing changed, so nothing is left behind: no worktree, no task branch.
    assert git(repo, "worktree", "list").count("\n") == 1
    assert git(repo, "branch", "--list", "livhana/*") == ""


def test_applied_run_streams_the_whole_lifecycle_and_keeps_operator_edits(
    repo: Path, tmp_path: Path
) -> None:
    (repo / "README.md").write_text("# demo project\noperator's unsaved note\n")
    with FakeAnthropic(TURNS) as fake:
        result = run_json(tmp_path, repo, fake)
    assert result.returncode == 0, result.stderr
    events = envelope_checked(result.stdout)
    states = [e["state"] for e in events if e["type"] == "status"]
    assert states == [
        "queued",
        "planning",
        "running",
        "verifying",
        "awaiting_approval",
        "applying",
        "succeeded",
    ]
    decided = [e for e in events if e["type"] == "approval_decided"]
    assert [(d["kind"], d["approved"], d["by"]) for d in decided] == [
        ("apply", True, "rule:approve=auto")
    ]
    assert events[-1]["type"] == "complete" and events[-1]["success"] is True
    assert "def shout" in (repo / "app.py").read_text()  # applied to the workspace
    assert (repo / "README.md").read_text() == "# demo project\noperator's unsaved note\n"
    assert git(repo, "status", "--porcelain") == " M README.md\n"


def envelope_checked(stdout: str) -> list[dict]:
    """Every line one event with the shared envelope, numbered 1, 2, 3, ... for one task."""
    events = [json.loads(line) for line in stdout.splitlines()]
    assert events, "no events on stdout"
    for event in events:
        assert {"task_id", "seq", "ts", "type"} <= set(event), event
        assert isinstance(event["ts"], float | int) and isinstance(event["type"], str)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["task_id"] for e in events}) == 1
    return events
