"""Path escapes: every trick for leaving the task's worktree, against the real path tools
(read_file, write_file, search_codebase, analyze_logs) through a real ToolContext.

Escapes must be refused by all three tools, and nothing may be read from or written to
outside the worktree. A few inputs are only escapes to something that decodes them (URL
encoding, look-alike slashes that NFKC leaves alone): the tools take those literally, so
reading/searching them finds nothing and writing them creates an oddly named file *inside*
the worktree, which is checked too.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ToolError
from agent.procs import ProcessGroups
from agent.tools.analyze_logs import tool as analyze_logs
from agent.tools.base import ToolContext, ToolResult
from agent.tools.read_file import tool as read_file
from agent.tools.search_codebase import tool as search_codebase
from agent.tools.write_file import tool as write_file

SECRET = f"TOPSECRET-{uuid.uuid4().hex}"
TMP_TARGET = f"/tmp/livhana-pwned-{uuid.uuid4().hex}.txt"
FW_DOT, FW_SLASH, FW_BACKSLASH = "\uff0e", "\uff0f", "\uff3c"  # full-width . / \

ESCAPES = [
    # plain ..
    "../outside/secret.txt",
    "../../etc/passwd",
    "sub/../../outside/secret.txt",
    "./../outside/secret.txt",
    "sub/./../../outside/secret.txt",
    "..",
    "sub/../..",
    "../outside/secret.txt ",
    ".git/../../outside/secret.txt",
    # absolute
    "{outside}/secret.txt",
    "/etc/passwd",
    TMP_TARGET,
    "//etc/passwd",
    # symlinks out of the worktree (files, folders, chains, to /, dangling, via ..)
    "out_file",
    "out_dir/secret.txt",
    "out_dir",
    "out_dir/",
    "chain1/secret.txt",
    "root_link/etc/passwd",
    "root_link" + TMP_TARGET,
    "sub/upup/outside/secret.txt",
    "sub/upup",
    "dangling",
    # backslashes (Windows separators, drive letters, UNC)
    "..\\outside\\secret.txt",
    "sub\\..\\..\\outside\\secret.txt",
    "\\etc\\passwd",
    "C:\\Windows\\win.ini",
    "c:/outside/secret.txt",
    "\\\\server\\share\\secret.txt",
    # home
    "~",
    "~/.bashrc",
    "~root/.ssh/authorized_keys",
    # NUL bytes
    "app.py\x00../../outside/secret.txt",
    "../outside/secret.txt\x00.py",
    "\x00",
    # unicode look-alikes that NFKC turns into . / \
    f"{FW_DOT}{FW_DOT}/outside/secret.txt",
    f"..{FW_SLASH}outside{FW_SLASH}secret.txt",
    f"{FW_DOT}{FW_DOT}{FW_SLASH}{FW_DOT}{FW_DOT}{FW_SLASH}etc{FW_SLASH}passwd",
    f"{FW_SLASH}etc{FW_SLASH}passwd",
    f"{FW_BACKSLASH}etc{FW_BACKSLASH}passwd",
    "\u2025/outside/secret.txt",  # two dot leader
    "\u2024\u2024/outside/secret.txt",  # one dot leader, twice
    "\ufe52\ufe52/outside/secret.txt",  # small full stop, twice
    f"sub/{FW_DOT}{FW_DOT}/{FW_DOT}{FW_DOT}/outside/secret.txt",
    # very long
    "a/" * 3000 + "../" * 3001 + "outside/secret.txt",
    "x" * 5000,
    "/".join(["d"] * 2100),
]
LITERAL = [  # escapes only to a decoder; the tools must treat them as names inside
    "%2e%2e/outside/secret.txt",
    "%2e%2e%2f%2e%2e%2foutside%2fsecret.txt",
    "..%2f..%2foutside%2fsecret.txt",
    "%252e%252e/outside/secret.txt",
    "..%c0%afoutside/secret.txt",
    "..;/outside/secret.txt",
    "..../outside/secret.txt",
    "..\u2215outside\u2215secret.txt",  # division slash: not a slash, even after NFKC
    " ../outside/secret.txt",
    "file:///etc/passwd",
]


@pytest.fixture
def sandbox_tree(tmp_path: Path, config: Any) -> tuple[Path, Path, ToolContext]:
    root, outside = tmp_path / "work", tmp_path / "outside"
    (root / "sub" / "inner").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n")
    (root / "app.py").write_text("print('hi')\n")
    (root / "sub" / "inner" / "note.txt").write_text("inside note\n")
    links = {
        "out_file": "../outside/secret.txt",
        "out_dir": "../outside",
        "root_link": "/",
        "dangling": "../outside/created-through-dangling-link.txt",
        "chain1": "chain2",
        "chain2": "../outside",
        "inner_link": "sub/inner",  # stays inside: allowed
        "sub/upup": "../..",
        "sub/up": "..",  # the worktree itself: allowed
    }
    for name, target in links.items():
        os.symlink(target, root / name)

    async def emit(type_: str, **payload: Any) -> None:
        return None

    async def ask(kind: str, summary: str, detail: dict[str, Any]) -> bool:
        return False

    ctx = ToolContext(
        root=root, task_id="t1", config=config, emit=emit, procs=ProcessGroups(), ask=ask
    )
    return root, outside, ctx


def snapshot(top: Path, skip: Path) -> dict[str, str]:
    """Every entry under `top` except the worktree, without following symlinks."""
    out = {}
    for folder, dirs, files in os.walk(top):
        if Path(folder) == skip:
            dirs[:] = []
            continue
        for name in dirs + files:
            path = Path(folder, name)
            if path == skip:
                continue
            if path.is_symlink():
                out[str(path)] = "link:" + os.readlink(path)
            elif path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[str(path)] = "dir"
    return out


async def attempt(tool: Any, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    """Run a tool as the agent loop does: exceptions become error results."""
    try:
        return await tool.run(args, ctx)
    except ToolError as exc:
        return ToolResult(str(exc), is_error=True)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        return ToolResult(f"{type(exc).__name__}: {exc}", is_error=True)


def test_there_are_at_least_fifty_attempts() -> None:
    assert len(ESCAPES) + len(LITERAL) >= 50
    assert len(set(ESCAPES + LITERAL)) == len(ESCAPES) + len(LITERAL)


async def test_the_tools_work_inside(sandbox_tree: tuple[Path, Path, ToolContext]) -> None:
    root, _, ctx = sandbox_tree
    assert not (await attempt(read_file, {"path": "inner_link/note.txt"}, ctx)).is_error
    assert not (await attempt(read_file, {"path": "sub/up/app.py"}, ctx)).is_error
    wrote = await attempt(write_file, {"path": "sub/new.txt", "content": "ok\n"}, ctx)
    assert not wrote.is_error and (root / "sub/new.txt").read_text() == "ok\n"
    found = await attempt(search_codebase, {"pattern": "inside note", "path": "sub"}, ctx)
    assert "inside note" in found.output


@pytest.mark.parametrize("raw", ESCAPES, ids=lambda p: repr(p)[:40])
async def test_escape_is_refused_by_every_path_tool(
    raw: str, sandbox_tree: tuple[Path, Path, ToolContext], tmp_path: Path
) -> None:
    root, outside, ctx = sandbox_tree
    path = raw.replace("{outside}", str(outside))
    before = snapshot(tmp_path, root)

    read = await attempt(read_file, {"path": path}, ctx)
    assert read.is_error, f"read_file accepted {path!r}: {read.output[:200]}"
    written = await attempt(write_file, {"path": path, "content": "PWNED\n"}, ctx)
    assert written.is_error, f"write_file accepted {path!r}"
    found = await attempt(search_codebase, {"pattern": "TOPSECRET|root:", "path": path}, ctx)
    assert found.is_error, f"search_codebase accepted {path!r}: {found.output[:200]}"
    logs = await attempt(analyze_logs, {"path": path, "pattern": "TOPSECRET"}, ctx)
    assert logs.is_error, f"analyze_logs accepted {path!r}: {logs.output[:200]}"

    for result in (read, written, found, logs):
        assert SECRET not in result.output
    assert snapshot(tmp_path, root) == before  # nothing created or changed outside
    assert (outside / "secret.txt").read_text() == SECRET + "\n"
    assert not Path(TMP_TARGET).exists()


@pytest.mark.parametrize("raw", LITERAL, ids=lambda p: repr(p)[:40])
async def test_encoded_lookalikes_stay_literal_names_inside(
    raw: str, sandbox_tree: tuple[Path, Path, ToolContext], tmp_path: Path
) -> None:
    root, outside, ctx = sandbox_tree
    before = snapshot(tmp_path, root)
    read = await attempt(read_file, {"path": raw}, ctx)
    assert read.is_error and SECRET not in read.output
    found = await attempt(search_codebase, {"pattern": "TOPSECRET", "path": raw}, ctx)
    assert found.is_error and SECRET not in found.output

    written = await attempt(write_file, {"path": raw, "content": "PWNED\n"}, ctx)
    if not written.is_error:  # allowed only as a file inside the worktree
        (changed,) = written.changed
        landed = Path(os.path.realpath(root / changed))
        assert root.resolve() in landed.parents and landed.read_text() == "PWNED\n"
    assert snapshot(tmp_path, root) == before
    assert (outside / "secret.txt").read_text() == SECRET + "\n"


async def test_searching_everything_never_follows_links_out(
    sandbox_tree: tuple[Path, Path, ToolContext],
) -> None:
    _, _, ctx = sandbox_tree
    for args in (
        {"pattern": "TOPSECRET"},
        {"pattern": "TOPSECRET", "path": "."},
        {"pattern": "TOPSECRET", "glob": "../*"},
        {"pattern": "TOPSECRET", "path": "sub/up"},
    ):
        result = await attempt(search_codebase, args, ctx)
        assert SECRET not in result.output, args
        assert "no matches" in result.output, args
