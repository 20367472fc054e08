"""run_tests: detect the project's test runner, run it sandboxed, report pass/fail counts."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from .. import sandbox
from ..errors import ToolError
from ..failing_tests import failing_tests, summary_lines
from . import confine
from .base import ToolContext, ToolResult
from .execute_bash import clamp_timeout, format_completed

# npm's placeholder script: a package.json with it has no tests.
_NPM_PLACEHOLDER = "no test specified"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# Detection reads the worktree, which the model may have filled with links: every look-up
# goes through confine (nothing outside is read, not even whether it exists), bounded.
def _pytest_command(root: Path) -> str:
    # The project's own venv knows its dependencies; else whatever pytest the operator has.
    for venv in (".venv", "venv"):
        if confine.exists(root, f"{venv}/bin/python"):
            return f"{venv}/bin/python -m pytest"
    if shutil.which("pytest"):
        return "pytest"
    return f"{sys.executable} -m pytest"


def _has_pytest_config(root: Path) -> bool:
    return (
        confine.exists(root, "pytest.ini")
        or confine.exists(root, "conftest.py")
        or "[tool.pytest" in confine.peek(root, "pyproject.toml")
        or "[tool:pytest]" in confine.peek(root, "setup.cfg")
        or "[pytest]" in confine.peek(root, "tox.ini")
    )


def _has_python_tests(root: Path) -> bool:
    if confine.has_file(root, ".", "test_*.py", deep=False):
        return True
    if confine.has_file(root, ".", "*_test.py", deep=False):
        return True
    return confine.has_file(root, "tests", "test_*.py", deep=True)


def _npm_has_tests(root: Path) -> bool:
    try:
        scripts = json.loads(confine.peek(root, "package.json") or "{}").get("scripts") or {}
    except (json.JSONDecodeError, AttributeError, RecursionError):
        return False
    script = scripts.get("test") if isinstance(scripts, dict) else None
    return isinstance(script, str) and _NPM_PLACEHOLDER not in script


def _make_has_test(root: Path) -> bool:
    for name in ("Makefile", "makefile", "GNUmakefile"):
        if re.search(r"^test\s*:", confine.peek(root, name), re.M):
            return True
    return False


def detect_test_command(root: Path) -> str | None:
    """The command that runs this project's tests, or None.

    Explicit signals first (pytest config, an npm test script, go.mod, Cargo.toml, a make
    target); bare test_*.py files last, since JS or Go repos often carry a stray tests/ dir.
    """
    if _has_pytest_config(root):
        return _pytest_command(root)
    if _npm_has_tests(root):
        return "npm test"
    if confine.exists(root, "go.mod"):
        return "go test ./..."
    if confine.exists(root, "Cargo.toml"):
        return "cargo test"
    if _make_has_test(root):
        return "make test"
    if _has_python_tests(root) or confine.exists(root, "pyproject.toml"):
        return _pytest_command(root)
    return None


def _count(pattern: str, text: str) -> int:
    return sum(int(m) for m in re.findall(pattern, text, re.M))


def parse_counts(output: str) -> tuple[int, int] | None:
    """(passed, failed) from a runner's summary; None when no summary is recognised.

    Errors (pytest collection errors, ...) count as failures: they are red either way.
    """
    text = _ANSI.sub("", output)
    # cargo: one "test result:" line per test binary; sum them.
    if re.search(r"^test result:", text, re.M):
        return _count(r"^test result:.*?(\d+) passed", text), _count(
            r"^test result:.*?(\d+) failed", text
        )
    # jest: "Tests:       1 failed, 2 passed, 3 total"; vitest: "Tests  1 failed | 2 passed (3)"
    m = re.search(r"^\s*Tests:?\s+(.*\d+ (?:passed|failed).*)$", text, re.M)
    if m:
        line = m.group(1)
        return _count(r"(\d+) passed", line), _count(r"(\d+) failed", line)
    # node --test: "# pass 2" / "ℹ pass 2"
    if re.search(r"^(?:#|ℹ) pass \d+", text, re.M):
        return _count(r"^(?:#|ℹ) pass (\d+)", text), _count(r"^(?:#|ℹ) fail (\d+)", text)
    # mocha: "  2 passing (5ms)" / "  1 failing"
    if re.search(r"^\s+\d+ passing", text, re.M):
        return _count(r"^\s+(\d+) passing", text), _count(r"^\s+(\d+) failing", text)
    # pytest: the last summary line, e.g. "== 2 passed, 1 failed in 0.12s ==" (also -q form).
    summaries = re.findall(
        r"^=*\s*((?:\d+ \w+(?:, )?)+) in [\d.]+s.*$|^=+ (no tests ran) in", text, re.M
    )
    if summaries:
        line = summaries[-1][0]
        failed = _count(r"(\d+) failed", line) + _count(r"(\d+) errors?", line)
        return _count(r"(\d+) passed", line), failed
    # unittest: "Ran 3 tests in 0.001s" then "OK" or "FAILED (failures=1, errors=1)".
    if m := re.search(r"^Ran (\d+) tests? in", text, re.M):
        tail = text[m.end() :]
        failed = _count(r"failures=(\d+)", tail) + _count(r"errors=(\d+)", tail)
        return int(m.group(1)) - failed - _count(r"skipped=(\d+)", tail), failed
    # go: "--- PASS: TestX" per test with -v; otherwise per package "ok  pkg" / "FAIL\tpkg".
    if re.search(r"^\s*--- (?:PASS|FAIL):", text, re.M):
        return len(re.findall(r"^\s*--- PASS:", text, re.M)), len(
            re.findall(r"^\s*--- FAIL:", text, re.M)
        )
    if re.search(r"^(?:ok|FAIL)\s+\S+\s", text, re.M):
        return len(re.findall(r"^ok\s+\S+", text, re.M)), len(
            re.findall(r"^FAIL\s+\S+\s", text, re.M)
        )
    return None


class RunTests:
    name = "run_tests"
    kind = "test"
    description = (
        "Run the project's tests (detected: pytest, npm test, go test, cargo test, make test; "
        "or the given command) in the sandbox and report how many passed and failed."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "test command; default detected"},
            "timeout_s": {"type": "integer", "minimum": 1},
        },
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        command = args.get("command")
        if command is not None and (not isinstance(command, str) or not command.strip()):
            raise ToolError("command must be a non-empty string when given")
        command = command or detect_test_command(ctx.root)
        if command is None:
            return ToolResult(
                "no test suite found (looked for pytest, package.json test script, go.mod, "
                "Cargo.toml, a Makefile test target)",
                data={"found": False, "passed": 0, "failed": 0, "command": None, "exit_code": None},
            )
        timeout = clamp_timeout(args.get("timeout_s"), ctx.config.engine.command_timeout_s)
        try:
            done = await sandbox.run_command(
                ctx,
                command,
                network=ctx.config.sandbox.network,
                timeout_s=timeout,
                grant=sandbox.take_grant(ctx, self.name),
            )
        except ToolError as exc:
            return ToolResult(str(exc), is_error=True, data={"found": True, "command": command})
        out, err = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
        counts = parse_counts(out) or parse_counts(err)
        passed, failed = counts or (0, 0)
        # Exit status is the authority (a crash before the summary is still a failure);
        # pytest's 5 means "no tests collected", which is not a red suite.
        no_tests = done.returncode == 5 and "pytest" in command
        failing = (done.returncode != 0 and not no_tests) or failed > 0 or done.timed_out
        summary = f"{passed} passed, {failed} failed" if counts else "no test summary recognised"
        verdict = "FAILED" if failing else "OK"
        body = format_completed(done, timeout)
        # Read from the whole output: the body below keeps only its head and tail, and the
        # failing names are what the operator and the model look for first.
        failures = failing_tests(out + "\n" + err) if failing else []
        named = "".join(f"{line}\n" for line in summary_lines(failures, failed or None))
        return ToolResult(
            f"{verdict}: {summary} (`{command}`)\n{named}{body}",
            is_error=failing,
            data={
                "found": True,
                "passed": passed,
                "failed": failed,
                "command": command,
                "exit_code": done.returncode,
                "timed_out": done.timed_out,
                "counted": counts is not None,
                "failures": failures,
            },
        )


tool = RunTests()
