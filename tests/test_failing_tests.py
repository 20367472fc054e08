"""The failing tests of a run, named in full with their first assertion line, read from the
real output of real runners (pytest, unittest, cargo, node --test), and carried by the
run_tests tool even when its output is far too long to keep whole."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.failing_tests import failing_tests
from agent.tools import run_tests
from tests.test_tool_run_tests import make_ctx, project


def output_of(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "RUST_BACKTRACE": "0", "NO_COLOR": "1"})  # fmt: skip
    return done.stdout + "\n" + done.stderr


PYTESTS = '''
import pytest

def test_ok():
    assert 1 == 1

def test_list():
    assert [1, 2] == [1, 2, 3]

class TestThing:
    def test_raises(self):
        raise ValueError("boom\\nsecond line")

@pytest.mark.parametrize("v", [1, 2])
def test_param(v):
    assert v == 1, "v must be one"
'''


def test_pytest_names_and_first_lines(tmp_path: Path) -> None:
    root = project(tmp_path, {"test_a.py": PYTESTS})
    found = failing_tests(output_of([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
                                    root))  # fmt: skip
    assert found == [
        {"name": "test_a.py::test_list", "line": "assert [1, 2] == [1, 2, 3]"},
        {"name": "test_a.py::TestThing::test_raises", "line": "ValueError: boom"},
        {"name": "test_a.py::test_param[2]", "line": "AssertionError: v must be one"},
    ]


def test_pytest_without_its_short_summary_reads_the_sections(tmp_path: Path) -> None:
    root = project(tmp_path, {"test_a.py": PYTESTS})
    out = output_of([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rN"], root)
    assert "short test summary" not in out
    assert failing_tests(out) == [
        {"name": "test_list", "line": "assert [1, 2] == [1, 2, 3]"},
        {"name": "TestThing.test_raises", "line": "ValueError: boom"},
        {"name": "test_param[2]", "line": "AssertionError: v must be one"},
    ]


UNITTESTS = '''
import unittest

class ChunkTests(unittest.TestCase):
    def test_even(self):
        self.assertEqual([1, 2], [1, 2])

    def test_odd(self):
        self.assertEqual([[1, 2]], [[1, 2], [3]])

    def test_error(self):
        {}["missing"]

    def test_sub(self):
        for i in range(2):
            with self.subTest(i=i):
                self.assertEqual(i, 0)
'''


def test_unittest_verbose_names_and_exception_lines(tmp_path: Path) -> None:
    root = project(tmp_path, {"tests/__init__.py": "", "tests/test_chunks.py": UNITTESTS})
    found = failing_tests(output_of([sys.executable, "-m", "unittest", "-v"], root))
    assert found == [
        {"name": "tests.test_chunks.ChunkTests.test_error", "line": "KeyError: 'missing'"},
        {"name": "tests.test_chunks.ChunkTests.test_odd",
         "line": "AssertionError: Lists differ: [[1, 2]] != [[1, 2], [3]]"},
        {"name": "tests.test_chunks.ChunkTests.test_sub (i=1)", "line": "AssertionError: 1 != 0"},
    ]  # fmt: skip
    # unittest's "FAILED (failures=2, errors=1)" is no test's name
    assert not any(f["name"].startswith("(") for f in found)


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_node_test_runner(tmp_path: Path) -> None:
    root = project(tmp_path, {"a.test.js": (
        "const test = require('node:test');\nconst assert = require('node:assert');\n"
        "test('adds', () => { assert.strictEqual(1 + 1, 3); });\n"
        "test('fine', () => { assert.ok(true); });\n")})  # fmt: skip
    found = failing_tests(output_of(["node", "--test"], root))
    assert [f["name"] for f in found][:1] == ["adds"]
    assert found[0]["line"].startswith("Expected values to be strictly equal")


@pytest.mark.skipif(not shutil.which("cargo"), reason="cargo is not installed")
def test_cargo_panics(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "Cargo.toml": '[package]\nname = "demo"\nversion = "0.1.0"\nedition = "2021"\n',
        "src/lib.rs": ("pub fn add(a: i32, b: i32) -> i32 { a + b + 1 }\n"
                       "#[cfg(test)]\nmod tests {\n    use super::*;\n"
                       "    #[test] fn adds() { assert_eq!(add(1, 2), 3); }\n"
                       '    #[test] fn panics() { panic!("custom failure {}", 7); }\n'
                       "    #[test] fn ok() { assert!(true); }\n}\n"),
    })  # fmt: skip
    found = failing_tests(output_of(["cargo", "test", "--offline", "-q"], root))
    # cargo runs tests on threads and prints each failure as it ends: in either order
    assert sorted(found, key=lambda f: f["name"]) == [{"name": "tests::adds", "line": "assertion `left == right` failed"},
                     {"name": "tests::panics", "line": "custom failure 7"}]  # fmt: skip


def test_go_output() -> None:
    out = ("=== RUN   TestAdd\n    add_test.go:9: got 4, want 3\n--- FAIL: TestAdd (0.00s)\n"
           "=== RUN   TestOk\n--- PASS: TestOk (0.00s)\nFAIL\nFAIL\texample.com/demo\t0.002s\n")
    # go prints the message before its --- FAIL line with -v; without -v, after it
    quiet = "--- FAIL: TestAdd (0.00s)\n    add_test.go:9: got 4, want 3\nFAIL\n"
    assert failing_tests(quiet) == [{"name": "TestAdd", "line": "add_test.go:9: got 4, want 3"}]
    assert failing_tests(out) == [{"name": "TestAdd", "line": "add_test.go:9: got 4, want 3"}]


async def test_run_tests_names_failures_that_the_kept_output_has_lost(tmp_path: Path) -> None:
    """816 tests with `unittest -v`, 3 failing: the output kept for the model and the log
    (its head and tail) no longer holds the failure blocks; the result still names them."""
    cases = "".join(f"    def test_{n:03d}(self):\n        self.assertTrue(True)\n"
                     for n in range(813))  # fmt: skip
    bad = "".join(f"    def test_bad_{n}(self):\n        self.assertEqual({n}, -1)\n"
                  for n in range(3))  # fmt: skip
    root = project(tmp_path, {
        "tests/__init__.py": "",
        "tests/test_many.py": f"import unittest\n\nclass Many(unittest.TestCase):\n{cases}{bad}",
        "Makefile": "test:\n\tpython3 -m unittest -v\n",
    })  # fmt: skip
    result = await run_tests.tool.run({"command": "make test"}, make_ctx(root))
    assert result.is_error and result.data["failed"] == 3
    names = [f["name"] for f in result.data["failures"]]
    assert names == [f"tests.test_many.Many.test_bad_{n}" for n in range(3)]
    assert [f["line"] for f in result.data["failures"]] == [
        f"AssertionError: {n} != -1" for n in range(3)
    ]
    lines = result.output.splitlines()
    assert lines[0].startswith("FAILED: 813 passed, 3 failed")
    assert "FAIL: test_bad_0 " not in result.output  # its block was cut from the output
    # right under the verdict, whole, whatever is cut from the runner's output below
    assert lines[1:4] == [f"✗ tests.test_many.Many.test_bad_{n} — AssertionError: {n} != -1"
                          for n in range(3)]  # fmt: skip
