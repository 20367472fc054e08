"""Did the task do what it set out to do? Judged from what the engine saw, never from the
model's own words ("Deployed to production." after a denied deploy is not evidence).

The rule. A tool call is *not done* when
  - it was refused: denied by the operator, by nobody answering (stdin closed, the
    approval timeout), by an approve=deny rule, or by a policy deny rule; or
  - its effect lies outside the worktree, where no diff or test can show it (a real deploy,
    not a dry run; a database write the operator approved), and it ran and failed.
A later call of the same tool on the same target (the same command, SQL and database,
deploy target, path) that ran and succeeded makes it good. A task left with a call not
done ends `failed`, not `succeeded`, its reason naming each one ("deploy_code prod was
denied by nobody (stdin closed)"), and its changes stay on its branch, unapplied.

Other failed calls are the model's working steps: their effect is in the worktree, which
verification (the tests) and the operator's apply review judge. A denied apply ends the
task `cancelled`, and a denied stall question `failed`, as before (agent/worker.py,
agent/run.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .tools.base import ToolResult

if TYPE_CHECKING:
    from .workspace import TaskTree


@dataclass
class Missed:
    tool: str
    target: str
    why: str  # "denied by ..." or "failed: ..."

    def __str__(self) -> str:
        target = f" {_short(self.target, 80)}" if self.target else ""
        return f"{self.tool}{target} {self.why}"


def target_of(tool: str, args: dict[str, Any], defaults: dict[str, str]) -> str:
    """What a call acts on, normalised so a retry of the same action has the same key:
    the deploy target (the first configured when none is named), the database and SQL,
    the command, the path. `defaults` maps deploy_code/query_database to their default."""
    if tool == "deploy_code":
        name = str(args.get("target") or defaults.get(tool, ""))
        return name + (" (dry run)" if args.get("dry_run") else "")
    if tool == "query_database":
        return f"{args.get('database') or defaults.get(tool, '')}: {_words(args.get('sql'))}"
    for key in ("command", "path", "pattern", "sql", "target", "title"):
        if args.get(key):
            return _words(args[key])
    return ""


class Ledger:
    """The calls of one task that are not done yet, by (tool, target)."""

    def __init__(self) -> None:
        self._missed: dict[tuple[str, str], Missed] = {}

    def record(
        self,
        tool: str,
        target: str,
        result: ToolResult,
        denied_by: str | None,
        external: bool,
    ) -> None:
        key = (tool, target)
        if denied_by is not None:
            self._missed[key] = Missed(tool, target, f"was denied by {denied_by}")
        elif not result.is_error:
            self._missed.pop(key, None)  # done (again): an earlier miss is made good
        elif external:
            self._missed[key] = Missed(tool, target, f"failed: {_first_line(result.output)}")

    def missed(self) -> list[Missed]:
        return list(self._missed.values())

    def reason(self) -> str:
        """'' when every call was done; else one line naming each that was not."""
        missed = self.missed()
        if not missed:
            return ""
        listed = "; ".join(str(m) for m in missed[:5])
        more = f" (and {len(missed) - 5} more)" if len(missed) > 5 else ""
        return f"not done: {listed}{more}; the task did not do all it set out to do"


def shortfall_reason(reason: str, tree: TaskTree, files: list[str]) -> str:
    """The reason a task fell short, with where its changes are (never applied)."""
    if not files:
        return f"{reason} (no file changes)"
    where = f"on branch {tree.branch}" if tree.branch else f"in {tree.path}"
    return f"{reason} ({len(files)} changed file(s) kept {where}, not applied)"


def _words(value: Any) -> str:
    return " ".join(str(value or "").split())


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_line(text: str) -> str:
    return _short(_words(text.strip().splitlines()[0] if text.strip() else "error"), 160)
