"""The closing summary of a plain `run`: how it ended, how long it worked and waited for the
operator, tokens (cached input included), cost, changed files, the plan, what it learned,
and what it left in the repository (its branch and worktree, for `gc` to prune).

Built from the events `run` printed (the same facts the operator just read) and the task's
final record; the repository is only looked at, never changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent import events as ev
from agent.timing import split

from . import words  # plain words: `run` never loads rich
from .render import learned_items

RULE = "─" * 60
_USAGE_KEYS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
               "output_tokens")  # fmt: skip


class RunReport:
    def __init__(self) -> None:
        self.marks: list[dict[str, Any]] = []  # status/paused/resumed, for agent/timing.py
        self.usage = dict.fromkeys(_USAGE_KEYS, 0)
        self.plan: list[dict[str, Any]] = []
        self.plan_updates = 0
        self.learned = 0
        self.failures: list[dict[str, Any]] = []  # of the last verification that failed

    def see(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in (ev.STATUS, "paused", "resumed"):
            self.marks.append(event)
        elif kind == ev.USAGE:
            for key in _USAGE_KEYS:
                self.usage[key] += int(event.get(key) or 0)
        elif kind == ev.PLAN:
            self.plan = list(event.get("steps") or [])
            self.plan_updates += 1
        elif kind == ev.LEARNING:
            self.learned += len(learned_items(event))
        elif kind == ev.VERIFICATION:
            self.failures = list(event.get("failures") or []) if event.get("passed") is False else []

    async def closing(self, task: dict[str, Any]) -> list[str]:
        state = str(task["state"])
        rows: list[tuple[str, str]] = []
        span = split(self.marks)
        if span.started_at is not None:
            rows.append(("time", f"{words.duration(span.working_s, tenths=True)} working, "
                                 f"{words.duration(span.waiting_s, tenths=True)} waiting for you"))  # fmt: skip
        rows.append(("tokens", f"{words.usage_line(self.usage)}"))
        rows.append(("cost", words.money(task.get("cost_usd"))))
        changes = [str(c) for c in task.get("changes") or []]
        applied = (task.get("options") or {}).get("applied")
        where = " (applied to your checkout)" if applied and state == ev.SUCCEEDED else ""
        rows.append(("changed", (", ".join(changes) + where) if changes else "nothing"))
        if plan := self._plan_line(state):
            rows.append(("plan", plan))
        if self.learned:
            rows.append(("learned", f"{words.plural(self.learned, 'item')} (listed above; "
                                    "all: `livhana-cockpit learnings`)"))  # fmt: skip
        if state != ev.SUCCEEDED and task.get("error"):
            rows.append(("why", " ".join(str(task["error"]).split())))
        rows += await _left_behind(task)
        head = f"task {task['id']} {words.state_word(state)}"
        width = max(len(k) for k, _ in rows)
        return [RULE, head, *(f"  {k.ljust(width)}  {v}" for k, v in rows)]

    def _plan_line(self, state: str) -> str:
        if not self.plan:
            return ""
        done = sum(1 for s in self.plan if s.get("status") == "done")
        line = f"{done}/{len(self.plan)} steps marked done"
        if state == ev.SUCCEEDED and done < len(self.plan):
            line += (": the task finished; the agent set its plan once and never updated it"
                     if self.plan_updates == 1 else
                     ": the task finished; the agent did not mark the rest done")  # fmt: skip
        return line


async def _left_behind(task: dict[str, Any]) -> list[tuple[str, str]]:
    """The task's branch and worktree, when they are still in the operator's repository."""
    from agent.gitcmd import git

    branch, workspace = task.get("branch"), task.get("workspace")
    if not branch or not workspace or not Path(workspace).is_dir():
        return []
    found = await git("rev-parse", "--verify", "-q", f"refs/heads/{branch}", cwd=Path(workspace),
                      check=False)  # fmt: skip
    if not found.strip():
        return []
    listed = await git("worktree", "list", "--porcelain", cwd=Path(workspace), check=False)
    tree = str(task.get("worktree") or "")
    registered = bool(tree) and f"worktree {tree}" in listed.splitlines()
    what = f"{branch} and its worktree {tree}" if registered else branch
    verb = "remain" if registered else "remains"
    # Said, not removed: pruning them is the gc policy's (agent/prune.py), not run's.
    return [("left", f"{what} {verb} in {workspace} until `livhana-cockpit gc` prunes "
                     "them ([gc] keep_days after the task ended)")]  # fmt: skip
