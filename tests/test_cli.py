"""The command line as a user meets it: help, secrets, listings."""

from __future__ import annotations

import json
from pathlib import Path

from agent.context import ELIDED, condense
from tests.conftest import cli, write_script


def test_help_documents_exit_codes() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for line in ("0   success", "3   the store is unusable", "6   the emergency stop is engaged"):
        assert line in result.stdout


def test_secrets_round_trip_through_the_keyring_never_echoing_on_set() -> None:
    stored = cli("secrets", "set", "anthropic_api_key", input="sk-ant-test-123456\n")
    assert stored.returncode == 0 and "sk-ant" not in stored.stdout + stored.stderr
    got = cli("secrets", "get", "anthropic_api_key")
    assert got.stdout.strip() == "sk-ant-test-123456"
    assert cli("secrets", "delete", "anthropic_api_key").returncode == 0
    missing = cli("secrets", "get", "anthropic_api_key")
    assert missing.returncode == 2 and "no secret" in missing.stderr


def test_listings_have_json_forms(repo: Path, tmp_path: Path) -> None:
    model = write_script(
        tmp_path / "s.json",
        [
            {
                "match": ".",
                "turns": [{"tool_calls": [{"name": "read_file", "input": {"path": "app.py"}}]}],
            }
        ],
    )
    assert (
        cli(
            "run", "read app", "--workspace", str(repo), "--model", model, "--approve", "auto"
        ).returncode
        == 0
    )
    caps = json.loads(cli("capabilities", "--json").stdout)
    assert [c["name"] for c in caps] == [
        "read_file",
        "write_file",
        "execute_bash",
        "search_codebase",
        "run_tests",
        "deploy_code",
        "query_database",
        "analyze_logs",
        "generate_reports",
        "update_plan",
    ]
    assert {c["name"]: c["policy"] for c in caps}["deploy_code"] == "ask"
    metrics = json.loads(cli("metrics", "--json").stdout)
    assert metrics["totals"]["tasks"] == 1 and metrics["totals"]["succeeded"] == 1
    assert json.loads(cli("tasks", "--json").stdout) == []
    plain = cli("history")
    assert "succeeded" in plain.stdout and "read app" in plain.stdout


def test_condense_elides_old_tool_output_but_keeps_pairs_and_recent_turns() -> None:
    messages: list[dict] = [{"role": "user", "content": "task"}]
    for i in range(20):
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": f"t{i}", "name": "read_file", "input": {"path": "a"}}
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "x" * 4000}],
            }
        )
    assert condense(messages, window=100_000) is False  # ~20k tokens: under the threshold
    assert condense(messages, window=20_000) is True
    results = [m["content"][0] for m in messages[1:] if m["role"] == "user"]
    assert all(r["content"] == ELIDED for r in results[:-3])
    assert all(r["content"] == "x" * 4000 for r in results[-3:])
    assert all(r["tool_use_id"] == f"t{i}" for i, r in enumerate(results))
