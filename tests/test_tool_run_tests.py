"""run_tests: runner detection, real sandboxed runs, and summary parsing for each runner."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.config import Config
from agent.procs import ProcessGroups
from agent.tools import run_tests
from agent.tools.base import ToolContext
from agent.tools.run_tests import detect_test_command, parse_counts


def make_ctx(root: Path) -> ToolContext:
    async def emit(type_: str, **payload: Any) -> None:
        pass

    async def ask(kind: str, summary: str, detail: dict[str, Any]) -> bool:
        return True

    config = Config()
    config.data_dir = root.parent / "data"
    return ToolContext(
        root=root, task_id="t-1", config=config, emit=emit, procs=ProcessGroups(), ask=ask
    )


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "proj"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


PYTESTS = """
def test_one():
    assert 1 + 1 == 2

def test_two():
    assert "a".upper() == "A"

def test_three():
    assert 2 * 2 == 5
"""


async def test_pytest_project_counts(tmp_path: Path) -> None:
    root = project(tmp_path, {"tests/test_math.py": PYTESTS})
    command = detect_test_command(root)
    assert command is not None and "pytest" in command
    # The cockpit's own interpreter has pytest; the project has no venv of its own.
    result = await run_tests.tool.run({"command": f"{sys.executable} -m pytest -q"}, make_ctx(root))
    assert result.is_error
    assert result.data["passed"] == 2 and result.data["failed"] == 1
    assert result.data["found"] is True and result.data["exit_code"] == 1
    assert result.output.startswith("FAILED: 2 passed, 1 failed")


async def test_green_pytest_is_not_an_error(tmp_path: Path) -> None:
    root = project(tmp_path, {"test_ok.py": "def test_ok():\n    assert True\n"})
    result = await run_tests.tool.run({"command": f"{sys.executable} -m pytest"}, make_ctx(root))
    assert not result.is_error, result.output
    assert (result.data["passed"], result.data["failed"]) == (1, 0)


async def test_makefile_project(tmp_path: Path) -> None:
    tests = "import unittest\n\nclass T(unittest.TestCase):\n"
    tests += "    def test_a(self): self.assertEqual(1, 1)\n"
    tests += "    def test_b(self): self.assertEqual(1, 1)\n"
    tests += "    def test_c(self): self.assertEqual(1, 2)\n"
    root = project(
        tmp_path,
        {
            "Makefile": f".PHONY: test\ntest:\n\t{sys.executable} -m unittest discover -s checks -p 'check_*.py'\n",
            "checks/check_things.py": tests,
        },
    )
    assert detect_test_command(root) == "make test"
    result = await run_tests.tool.run({}, make_ctx(root))
    assert result.is_error
    assert result.data["command"] == "make test"
    assert (result.data["passed"], result.data["failed"]) == (2, 1)


@pytest.mark.skipif(shutil.which("npm") is None, reason="node/npm not installed")
async def test_npm_node_test_project(tmp_path: Path) -> None:
    js = "const test = require('node:test'); const assert = require('node:assert');\n"
    js += "test('a', () => assert.equal(1, 1));\ntest('b', () => assert.equal(1, 2));\n"
    root = project(
        tmp_path,
        {
            "package.json": json.dumps({"name": "p", "scripts": {"test": "node --test"}}),
            "x.test.js": js,
        },
    )
    assert detect_test_command(root) == "npm test"
    result = await run_tests.tool.run({}, make_ctx(root))
    assert (result.data["passed"], result.data["failed"]) == (1, 1) and result.is_error


async def test_no_suite_found_is_not_an_error(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "README.md": "hi",
            "package.json": json.dumps(
                {"scripts": {"test": 'echo "Error: no test specified" && exit 1'}}
            ),
        },
    )
    result = await run_tests.tool.run({}, make_ctx(root))
    assert not result.is_error
    assert result.data["found"] is False and "no test suite found" in result.output


def test_detection(tmp_path: Path) -> None:
    def detect(files: dict[str, str]) -> str | None:
        root = tmp_path / f"d{len(list(tmp_path.iterdir()))}"
        root.mkdir()
        for name, text in files.items():
            (root / name).write_text(text)
        return detect_test_command(root)

    assert detect({"go.mod": "module x\n"}) == "go test ./..."
    assert detect({"Cargo.toml": "[package]\n"}) == "cargo test"
    assert detect({"Makefile": "build:\n\ttrue\n"}) is None
    assert detect({"Makefile": "all: test\ntest: build\n\ttrue\n"}) == "make test"
    assert "pytest" in (detect({"pytest.ini": "[pytest]\n", "package.json": "{}"}) or "")
    assert "pytest" in (detect({"setup.cfg": "[tool:pytest]\n"}) or "")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("===== 12 passed, 3 failed, 1 error in 1.20s =====", (12, 4)),
        ("1 failed, 5 passed, 2 warnings in 0.05s", (5, 1)),
        ("==== no tests ran in 0.01s ====", (0, 0)),
        ("Tests:       1 failed, 7 passed, 8 total\nTime: 1s", (7, 1)),
        (" Test Files  1 failed (1)\n      Tests  2 failed | 9 passed (11)", (9, 2)),
        ("\n  4 passing (12ms)\n  2 failing\n", (4, 2)),
        ("# tests 3\n# pass 3\n# fail 0\n", (3, 0)),
        ("ℹ tests 3\nℹ pass 2\nℹ fail 1\n", (2, 1)),
        (
            "test result: ok. 3 passed; 0 failed; 0 ignored\n"
            "test result: FAILED. 1 passed; 2 failed; 0 ignored",
            (4, 2),
        ),
        ("ok  \texample.com/a\t0.01s\nFAIL\texample.com/b\t0.02s\nFAIL\n", (1, 1)),
        ("=== RUN TestA\n--- PASS: TestA (0.00s)\n--- FAIL: TestB (0.00s)\nFAIL\n", (1, 1)),
        ("Ran 5 tests in 0.002s\n\nFAILED (failures=1, errors=1, skipped=1)", (2, 2)),
        ("\x1b[32m3 passed\x1b[0m in 0.10s", (3, 0)),
        ("make: *** [test] Error 2", None),
    ],
)
def test_parse_counts(output: str, expected: tuple[int, int] | None) -> None:
    assert parse_counts(output) == expected
