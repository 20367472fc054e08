"""Which tests failed, and the first line of why, read from a test runner's own output.

The runner's full output is thousands of lines (816 tests with `unittest -v`), kept only in
part for the model and the event log; what an operator (and the model) needs first is the
failing names and their first assertion line. Each runner says it its own way:

- pytest:   the short summary (`FAILED tests/test_x.py::test_y - assert 1 == 2`), else the
            first `E ` line of the test's section;
- unittest: `FAIL: test_y (pkg.mod.Class.test_y)` blocks, then the exception line that
            ends their traceback;
- go:       `--- FAIL: TestY (0.00s)`, then its first indented message;
- cargo:    `test y ... FAILED`, then the panic message under `---- y stdout ----`;
- jest/vitest: `● Suite › name`, then its first message line;
- node --test (TAP): `not ok 1 - name`, then its `error:` value.

Names are kept whole (never cut mid-name); a line is clipped at a word boundary.
"""

from __future__ import annotations

import re
from typing import Any

from .clip import clip

MAX_FAILURES = 50
NAME_CHARS = 300
LINE_CHARS = 300
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def failing_tests(output: str) -> list[dict[str, str]]:
    """[{"name", "line"}] in the order the runner reported them, at most MAX_FAILURES;
    "line" may be "" when the runner gave no message."""
    text = _ANSI.sub("", output).replace("\r\n", "\n")
    found: list[tuple[str, str]] = []
    for parser in (_pytest, _unittest, _go, _cargo, _jest, _tap):
        found = parser(text)
        if found:
            break
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for name, line in found:
        name = name.strip()
        if not name or name in seen:
            continue
        seen.add(name)
        out.append({"name": name[:NAME_CHARS], "line": clip(line.strip(), LINE_CHARS)})
        if len(out) >= MAX_FAILURES:
            break
    return out


def summary_lines(failures: list[dict[str, Any]], total: int | None = None) -> list[str]:
    """'✗ name — first line' per failure, and how many more the runner reported."""
    lines = [f"✗ {f['name']}" + (f" — {f['line']}" if f.get("line") else "") for f in failures]
    if failures and total is not None and total > len(failures):
        lines.append(f"… and {total - len(failures)} more failing")
    return lines


# -- pytest --------------------------------------------------------------------------------
_PYTEST_SUMMARY = re.compile(r"^(?:FAILED|ERROR) ([^\s(]\S*)(?: - (.*))?$", re.M)
_PYTEST_SECTION = re.compile(r"^_{3,} (?:ERROR (?:at \w+ of |collecting ))?(.+?) _{3,}$", re.M)


def _pytest(text: str) -> list[tuple[str, str]]:
    sections = _pytest_sections(text)
    found = []
    for m in _PYTEST_SUMMARY.finditer(text):
        name, message = m.group(1), (m.group(2) or "").strip()
        if not message or message.endswith("..."):  # cut to the terminal's width
            key = name.split("::", 1)[-1].replace("::", ".")
            message = sections.get(key) or sections.get(name) or message
        found.append((name, message))
    if found:
        return found
    # -p no:terse, or `-rN`: no short summary, only the sections.
    return list(sections.items()) if "= FAILURES =" in text or "= ERRORS =" in text else []


