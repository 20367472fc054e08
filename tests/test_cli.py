"""The command line as a user meets it: help, secrets, listings."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from agent.context import ELIDED, condense
from tests.conftest import ROOT, cli, write_script


def test_help_documents_exit_codes() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for line in ("0   success", "3   the store is unusable", "6   the emergency stop is engaged"):
        assert line in result.stdout


def test_secrets_round_trip_through_the_keyring_never_echoing_on_set() -> None:
    stored = cli("secrets", "set", "anthropic_api_key", input="sk-ant-test-123456\n")
    assert stored.returncode == 0 and "sk-ant" not in stored.stdout + stored.stderr
    got = cli("secrets", "get", "anthropic_api_key")  # masked: a look never shows the key
    assert got.stdout.strip() == "anthropic_api_key: …56 (18 characters)"
    assert cli("secrets", "get", "anthropic_api_key", "--reveal").stdout == "sk-ant-test-123456\n"
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


def _ci_with_shims(tmp_path: Path, python_too_old: bool) -> tuple[Any, str]:
    """Run .ci/run with git, dpkg, apt and python3 replaced by recording shims: what it
    would install on a fresh Debian/Ubuntu machine, without installing anything."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    shims = {
        "dpkg": "exit 0",  # git, bubblewrap, tmux: already there
        "apt-cache": "exit 0",
        "apt-get": f'echo "apt-get $*" >> {log}',
        "git": "exit 0",
        "python3": f"""case "$*" in
  *"version_info < (3, 11)"*) exit {1 if python_too_old else 0} ;;
  -V) echo "Python 3.10.12" ;;
  *"import ensurepip"*) exit 1 ;;
  *version_info*) echo 3.11 ;;
  *) echo "python3 $*" >> {log}; exit 1 ;;
esac""",
    }
    for name, body in shims.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    result = subprocess.run(
        ["bash", str(ROOT / ".ci" / "run")],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"},
        timeout=60,
    )
    return result, log.read_text() if log.exists() else ""


def test_ci_installs_venv_support_when_python_lacks_it(tmp_path: Path) -> None:
    result, calls = _ci_with_shims(tmp_path, python_too_old=False)
    assert "apt-get install -y -qq python3.11-venv" in calls
    assert "python3 -m venv .venv" in calls  # then the README's command runs
    assert result.returncode != 0  # the shim's venv fails; so must the script


def test_ci_refuses_python_older_than_3_11_loudly(tmp_path: Path) -> None:
    result, calls = _ci_with_shims(tmp_path, python_too_old=True)
    assert result.returncode == 1
    assert "3.11 or newer" in result.stderr and "3.10.12" in result.stderr
    assert calls == ""  # nothing installed, no venv made


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = readme.split("## Test", 1)[1].split("```bash\n", 1)[1].split("\n", 1)[0]
    assert command.endswith("pytest -q -p no:cacheprovider")
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith(command)


def test_a_machine_without_any_keyring_says_what_to_do(repo: Path) -> None:
    """A headless box with no Secret Service: one line pointing at ANTHROPIC_API_KEY."""
    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring", "ANTHROPIC_API_KEY": ""}
    stored = cli("secrets", "set", "anthropic_api_key", input="sk-ant-x\n", env=env)
    assert stored.returncode == 4
    assert stored.stderr.count("\n") == 1 and "ANTHROPIC_API_KEY" in stored.stderr
    assert "no OS keyring on this machine" in stored.stderr
    run = cli("run", "add a test", "--workspace", str(repo), env=env)
    assert run.returncode == 4 and run.stderr.count("\n") == 1
    assert "set ANTHROPIC_API_KEY" in run.stderr and "..." not in run.stderr


def test_an_empty_task_is_named_before_any_key_is_needed(repo: Path) -> None:
    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring", "ANTHROPIC_API_KEY": ""}
    result = cli("run", "   ", "--workspace", str(repo), env=env)
    assert result.returncode == 2 and "the task is empty" in result.stderr
