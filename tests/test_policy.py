"""The approval policy: defaults, TOML rules, modes, command patterns, save/load round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.errors import ConfigError
from agent.policy import TOOLS, Policy
from tests.conftest import until, write_script


def bash(policy: Policy, command: str, sandboxed: bool = True) -> str:
    return policy.decide("execute_bash", {"command": command}, sandboxed=sandboxed)[0]


def test_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    p = Policy.load(tmp_path / "nope.toml")
    expected = {
        "read_file": "allow", "search_codebase": "allow", "analyze_logs": "allow",
        "update_plan": "allow", "generate_reports": "allow", "run_tests": "allow",
        "write_file": "allow", "execute_bash": "allow", "deploy_code": "ask",
        "query_database": "allow", "apply": "ask",
    }  # fmt: skip
    assert {t: p.decide(t, {}, sandboxed=True)[0] for t in TOOLS} == expected
    decision, rule = p.decide("deploy_code", {"target": "prod"}, sandboxed=True)
    assert (decision, rule) == ("ask", "default: deploys need approval")
    assert p.decide("mystery_tool", {}, sandboxed=True)[0] == "ask"


def test_unsandboxed_commands_ask(tmp_path: Path) -> None:
    p = Policy.load(tmp_path / "nope.toml")
    decision, rule = p.decide("execute_bash", {"command": "ls"}, sandboxed=False)
    assert decision == "ask" and "sandbox" in rule
    assert p.decide("run_tests", {}, sandboxed=False)[0] == "ask"
    assert p.decide("read_file", {"path": "a"}, sandboxed=False)[0] == "allow"


@pytest.mark.parametrize(
    "command",
    ["curl https://example.com", "wget -q http://x/y", "pip install requests",
     "python -m pip install -U x", "npm install", "yarn add left-pad", "git push origin main",
     "ssh host uptime", "ls && curl -s x | sh", "echo $(wget -O- x)", "/usr/bin/curl x",
     "cargo install ripgrep", "go get example.com/m", "apt-get install -y jq",
     "docker pull alpine", "git fetch --all", "npx create-react-app x"],
)  # fmt: skip
def test_network_commands_ask(command: str) -> None:
    decision, rule = Policy().decide("execute_bash", {"command": command}, sandboxed=True)
    assert decision == "ask" and "network" in rule


@pytest.mark.parametrize(
    "command",
    ["ls -la", "pytest -q", "cat nc.txt", "git status", "git commit -m 'curly braces'",
     "grep -rn sshd_config docs", "npm test", "pip list", "rm -rf build/", "python curl.py"],
)  # fmt: skip
def test_ordinary_commands_allowed(command: str) -> None:
    assert bash(Policy(), command) == "allow"


@pytest.mark.parametrize(
    "command", ["rm -rf /", "rm -fr ~", "sudo rm -rf / --no-preserve-root", "ls; rm -rf $HOME",
                ":(){ :|:& };:", "dd if=/dev/zero of=/dev/sda", "mkfs.ext4 /dev/sdb1"]
)  # fmt: skip
def test_builtin_denies(command: str) -> None:
    assert bash(Policy(), command) == "deny"
    assert bash(Policy(mode="yolo"), command) == "deny"  # yolo never lifts a deny


def test_toml_rules(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        'mode = "normal"\n[tools]\ndeploy_code = "allow"\nwrite_file = "ask"\n'
        '[[commands]]\npattern = "^rm -rf"\ndecision = "deny"\ndescription = "no rm -rf"\n'
        '[[commands]]\npattern = "^curl https://pypi\\\\.org"\ndecision = "allow"\n'
        '[[commands]]\npattern = "^make deploy"\ndecision = "ask"\n'
    )
    p = Policy.load(path)
    assert p.decide("deploy_code", {}, sandboxed=True) == (
        "allow", "tools.deploy_code = allow (policy file)"
    )  # fmt: skip
    assert p.decide("write_file", {"path": "x"}, sandboxed=True)[0] == "ask"
    decision, rule = p.decide("execute_bash", {"command": "rm -rf build"}, sandboxed=True)
    assert decision == "deny" and rule == "commands #1 '^rm -rf' = deny (policy file): no rm -rf"
    assert bash(p, "cd src && rm -rf dist") == "deny"  # a chained part can't hide it
    assert bash(p, "curl https://pypi.org/simple") == "allow"  # your rule beats built-in ask
    assert bash(p, "curl https://evil.example") == "ask"
    assert bash(p, "make deploy") == "ask" and bash(p, "make test") == "allow"


def test_modes() -> None:
    strict = Policy(mode="strict")
    assert strict.decide("read_file", {}, sandboxed=True)[0] == "allow"
    assert strict.decide("search_codebase", {}, sandboxed=True)[0] == "allow"
    for tool in ("write_file", "execute_bash", "run_tests", "query_database", "generate_reports"):
        decision, rule = strict.decide(tool, {"command": "ls"}, sandboxed=True)
        assert decision == "ask" and rule.startswith("mode strict")
    yolo = Policy(mode="yolo")
    assert yolo.decide("deploy_code", {}, sandboxed=False)[0] == "allow"
    assert bash(yolo, "curl x", sandboxed=False) == "allow"
    yolo.set("deploy_code", "deny")
    assert yolo.decide("deploy_code", {}, sandboxed=True)[0] == "deny"


def test_tools_allow_does_not_silence_network_or_missing_sandbox() -> None:
    p = Policy()
    p.set("execute_bash", "allow")
    assert bash(p, "curl x") == "ask" and bash(p, "ls", sandboxed=False) == "ask"
    p.add_command("^ls$", "allow")
    assert bash(p, "ls", sandboxed=False) == "allow"
    p.set("execute_bash", "deny")
    assert bash(p, "ls") == "deny"


def test_set_save_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "policy.toml"
    p = Policy.load(path)
    p.mode = "strict"
    p.set("deploy_code", "deny")
    p.set("apply", "allow")
    p.add_command('^echo "quoted\\\\path"', "ask", 'tricky "quotes" and \\ backslash \x7f ü')
    p.save()
    again = Policy.load(path)
    assert again.mode == "strict" and again.tools == {"deploy_code": "deny", "apply": "allow"}
    assert again.commands == p.commands
    assert not list(path.parent.glob(".*.tmp"))
    table = {row["tool"]: row["decision"] for row in again.table(sandboxed=True)}
    assert table["deploy_code"] == "deny" and table["read_file"] == "allow"


@pytest.mark.parametrize(
    "text, message",
    [
        ("mode = [", "policy .*policy.toml: "),
        ('mode = "reckless"', "mode must be one of normal, strict, yolo"),
        ('[tools]\ndeploy_code = "maybe"', "tools.deploy_code must be one of allow, ask, deny"),
        ('[tools]\ndeploy_cod = "ask"', "unknown tool 'deploy_cod'"),
        ('[[commands]]\npattern = "(unclosed"\ndecision = "deny"', "bad pattern"),
        ('[[commands]]\ndecision = "deny"', "pattern must be a non-empty string"),
        ('[[commands]]\npattern = "x"\ndecision = "deny"\nextra = 1', "takes pattern"),
        ("colour = 1", "unknown key 'colour'"),
    ],
)
def test_broken_files_are_one_line_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        Policy.load(path)
    assert "\n" not in str(err.value)


# -- the policy file is re-read while engines run --------------------------------------------
async def test_hand_edits_apply_without_restart_and_a_broken_edit_keeps_the_last_good(
    repo: Path, tmp_path: Path, config: Any, engine_factory: Any, caplog: Any
) -> None:
    engine = await engine_factory()
    other = await engine_factory(role="daemon")  # a second engine on the same data dir
    assert engine.safety.decide("execute_bash", {"command": "ls"})[0] == "allow"
    config.policy_path.write_text('[tools]\nexecute_bash = "deny"\n')  # by hand, in an editor
    for e in (engine, other):
        await until(lambda e=e: e.safety.decide("execute_bash", {"command": "ls"})[0] == "deny")

    caplog.set_level("WARNING")
    config.policy_path.write_text('[tools]\nexecute_bash = "maybe"\n')  # a broken edit
    await until(lambda: engine.safety.policy_error, timeout=3)
    assert "execute_bash must be one of allow, ask, deny" in caplog.text
    turn = {"tool_calls": [{"name": "execute_bash", "input": {"command": "touch ran.txt"}}]}
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": [turn]}])
    task_id = await engine.submit("run it", repo, model=model, apply=False)
    task = await engine.wait(task_id)  # the engine runs on, with the last good policy:
    # its deny held, so the command was refused (and the task, short of it, failed)
    assert task["changes"] == [] and task["state"] == "failed"
    assert "was denied by policy (tools.execute_bash = deny" in task["error"]
    with pytest.raises(ConfigError, match="fix the file"):  # never saved over the hand edit
        engine.safety.set_policy("deploy_code", "allow")
    assert "maybe" in config.policy_path.read_text()

    config.policy_path.write_text('[tools]\nexecute_bash = "allow"\n')
    await until(lambda: not engine.safety.policy_error, timeout=3)
    assert engine.safety.decide("execute_bash", {"command": "ls"})[0] == "allow"


async def test_a_change_made_in_one_engine_reaches_another(
    config: Any, engine_factory: Any
) -> None:
    cockpit, daemon = await engine_factory(), await engine_factory(role="daemon")
    assert daemon.safety.decide("deploy_code", {})[0] == "ask"
    await cockpit.set_policy("deploy_code", "allow")
    await until(lambda: daemon.safety.decide("deploy_code", {})[0] == "allow", timeout=3)
    await daemon.set_policy_mode("strict")  # and back: each edits what is on disk now
    await until(lambda: cockpit.policy_mode == "strict", timeout=3)
    assert Policy.load(config.policy_path).tools == {"deploy_code": "allow"}


def test_default_rules_say_what_is_true() -> None:
    _, rule = Policy().decide("generate_reports", {}, sandboxed=True)
    assert "data dir" in rule and "worktree" not in rule  # reports never go to the worktree
