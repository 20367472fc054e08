"""Verification against a baseline: a project whose suite was already red before the task
must not make every task fail. Only failures the task introduced count against it."""

from __future__ import annotations

import re
from asyncio import Lock
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import workspace
from .tools.base import RunState

if TYPE_CHECKING:
    from .tools.base import Tool, ToolContext, ToolResult
    from .workspace import TaskTree

# pytest's short summary ("FAILED tests/test_x.py::test_y - ..."), go ("--- FAIL: TestY"),
# cargo ("test y ... FAILED"): names of failing tests, when the runner prints them.
_FAILED_NAMES = re.compile(
    r"^(?:FAILED|ERROR) (\S+)|^--- FAIL: (\S+)|^test (\S+) \.\.\. FAILED", re.MULTILINE
)


def failed_names(output: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in _FAILED_NAMES.finditer(output)}


async def baseline(
    tree: TaskTree, ctx: ToolContext, run_tests: Tool, command: str, path: Path, lock: Lock
) -> ToolResult | None:
    """The same test command on the task's starting commit, run once in a throwaway
    worktree at `path` (never the operator's checkout). None when there is no git base to
    use. `lock` is held around the worktree's add and remove."""
    if not (tree.is_git and tree.base_commit):
        return None
    async with lock:
        base_tree = await workspace.add_baseline(tree, path)
    try:
        return await run_tests.run({"command": command}, replace(ctx, root=path, state=RunState()))
    finally:
        async with lock:
            await workspace.remove_baseline(tree, base_tree)


def judge(after: ToolResult, before: ToolResult | None) -> tuple[bool, str]:
    """(passed, note) for a red suite, given the suite's result before the task."""
    if before is None or not before.is_error:
        return False, ""
    new = failed_names(after.output) - failed_names(before.output)
    old_count = before.data.get("failed")
    if failed_names(after.output) and failed_names(before.output):
        if not new:
            return True, f"no new failures: the same tests failed before the task ({old_count})"
        return False, "new failures: " + ", ".join(sorted(new)[:5])
    count: Any = after.data.get("failed")
    if isinstance(count, int) and isinstance(old_count, int) and count <= old_count:
        return True, f"{count} failing, {old_count} before the task: not a regression"
    return False, ""
