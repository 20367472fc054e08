"""The monthly job: refactoring suggestions from measurements of the workspace, then one
model call to rank them and turn the best into proposals.

Measured (never guessed): the largest and the most complex Python functions (lines; branch
count, McCabe-style), duplicated blocks (six or more matching lines, in any source
language), TODO/FIXME density, Python modules that no test imports, and the files changed
most often in the last 90 days (git log, through agent/gitcmd.py's safe git).
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import os
import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..gitcmd import Git, GitError, is_git_repo
from . import insight as ins
from . import proposer, records
from .logfiles import SKIP_DIRS

if TYPE_CHECKING:
    from .host import ImproveHost

SOURCE = frozenset((".py", ".js", ".jsx", ".ts", ".tsx", ".mjs", ".go", ".rs", ".java", ".kt",
                    ".rb", ".php", ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".swift", ".scala",
                    ".sh", ".lua"))
MAX_FILES = 20_000
MAX_BYTES = 1 << 20  # a file larger than this is data, not code to refactor
LARGE_LINES = 50
COMPLEX = 10
DUP_WINDOW = 6
DUP_MIN_CHARS = 120
TODO = re.compile(r"\b(TODO|FIXME|XXX|HACK)\b")
TODO_MIN = 3
CHURN_DAYS = 90
CHURN_MIN = 3
TOP = 5
_BRANCHES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.IfExp, ast.ExceptHandler,
             ast.With, ast.AsyncWith, ast.Assert, ast.comprehension, ast.match_case)
_TRIVIAL = re.compile(r"^[\s{}()\[\];,]*$|^\s*(#|//|\*|/\*|\"\"\"|''')")


async def source_files(workspace: Path) -> list[str]:
    """Relative paths of the workspace's files: git's list when it is a repository."""
    if await is_git_repo(workspace):
        out = await Git(workspace).out("ls-files", "-z", "--cached", "--others",
                                       "--exclude-standard")
        names = [n.decode(errors="surrogateescape") for n in out.split(b"\0") if n]
        return names[:MAX_FILES]
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(workspace):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            found.append(os.path.relpath(os.path.join(dirpath, name), workspace))
            if len(found) >= MAX_FILES:
                return found
    return found


def complexity(fn: ast.AST) -> int:
    n = 1
    for node in ast.walk(fn):
        if isinstance(node, _BRANCHES):
            n += 1
        elif isinstance(node, ast.BoolOp):
            n += len(node.values) - 1
    return n


def is_test(rel: str) -> bool:
    parts = rel.split("/")
    name = parts[-1]
    return (name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"
            or any(p in ("tests", "test", "testing") for p in parts[:-1]))


def module_name(root: Path, rel: str) -> str:
    """The dotted name a Python file imports as (its package folders hold __init__.py)."""
    path = root / rel
    names = [path.stem]
    folder = path.parent
    while folder != root and (folder / "__init__.py").exists():
        names.insert(0, folder.name)
        folder = folder.parent
    return ".".join(names)


def measure(root: Path, files: list[str]) -> dict[str, Any]:
    """Every measurement of the files (run in a thread: it is CPU work)."""
    functions: list[dict[str, Any]] = []
    todos: list[dict[str, Any]] = []
    windows: dict[bytes, list[tuple[str, int]]] = defaultdict(list)
    modules: dict[str, dict[str, Any]] = {}
    imported: set[str] = set()
    total_lines = total_todo = 0
    skipped = 0
    for rel in files:
        path = root / rel
        suffix = path.suffix.lower()
        if suffix not in SOURCE:
            continue
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_BYTES:
                skipped += 1
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            skipped += 1
            continue
        lines = text.splitlines()
        total_lines += len(lines)
        marks = len(TODO.findall(text))
        total_todo += marks
        if marks:
            todos.append({"file": rel, "markers": marks, "lines": len(lines)})
        _windows(rel, lines, windows)
        if suffix != ".py":
            continue
        try:
            tree = ast.parse(text, filename=rel)
        except (SyntaxError, ValueError):
            skipped += 1
            continue
        test = is_test(rel)
        if test:
            imported |= _imports(tree)
        else:
            name = module_name(root, rel)
            if name and not rel.endswith(("__init__.py", "__main__.py", "setup.py")):
                modules[name] = {"file": rel, "lines": len(lines)}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                functions.append({"file": rel, "line": node.lineno, "name": node.name,
                                  "lines": length, "complexity": complexity(node),
                                  "test": test})
    untested = [
        {"module": m, **info} for m, info in modules.items()
        if m not in imported and not any(i.startswith(m + ".") for i in imported)
    ]
    return {
        "functions": functions, "todos": todos, "duplicates": _duplicates(windows),
        "untested": sorted(untested, key=lambda u: -u["lines"]), "tested_modules":
        len(modules) - len(untested), "modules": len(modules), "lines": total_lines,
        "todo_total": total_todo, "skipped": skipped,
    }  # fmt: skip


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _windows(rel: str, lines: list[str], out: dict[bytes, list[tuple[str, int]]]) -> None:
    kept = [(n + 1, " ".join(line.split())) for n, line in enumerate(lines)
            if line.strip() and not _TRIVIAL.match(line)]
    for i in range(len(kept) - DUP_WINDOW + 1):
        chunk = [text for _, text in kept[i : i + DUP_WINDOW]]
        if sum(map(len, chunk)) < DUP_MIN_CHARS:
            continue
        digest = hashlib.blake2b("\n".join(chunk).encode(errors="replace"), digest_size=12).digest()
        places = out[digest]
        if len(places) < 10:
            places.append((rel, kept[i][0]))


def _duplicates(windows: dict[bytes, list[tuple[str, int]]]) -> list[dict[str, Any]]:
    """Blocks found in two places or more: overlapping windows of one pair of places are
    merged into one block (its size in windows)."""
    blocks: dict[tuple[tuple[str, int], ...], int] = {}
    covered: set[tuple[str, int]] = set()
    for places in windows.values():
        distinct = sorted(set(places))
        if len(distinct) < 2:
            continue
        key = tuple(distinct)
        if all(p in covered for p in distinct):
            continue
        blocks[key] = 1
        covered |= set(distinct)
    # Consecutive windows in the same files describe one longer block.
    merged: list[dict[str, Any]] = []
    for key in sorted(blocks):
        last = merged[-1] if merged else None
        if last and [f for f, _ in last["places"]] == [f for f, _ in key] and all(
            0 < line - prev[1] <= last["windows"] + DUP_WINDOW
            for (_, line), prev in zip(key, last["places"], strict=True)
        ):
            last["windows"] += 1
            continue
        merged.append({"places": list(key), "windows": 1})
    for m in merged:
        m["lines"] = m["windows"] + DUP_WINDOW - 1
    return sorted(merged, key=lambda m: (-m["lines"] * len(m["places"]), m["places"]))


async def churn(workspace: Path) -> list[dict[str, Any]]:
    if not await is_git_repo(workspace):
        return []
    try:
        out = await Git(workspace).text("log", f"--since={CHURN_DAYS}.days", "--no-renames",
                                        "--name-only", "--format=", "-n", "5000", "--")
    except GitError:
        return []  # no commits yet
    counts = Counter(line.strip() for line in out.splitlines() if line.strip())
    return [{"file": f, "commits": n} for f, n in counts.most_common(50)
            if n >= CHURN_MIN and (workspace / f).is_file()]


def insights_of(m: dict[str, Any], changes: list[dict[str, Any]],
                now: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    code = [f for f in m["functions"] if not f["test"]]
    for f in sorted(code, key=lambda f: -f["lines"])[:TOP]:
        if f["lines"] < LARGE_LINES:
            break
        where = f"{f['file']}:{f['line']}"
        out.append(ins.make("large_function", where, now,
                            f"{f['name']} ({where}) is {f['lines']} lines long",
                            [where], **f))
    for f in sorted(code, key=lambda f: -f["complexity"])[:TOP]:
        if f["complexity"] < COMPLEX:
            break
        where = f"{f['file']}:{f['line']}"
        out.append(ins.make("complex_function", where, now,
                            f"{f['name']} ({where}) has {f['complexity']} branches "
                            "(cyclomatic complexity)", [where], **f))
    for d in m["duplicates"][:TOP]:
        places = [f"{f}:{line}" for f, line in d["places"]]
        out.append(ins.make("duplicate_block", "|".join(places), now,
                            f"{d['lines']} lines repeated in {len(places)} places: "
                            f"{', '.join(places[:3])}", places, lines=d["lines"],
                            places=places))
    dense = sorted((t for t in m["todos"] if t["markers"] >= TODO_MIN),
                   key=lambda t: -t["markers"] * 1000 / max(1, t["lines"]))[:TOP]
    for t in dense:
        per_k = t["markers"] * 1000 / max(1, t["lines"])
        out.append(ins.make("todo_density", t["file"], now,
                            f"{t['file']}: {t['markers']} TODO/FIXME markers "
                            f"({per_k:.1f} per 1000 lines)", [t["file"]], **t,
                            per_1000_lines=round(per_k, 1)))
    for u in m["untested"][: 2 * TOP]:
        out.append(ins.make("untested_module", u["module"], now,
                            f"no test imports {u['module']} ({u['file']}, {u['lines']} lines)",
                            [u["file"]], **u))
    for c in changes[:TOP]:
        out.append(ins.make("churn", c["file"], now,
                            f"{c['file']} changed in {c['commits']} commits in "
                            f"{CHURN_DAYS} days", [c["file"]], **c))
    return out


async def analyse(workspace: Path, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    files = await source_files(workspace)
    measured, changes = await asyncio.gather(
        asyncio.to_thread(measure, workspace, files), churn(workspace)
    )
    stats = {"files": len(files), "lines": measured["lines"], "functions":
             len(measured["functions"]), "modules": measured["modules"], "tested_modules":
             measured["tested_modules"], "todo_markers": measured["todo_total"],
             "duplicate_blocks": len(measured["duplicates"]), "skipped": measured["skipped"]}
    return {"insights": insights_of(measured, changes, now), "stats": stats}


def prompt(insights: list[dict[str, Any]], summary: str, taken: set[str], limit: int) -> str:
    parts = ["Monthly refactoring review of the project.", "",
             f"The project: {summary}" if summary else "", "",
             "Measurements (computed from the code and its git history):"]
    parts += [proposer.brief(i) for i in insights]
    if taken:
        parts += ["", "Already proposed and not done (do not propose again):"]
        parts += [f"- {t}" for t in sorted(taken)[:30]]
    parts += ["", f"Rank these by how much a refactoring would pay off (risk of bugs, cost "
              f"of change), and turn the top ones, at most {limit}, into proposals. Each "
              "task must keep behaviour unchanged and say which tests prove it."]
    return "\n".join(parts)


async def propose(engine: ImproveHost, workspace: Path, found: list[dict[str, Any]],
                  dry_run: bool) -> dict[str, Any]:
    if not found:
        return {"proposals": [], "model_calls": [], "notes": [
            "monthly: the measurements found nothing worth refactoring; the model was not called"
        ]}
    summary = await proposer.project_summary(workspace)
    taken = await records.open_titles(engine.store)
    limit = min(engine.config.improve.max_proposals, 3)
    raw, call = await proposer.ask(engine, "monthly", prompt(found, summary, taken, limit),
                                   dry_run)
    proposals, notes = proposer.clean(raw, {i["id"] for i in found}, "monthly",
                                      str(workspace), engine.safety.redact, limit, taken)
    return {"proposals": proposals, "model_calls": [call], "notes": notes}
