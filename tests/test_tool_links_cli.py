"""Reads outside the worktree, through the real CLI and the scripted model: the operator's
repository holds links out of it (hostile workspace content, or what a model's command
left behind), and every tool that takes a path must refuse them, say so in one line, and
never let a `pattern` tell what an outside file holds."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent.tools.run_tests import detect_test_command
from tests.conftest import cli, git, write_script

SECRET = f"ERROR private-{uuid.uuid4().hex}"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """The operator's home: a private file, a private folder, a private database."""
    home = tmp_path / "home"
    (home / "private").mkdir(parents=True)
    (home / "private.txt").write_text(f"2024-05-01 10:00:00 {SECRET}\n")
    (home / "private" / "notes.log").write_text(f"2024-05-01 10:00:00 {SECRET}\n")
    conn = sqlite3.connect(home / "prod.db")
    conn.execute("create table secrets(value text)")
    conn.execute("insert into secrets values (?)", (SECRET,))
    conn.commit()
    conn.close()
    return home


@pytest.fixture
def linked_repo(repo: Path, outside: Path) -> Path:
    """The repo commits links out: a log, a log folder, a database, a folder in the middle."""
    (repo / "logs").mkdir()
    (repo / "logs" / "app.log").write_text("2024-05-01 10:00:00 INFO started\n")
    os.symlink(outside / "private.txt", repo / "logs" / "a.log")
    os.symlink(outside / "private", repo / "logs" / "more")
    os.symlink(outside / "prod.db", repo / "dev.db")
    os.symlink("../home/private", repo / "mid")  # relative, through a folder
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "links")
    return repo


def run_tools(repo: Path, tmp_path: Path, calls: list[dict[str, Any]], *config: str) -> Any:
    """Run one task whose model makes `calls`, one per turn; the events and the result."""
    turns = [{"tool_calls": [call]} for call in calls]
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    cfg = tmp_path / "config.toml"
    cfg.write_text("\n".join(config) + "\n")
    result = cli(
        "--config", str(cfg), "run", "look around", "--workspace", str(repo),
        "--model", model, "--approve", "auto", "--no-apply", "--json",
    )  # fmt: skip
    events = [json.loads(line) for line in result.stdout.splitlines()]
    outputs = [e for e in events if e["type"] == "tool_result"]
    return result, outputs


def test_every_path_tool_refuses_links_out_and_no_pattern_is_an_oracle(
    linked_repo: Path, tmp_path: Path, outside: Path
) -> None:
    calls = [
        {"name": "analyze_logs", "input": {"path": "logs"}},
        {"name": "analyze_logs", "input": {"path": "logs/a.log"}},
        {"name": "analyze_logs", "input": {"path": "logs/more"}},
        {"name": "analyze_logs", "input": {"path": "logs", "pattern": "private-"}},
        {"name": "analyze_logs", "input": {"path": "logs", "pattern": "no-such-text"}},
        {"name": "read_file", "input": {"path": "mid/notes.log"}},
        {"name": "search_codebase", "input": {"pattern": "private-"}},
        {"name": "search_codebase", "input": {"pattern": "private-", "path": "mid"}},
        {"name": "write_file", "input": {"path": "mid/new.txt", "content": "PWNED"}},
        {"name": "query_database", "input": {"sql": "select value from secrets"}},
    ]
    before = sorted(p.name for p in (outside / "private").iterdir())
    result, out = run_tools(linked_repo, tmp_path, calls, "[databases.dev]", 'path = "dev.db"')
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET.split()[1] not in result.stdout  # in no event at all
    by_step = {e["step"]: e for e in out}
    # The folder's own log is analysed; the links out of it are skipped, and named.
    assert "1 file(s), 1 lines" in by_step[1]["output"]
    assert "skipped 2 symbolic link(s) that lead outside the workspace" in by_step[1]["output"]
    assert "logs/a.log" in by_step[1]["output"] and "logs/more" in by_step[1]["output"]
    for step in (2, 3, 6, 8, 9, 10):
        assert by_step[step]["is_error"], by_step[step]
        assert "outside the workspace" in by_step[step]["output"]
        assert by_step[step]["output"].count("\n") == 0
    # A pattern that matches only the outside file changes nothing in what comes back.
    assert by_step[4]["output"] == by_step[5]["output"]
    assert "no matches" in by_step[7]["output"]
    assert "skipped 4 symbolic link(s)" in by_step[7]["output"]
    assert sorted(p.name for p in (outside / "private").iterdir()) == before


def test_runner_detection_reads_nothing_through_a_link(tmp_path: Path, outside: Path) -> None:
    """What the detected command is must not tell what an outside file holds."""
    (outside / "package.json").write_text('{"scripts": {"test": "jest"}}')
    root = tmp_path / "wt"
    root.mkdir()
    os.symlink(outside / "package.json", root / "package.json")
    assert detect_test_command(root) is None
    (root / "package.json").unlink()
    (root / "package.json").write_text('{"scripts": {"test": "jest"}}')
    assert detect_test_command(root) == "npm test"


def test_file_names_that_are_not_utf8_are_shown_escaped_and_recorded(
    repo: Path, tmp_path: Path
) -> None:
    name = os.fsdecode(b"caf\xe9.txt")
    (repo / name).write_text("needle\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "latin-1 name")
    calls = [
        {"name": "search_codebase", "input": {"pattern": "needle"}},
        {"name": "read_file", "input": {"path": "."}},
    ]
    result, out = run_tools(repo, tmp_path, calls)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert out[0]["output"] == "caf\\xe9.txt:1: needle"
    assert "caf\\xe9.txt" in out[1]["output"]
    history = json.loads(cli("history", "--json").stdout)
    assert history[0]["state"] == "succeeded"
    assert cli("audit", "verify").returncode == 0
