"""The weekly job: the week's insights and the agent's learnings, turned into proposals by
one model call. With nothing to go on (no insight, no learning) no call is made."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import proposer, records
from .logscan import DAY_S

if TYPE_CHECKING:
    from .host import ImproveHost

WEEK_S = 7 * DAY_S
DAILY_KINDS = ("error_spike", "failure_cluster", "slow_tool", "cost", "task_outcomes")
MAX_INSIGHTS = 40
MAX_LEARNINGS = 30
HEADER = "Weekly review of the agent's work and the project's health."


async def week_insights(engine: ImproveHost, fresh: list[dict[str, Any]],
                        now: float) -> list[dict[str, Any]]:
    """The daily insights of the last 7 days, newest first, one per id (the fresh ones of
    this run first)."""
    stored = [i for i in await records.insights(engine.store, since=now - WEEK_S)
              if i["kind"] in DAILY_KINDS]
    seen: dict[str, dict[str, Any]] = {}
    for item in [*fresh, *stored]:
        seen.setdefault(item["id"], item)
    # The measurements worth a change first: spikes and failures before cost notes.
    order = {k: n for n, k in enumerate(DAILY_KINDS)}
    return sorted(seen.values(), key=lambda i: order.get(i["kind"], 99))[:MAX_INSIGHTS]


async def learnings_for_prompt(engine: ImproveHost) -> list[str]:
    """What the agent learned, with its measured effect when the engine measures it."""
    stats = getattr(engine, "learning_stats", None)
    lines: list[str] = []
    if callable(stats):
        for r in (await stats())[:MAX_LEARNINGS]:
            if r.get("state") == "retired":
                continue
            effect = ""
            if r.get("success_with") is not None and r.get("success_without") is not None:
                effect = (f" (tasks with it succeed {r['success_with']:.0%}, without "
                          f"{r['success_without']:.0%})")
            lines.append(f"- [{r.get('category')}] {r.get('text')}{effect}")
        return lines
    for r in (await engine.learnings())[:MAX_LEARNINGS]:
        lines.append(f"- [{r['category']}] {r['text']}")
    return lines


def prompt(insights: list[dict[str, Any]], learnings: list[str], summary: str,
           taken: set[str], limit: int) -> str:
    parts = [HEADER, "", f"The project: {summary}" if summary else "", "",
             "Insights of the last 7 days (computed from the logs and the task records):"]
    parts += [proposer.brief(i) for i in insights] or ["- none"]
    parts += ["", "What the agent has learned while working here:"]
    parts += learnings or ["- nothing yet"]
    if taken:
        parts += ["", "Already proposed and not done (do not propose again):"]
        parts += [f"- {t}" for t in sorted(taken)[:30]]
    parts += ["", f"Propose at most {limit} changes. For an error, say what its root cause "
              "most likely is and make the task fix it at the root, with a test that fails "
              "before the fix."]
    return "\n".join(p for p in parts if p is not None)


async def propose(engine: ImproveHost, workspace: Path, fresh: list[dict[str, Any]],
                  dry_run: bool, now: float | None = None) -> dict[str, Any]:
    """{"insights" (the week's, it rested on), "learnings" (how many), "proposals",
    "model_calls", "notes"}."""
    now = time.time() if now is None else now
    insights = await week_insights(engine, fresh, now)
    learned = await learnings_for_prompt(engine)
    notes: list[str] = []
    if not insights and not learned:
        notes.append("weekly: no insight and no learning this week: nothing to propose "
                     "from, so the model was not called")
        return {"insights": [], "learnings": 0, "proposals": [], "model_calls": [],
                "notes": notes}
    summary = await proposer.project_summary(workspace)
    taken = await records.open_titles(engine.store)
    limit = engine.config.improve.max_proposals
    raw, call = await proposer.ask(
        engine, "weekly", prompt(insights, learned, summary, taken, limit), dry_run
    )
    known = {i["id"] for i in insights}
    proposals, dropped = proposer.clean(raw, known, "weekly", str(workspace),
                                        engine.safety.redact, limit, taken)
    return {"insights": insights, "learnings": len(learned), "proposals": proposals,
            "model_calls": [call], "notes": notes + dropped}