def _pytest_sections(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    heads = list(_PYTEST_SECTION.finditer(text))
    for n, head in enumerate(heads):
        end = heads[n + 1].start() if n + 1 < len(heads) else len(text)
        body = text[head.end() : end]
        first = next((line[1:].strip() for line in body.splitlines()
                      if line.startswith("E ") and line[1:].strip()), "")  # fmt: skip
        out.setdefault(head.group(1).strip(), first)
    return out


# -- unittest ------------------------------------------------------------------------------
_UNITTEST = re.compile(r"^(FAIL|ERROR): (\S+) \(([^)\s]+)\)(.*)$", re.M)


def _unittest(text: str) -> list[tuple[str, str]]:
    found = []
    for m in _UNITTEST.finditer(text):
        method, where, rest = m.group(2), m.group(3), m.group(4).strip()
        # 3.11+: "(pkg.mod.Class.test_y)"; older: "(pkg.mod.Class)"
        name = where if where.rsplit(".", 1)[-1] == method else f"{where}.{method}"
        if rest:  # a subTest: "(i=1)"
            name += f" {rest}"
        found.append((name, _exception_line(text[m.end() :])))
    return found


def _exception_line(block: str) -> str:
    """The exception line that ends a traceback: the first unindented line after it."""
    in_traceback = False
    for line in block.splitlines()[1:80]:
        if line.startswith(("=" * 10, "-" * 10)) and in_traceback:
            break
        if line.startswith("Traceback ("):
            in_traceback = True
            continue
        if in_traceback and line.strip() and not line.startswith((" ", "\t")):
            return line
    return ""


# -- go ------------------------------------------------------------------------------------
_GO = re.compile(r"^\s*--- FAIL: (\S+)", re.M)


def _go(text: str) -> list[tuple[str, str]]:
    found = []
    marker = re.compile(r"^\s*(?:--- |=== |FAIL|ok\s|PASS)")
    for m in _GO.finditer(text):
        name = m.group(1)
        # Without -v the test's log follows its --- FAIL line; with -v it comes between
        # its === RUN line and the --- FAIL line.
        ran = text.rfind(f"=== RUN   {name}\n", 0, m.start())
        before = text[ran : m.start()].splitlines()[1:] if ran >= 0 else []
        after: list[str] = []
        for line in text[m.end() :].splitlines()[1:20]:
            if marker.match(line):
                break
            after.append(line)
        lines = [line for line in before if not marker.match(line)] + after
        found.append((name, next((line.strip() for line in lines if line.strip()), "")))
    return found


# -- cargo ---------------------------------------------------------------------------------
# "test y ... FAILED" (default), "y --- FAILED" (-q); the closing "failures:" list names
# them all again, indented.
_CARGO = re.compile(r"^(?:test (\S+) \.\.\. FAILED|(\S+) --- FAILED)$", re.M)


def _cargo(text: str) -> list[tuple[str, str]]:
    found = []
    for m in _CARGO.finditer(text):
        name = m.group(1) or m.group(2)
        found.append((name, _panic(text, name)))
    return found


def _panic(text: str, name: str) -> str:
    block = re.search(rf"^---- {re.escape(name)} stdout ----\n(.*?)(?=^---- |^failures:|\Z)",
                      text, re.M | re.S)  # fmt: skip
    if not block:
        return ""
    lines = block.group(1).splitlines()
    for n, line in enumerate(lines):
        if " panicked at " in line:
            # New format: "... panicked at src/x.rs:7:17:" then the message on its own
            # line; old: "panicked at 'message', src/x.rs:7:17".
            old = re.search(r"panicked at '(.*)', \S+$", line)
            if old:
                return old.group(1)
            return next((x for x in lines[n + 1 :] if x.strip()), line.strip())
    return ""


# -- jest / vitest -------------------------------------------------------------------------
_JEST = re.compile(r"^\s*● (.+)$", re.M)


def _jest(text: str) -> list[tuple[str, str]]:
    if not re.search(r"^\s*Tests:?\s+.*\d+ failed", text, re.M):
        return []
    found = []
    for m in _JEST.finditer(text):
        name = m.group(1).strip()
        if name.startswith("Test suite failed to run"):
            name = "test suite failed to run"
        message = next((x.strip() for x in text[m.end() :].splitlines()[1:15] if x.strip()), "")
        found.append((name, message))
    return found


# -- TAP (node --test) ---------------------------------------------------------------------
_TAP = re.compile(r"^\s*not ok \d+ - (.+?)(?:\s+# .*)?$", re.M)


def _tap(text: str) -> list[tuple[str, str]]:
    found = []
    for m in _TAP.finditer(text):
        message = ""
        lines = text[m.end() :].splitlines()[1:40]
        for n, line in enumerate(lines):
            if re.match(r"^\s*(?:not )?ok \d+ ", line):
                break
            got = re.match(r"^\s*error:\s*(.*)$", line)
            if got:
                value = got.group(1).strip().strip("'\"")
                if value in ("|-", "|", ">-", ">"):  # a YAML block: its first line
                    value = next((x.strip() for x in lines[n + 1 :] if x.strip()), "")
                message = value
                break
        found.append((m.group(1).strip(), message))
    return found
