"""`livhana-cockpit run --json` as a subprocess against our fake Messages API: the real
AsyncAnthropic client, real SSE, a real git repo."""

from __future__ import annotations

import json
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


def test_run_against_fake_messages_api(repo: Path, tmp_path: Path) -> None:
    with FakeAnthropic(
        TURNS,
        learnings_reply={
            "patterns": ["greet() is the base helper"],
            "improvements": [],
            "nextSteps": [],
        },
    ) as fake:
        result = cli(
            "--config",
            _config(tmp_path),
            "run",
            "add a shout helper",
            "--workspace",
            str(repo),
            "--json",
            "--approve",
            "auto",
            "--no-apply",
            env=fake.env,
        )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
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
        result = cli(
            "--config",
            _config(tmp_path),
            "run",
            "add a shout helper",
            "--workspace",
            str(repo),
            "--json",
            "--approve",
            "auto",
            env=fake.env,
        )
        attempts = len(fake.requests)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["type"] == "complete" and events[-1]["success"] is False
    errors = [e["message"] for e in events if e["type"] == "error"]
    assert errors and "unavailable" in errors[0] and "\n" not in errors[0]
    assert attempts >= 3
    history = json.loads(cli("history", "--json").stdout)
    assert history[0]["state"] == "failed"
    assert git(repo, "status", "--porcelain") == ""
