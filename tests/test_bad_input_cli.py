"""Bad input through the real CLI: nan, inf and absurd numbers in config and flags; lone
surrogates and invalid UTF-8 in a title, an argument, a tool's path or content. Each is a
one-line message naming what was wrong (exit 2), or a marked replacement that loses
nothing; never a traceback, and the task's events and audit are still written."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, cli, write_script


def no_tasks() -> bool:
    return (
        json.loads(cli("history", "--json").stdout) == []
        and json.loads(cli("tasks", "--json").stdout) == []
    )


def cli_bytes(*args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    """The CLI with raw argv bytes, as a shell passes $'caf\\xe9'."""
    return subprocess.run(
        [sys.executable, "-m", "cockpit", *args], capture_output=True, timeout=120, cwd=ROOT
    )


def one_line(stderr: str | bytes) -> str:
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    assert text.count("\n") == 1 and "Traceback" not in text, text
    return text.strip()


# -- numbers -------------------------------------------------------------------------------
def test_a_nan_cost_cap_no_longer_lets_an_expensive_task_through(
    repo: Path, tmp_path: Path
) -> None:
    """The attack: `max_cost_usd = nan` and a task that spends $8.40 went through."""
    turn = {
        "tool_calls": [{"name": "write_file", "input": {"path": "x.txt", "content": "x\n"}}],
        "usage": {"input_tokens": 2_800_000},  # $8.40 at the scripted model's price
    }
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": [turn]}])
    (tmp_path / "nan.toml").write_text("[engine]\nmax_cost_usd = nan\n")
    result = cli(
        "--config", str(tmp_path / "nan.toml"), "run", "spend", "--workspace", str(repo),
        "--model", model, "--approve", "auto",
    )  # fmt: skip
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "livhana-cockpit: config: 'config.engine.max_cost_usd' must be a finite number, got nan"
    )
    assert no_tasks() and not (repo / "x.txt").exists()


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("max_cost_usd = inf", "max_cost_usd"),
        ("daily_budget_usd = nan", "daily_budget_usd"),
        ("daily_budget_usd = -inf", "daily_budget_usd"),
        ("heartbeat_s = nan", "heartbeat_s"),
        ("heartbeat_s = 1e-300", "heartbeat_s"),
        ("retry_base_s = inf", "retry_base_s"),
        ("approval_timeout_s = nan", "approval_timeout_s"),
        ("max_cost_usd = 1e400", "max_cost_usd"),
        ("max_cost_usd = 1" + "0" * 400, "max_cost_usd"),
        ("command_timeout_s = 99999999999999999999", "command_timeout_s"),
        ("max_concurrent = 1000000", "max_concurrent"),
        ("max_steps = 10000000000", "max_steps"),
        ("model_retries = 1000", "model_retries"),
    ],
)
def test_non_finite_or_absurd_config_numbers_are_one_line_naming_the_key(
    repo: Path, tmp_path: Path, line: str, key: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(f"[engine]\n{line}\n")
    model = write_script(tmp_path / "s.json", [])
    for args in (("run", "x", "--workspace", str(repo), "--model", model), ("history",)):
        result = cli("--config", str(bad), *args)
        assert result.returncode == 2, (args, result.stdout)
        assert f"'config.engine.{key}' must be" in one_line(result.stderr)
    assert no_tasks()


@pytest.mark.parametrize(
    "args",
    [
        ("run", "x", "--max-cost", "1e308"),
        ("run", "x", "--max-cost", "nan"),
        ("run", "x", "--max-steps", "1" + "0" * 30),
        ("history", "--limit", "1" + "0" * 30),
        ("tasks", "--limit", "-1"),
        ("rollback", "abcd", "--to-step", "1" + "0" * 30),
    ],
    ids=lambda a: " ".join(a)[:40],
)
def test_absurd_flags_are_one_line_naming_the_flag(
    repo: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    model = write_script(tmp_path / "s.json", [])
    extra = ("--workspace", str(repo), "--model", model) if args[0] == "run" else ()
    result = cli(*args, *extra)
    assert result.returncode == 2, result.stdout
    flag = next(a for a in args if a.startswith("--"))
    assert f"argument {flag}: must be" in one_line(result.stderr)
    assert no_tasks()


# -- text that is not valid Unicode ----------------------------------------------------------
def audit_actions(data_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    conn = sqlite3.connect(data_dir / "livhana.db")
    try:
        rows = conn.execute("select action, detail from audit order by id").fetchall()
    finally:
        conn.close()
    return [(action, json.loads(detail)) for action, detail in rows]


def test_a_title_of_undecodable_bytes_is_kept_marked_with_events_and_audit(
    repo: Path, tmp_path: Path
) -> None:
    calls = [{"name": "read_file", "input": {"path": "app.py"}}]
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": [{"tool_calls": calls}]}])
    result = cli_bytes(
        "run", b"fix the caf\xe9 menu", "--workspace", str(repo), "--model", model,
        "--approve", "auto", "--no-apply", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0].get("title") == "fix the caf\\xe9 menu", result.stdout[:1500]
    assert events[-1]["type"] == "complete" and events[-1]["success"]
    (task,) = json.loads(cli("history", "--json").stdout)
    assert task["title"] == "fix the caf\\xe9 menu" and task["state"] == "succeeded"
    assert ("submit", {"title": "fix the caf\\xe9 menu", "workspace": str(repo)}) in [
        (a, {k: d.get(k) for k in ("title", "workspace")})
        for a, d in audit_actions(tmp_path / "data")
    ]
    assert cli("audit", "verify").returncode == 0


def test_tool_inputs_with_lone_surrogates_are_refused_in_one_line_and_recorded(
    repo: Path, tmp_path: Path
) -> None:
    """JSON "\\ud800" from the model: in write_file's content and path, in a pattern."""
    calls = [
        {"name": "write_file", "input": {"path": "notes.txt", "content": "a\ud800b"}},
        {"name": "write_file", "input": {"path": "x\udce9.txt", "content": "ok"}},
        {"name": "search_codebase", "input": {"pattern": "\udfff"}},
        {"name": "write_file", "input": {"path": "fine.txt", "content": "fine\n"}},
    ]
    turns = [{"tool_calls": [call]} for call in calls]
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    result = cli(
        "run", "write notes", "--workspace", str(repo), "--model", model,
        "--approve", "auto", "--json",
    )  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    steps = [e for e in events if e["type"] == "step"]
    assert [s["input"] for s in steps[:3]] == [
        {"path": "notes.txt", "content": "a\\ud800b"},
        {"path": "x\\xe9.txt", "content": "ok"},
        {"pattern": "\\udfff"},
    ]
    results = [e for e in events if e["type"] == "tool_result"]
    for res, field in zip(results[:3], ("content", "path", "pattern"), strict=True):
        assert res["is_error"]
        assert res["output"] == (
            f"not run: input.{field} is not valid Unicode (a lone surrogate); send UTF-8 text"
        )
    assert not results[3]["is_error"] and (repo / "fine.txt").read_text() == "fine\n"
    assert not (repo / "notes.txt").exists() and not list(repo.glob("x*.txt"))
    calls_audited = [d for a, d in audit_actions(tmp_path / "data") if a == "tool_call"]
    assert [d["is_error"] for d in calls_audited] == [True, True, True, False]
    assert cli("audit", "verify").returncode == 0
    # The same inputs reaching a tool some other way (not through the loop): still one line.
    from agent.errors import ToolError
    from agent.tools.base import string_arg

    with pytest.raises(ToolError, match=r"content is not valid Unicode \(a lone surrogate"):
        string_arg({"content": "a\ud800b"}, "content")


@pytest.mark.parametrize("flag", ["--workspace", "--model", "TASK_ID"])
def test_undecodable_arguments_are_one_line_naming_the_argument(
    repo: Path, tmp_path: Path, flag: str
) -> None:
    odd = os.fsencode(tmp_path) + b"/caf\xe9"
    os.mkdir(odd)
    shown = f"{tmp_path}/caf\\xe9"  # how the message writes the byte it could not decode
    args: tuple[str | bytes, ...] = {
        "--workspace": ("run", "x", "--workspace", odd),
        "--model": ("run", "x", "--workspace", str(repo), "--model", b"scripted:" + odd),
        "TASK_ID": ("cancel", b"abc\xff"),
    }[flag]
    value = {"--workspace": shown, "--model": f"scripted:{shown}", "TASK_ID": "abc\\xff"}[flag]
    result = cli_bytes(*args)
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"livhana-cockpit: {flag} is not valid UTF-8 ('{value}'); use a UTF-8 name"
    )
    assert no_tasks()
