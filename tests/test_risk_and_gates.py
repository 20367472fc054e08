"""A command waiting for approval is rated by its riskiest part; the rule that made it wait
shows its regex as written; and Capabilities says why an allowed tool's calls still ask."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.risk import command_risk
from tests.conftest import cli, pending_for, until, write_script

PATTERN = r"\bgit\s+clean\b|\brm\s+-[a-zA-Z]*r"
POLICY = ("[[commands]]\n"
          f"pattern = '{PATTERN}'\n"
          "decision = \"ask\"\n"
          "description = \"destructive cleanups need the operator\"\n")


def bash(command: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "execute_bash", "input": {"command": command}}]}


async def test_a_destructive_chain_waits_rated_high_with_its_rule_as_written(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any
) -> None:
    config.policy_path.parent.mkdir(parents=True, exist_ok=True)
    config.policy_path.write_text(POLICY)
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": [
        bash("rm -rf build dist *.egg-info && git clean -fdx")]}])  # fmt: skip
    engine = await engine_factory()
    task_id = await engine.submit("clean the build", repo, model=model, apply=False)
    (request,) = await until(lambda: pending_for(engine, task_id))
    assert request["kind"] == "command" and request["risk"] == "high"
    shown = cli("approvals").stdout
    assert "high" in next(line for line in shown.splitlines() if task_id[:8] in line)
    # The regex as the operator wrote it: one backslash, not a repr's two.
    rule = request["detail"]["rule"] if isinstance(request["detail"], dict) else json.loads(
        request["detail"])["rule"]
    assert f"'{PATTERN}'" in rule and "\\\\" not in rule
    await engine.decide_task(task_id, False, by="test")


def test_a_command_is_as_risky_as_its_riskiest_part() -> None:
    for command in ("rm -rf build && git clean -fdx", "make && git reset --hard HEAD",
                    "ls; chmod -R 777 .", "echo | dd if=/dev/zero of=disk.img",
                    "git status && rm -r src", "find . -name '*.pyc' -delete", "mkfs.ext4 x"):
        assert command_risk(command) == "high", command
    for command in ("ls -la && git status", "pytest -q", "rm notes.txt", "python3 -m pytest --rf"):
        assert command_risk(command) == "medium", command


def test_capabilities_say_why_an_allowed_tool_still_asks(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "policy.toml").write_text(POLICY)
    shown = cli("--data-dir", str(data), "capabilities")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert next(line for line in lines if line.startswith("execute_bash")).split()[2] == "allow*"
    assert next(line for line in lines if line.startswith("read_file")).split()[2] == "allow"
    text = shown.stdout
    assert f"ask: commands #1 '{PATTERN}' = ask (policy file)" in text
    assert "ask: built-in: looks like network use" in text
    assert "approval mode is ask" in text
    caps = json.loads(cli("--data-dir", str(data), "capabilities", "--json").stdout)
    bash_tool = next(c for c in caps if c["name"] == "execute_bash")
    assert bash_tool["policy"] == "allow" and any(PATTERN in g for g in bash_tool["gates"])
