"""Verification judges the task, not the project's history: failures that were there
before the task started do not fail it; new ones do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.models.scripted import ScriptedModel
from tests.conftest import git

SUITE = """
from app import greet

def test_greet():
    assert greet("a") == "hello a"

def test_already_broken():
    assert 1 == 2
"""


def _repo_with_red_suite(repo: Path) -> Path:
    (repo / "tests").mkdir()
    (repo / "tests" / "test_app.py").write_text(SUITE)
    (repo / "tests" / "conftest.py").write_text(
        "import sys, pathlib\nsys.path.insert(0, str(pathlib.Path(__file__).parent.parent))\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tests")
    return repo


def _write(content: str) -> dict[str, Any]:
    return {
        "match": ".",
        "turns": [
            {
                "tool_calls": [
                    {"name": "write_file", "input": {"path": "app.py", "content": content}}
                ]
            }
        ],
    }


async def test_old_failures_do_not_fail_the_task(engine_factory: Any, repo: Path) -> None:
    _repo_with_red_suite(repo)
    fine = "def greet(name):\n    return 'hello ' + name\n\n\ndef extra():\n    return 1\n"
    engine = await engine_factory(lambda spec: ScriptedModel([_write(fine)]))
    task = await engine.wait(await engine.submit("add extra()", repo, approve="auto", apply=False))
    assert task["state"] == "succeeded", task["error"]
    verdicts = [e for e in await engine.events(task["id"]) if e["type"] == "verification"]
    assert verdicts[-1]["passed"] is True
    assert "same tests failed before the task" in verdicts[-1]["evidence"]


async def test_new_failures_fail_the_task_after_retries(
    engine_factory: Any, config: Any, repo: Path
) -> None:
    config.engine.verify_retries = 1
    _repo_with_red_suite(repo)
    broken = "def greet(name):\n    return 'bye ' + name\n"
    engine = await engine_factory(lambda spec: ScriptedModel([_write(broken)]))
    task = await engine.wait(await engine.submit("break greet", repo, approve="auto", apply=False))
    assert task["state"] == "failed" and "verification" in task["error"]
    verdicts = [e for e in await engine.events(task["id"]) if e["type"] == "verification"]
    assert len(verdicts) == 2 and "test_greet" in verdicts[0]["evidence"]
