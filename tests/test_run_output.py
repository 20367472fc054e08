"""`run`'s plain output is something an operator can act on: the task id first, the failing
tests by name with their first assertion line, tool output with its line breaks, the items
learned, input tokens with the cache counted, and a closing summary; the apply commit has
a proper subject line and the whole task in its body."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.conftest import cli, git, write_script

TITLE = ("find and fix the regression in greet so that it says hi instead of hello, and keep "
         "the rest of the behaviour exactly as it was before the change")  # fmt: skip
TEST_FILE = """import unittest
from app import greet


class GreetTests(unittest.TestCase):
    def test_greet(self):
        self.assertEqual(greet('bob'), 'hi bob')

    def test_type(self):
        self.assertIsInstance(greet('x'), str)
"""
LEARNED = {"patterns": ["greet's tests live in test_app.py at the top level"],
           "improvements": ["run the tests before editing"],
           "nextSteps": ["add a test for an empty name"]}  # fmt: skip
CACHED = {"input_tokens": 3, "cache_read_input_tokens": 13000,
          "cache_creation_input_tokens": 500, "output_tokens": 50}  # fmt: skip


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "input": args}]}


def script(tmp_path: Path) -> str:
    unittest = "python3 -m unittest -v"
    turns = [
        {"text": "Looking at greet.\nFirst a test that shows the regression.", "usage": CACHED,
         **call("write_file", path="test_app.py", content=TEST_FILE)},
        call("run_tests", command=unittest),
        call("execute_bash", command="printf 'one\\ntwo\\n\\tthree\\n'"),
        call("write_file", path="app.py", content="def greet(name):\n    return 'hi ' + name\n"),
        call("run_tests", command=unittest),
    ]
    scripts = [{"match": ".", "turns": turns, "summary": "greet says hi again.",
                "learnings": LEARNED}]  # fmt: skip
    return write_script(tmp_path / "s.json", scripts)


def test_plain_run_output_can_be_acted_on(repo: Path, tmp_path: Path) -> None:
    result = cli("run", TITLE, "--workspace", str(repo), "--model", script(tmp_path),
                 "--approve", "auto")  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    lines = out.splitlines()
    task_id = json.loads(cli("history", "--json").stdout)[0]["id"]

    # The id approve/deny/cancel/rollback need comes first.
    assert lines[0] == f"task {task_id}: {TITLE}"

    # The failing test is named in full, with its first assertion line, under the verdict.
    verdict = next(n for n, line in enumerate(lines) if "-> error: FAILED: 1 passed, 1 failed" in line)
    assert lines[verdict + 1].strip() == (
        "✗ test_app.GreetTests.test_greet — AssertionError: 'hello bob' != 'hi bob'")

    # Tool output keeps its line breaks, indented under its step (not one run-on line).
    step = next(n for n, line in enumerate(lines) if "execute_bash printf" in line)
    shown = lines[step + 1 : step + 5]
    assert shown[0].endswith("-> ok: exit code: 0")
    assert [s.strip() for s in shown[1:]] == ["--- stdout ---", "one", "two"]
    assert all(s.startswith(" " * 13) for s in shown[1:]), shown
    assert lines[step + 5].strip() == "three" and lines[step + 5].endswith("    three")

    # The items learned, not "learned 3 item(s)"; the agent's text keeps its lines too.
    learned = next(n for n, line in enumerate(lines) if line.endswith("learned 3 items:"))
    assert [s.strip() for s in lines[learned + 1 : learned + 4]] == [
        f"pattern: {LEARNED['patterns'][0]}", f"improvement: {LEARNED['improvements'][0]}",
        f"next step: {LEARNED['nextSteps'][0]}"]  # fmt: skip
    assert "First a test that shows the regression." in out

    # Input counts cache reads and writes: 3 new + 13,000 read + 500 written.
    assert "usage: 13,503 in (13,000 cache read, 500 cache write) / 50 out" in out

    # The closing summary: how it ended, time, tokens, cost, changed files.
    rule = next(n for n, line in enumerate(lines) if line.startswith("─" * 20))
    summary = {line.split()[0]: line.split(None, 1)[1] for line in lines[rule + 2 :]}
    assert lines[rule + 1] == f"task {task_id} succeeded"
    assert re.fullmatch(r"\d+\.\ds working, 0\.0s waiting for you", summary["time"])
    assert summary["tokens"] == "13,503 in (13,000 cache read, 500 cache write) / 50 out"
    task = json.loads(cli("history", "--json").stdout)[0]
    assert summary["cost"] == f"${task['cost_usd']:.4f}"
    assert summary["changed"] == "app.py, test_app.py (applied to your checkout)"
    assert summary["learned"].startswith("3 items")
    # What stays in the operator's repository is said, not left to be found.
    assert summary["left"].startswith(f"livhana/{task_id} and its worktree ")
    assert f"livhana/{task_id}" in git(repo, "branch", "--list")

    # The apply commit: a subject that fits, cut at a word, and the whole task in the body.
    subject, body = git(repo, "log", "-1", "--format=%s%x00%b").split("\x00")
    assert subject.startswith("livhana: find and fix the regression in greet")
    assert subject.endswith(f"… (task {task_id})") and len(subject) <= 72
    head = subject.removeprefix("livhana: ").split("…")[0]
    assert TITLE.startswith(head) and TITLE[len(head)] == " "  # a whole word last
    assert " ".join(body.split()).startswith(TITLE)
    assert f"task {task_id}" in body
    # ... and so does the task branch's own commit.
    kept = git(repo, "log", "-1", "--format=%s%x00%b", f"livhana/{task_id}").split("\x00")
    assert len(kept[0]) <= 72 and " ".join(kept[1].split()).startswith(TITLE)
