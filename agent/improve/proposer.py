"""The one model call of the weekly and monthly jobs: findings in, proposals out.

The model answers through a tool, `submit_proposals`, whose input is the proposals as
JSON (a tool's input is structured, a prose answer is not); an answer in text that holds
the same JSON is accepted too. What comes back is checked, not trusted: missing fields
drop a proposal, evidence ids that name no insight are dropped, every text is redacted
and bounded. The call is made through the engine's model factory (the scripted model in
tests), checked against the daily budget first, and its cost recorded like a task's
(except in a dry run, which writes nothing: the cost is reported instead).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CockpitError
from ..run import workspace_summary
from . import insight as ins
from .records import new_proposal_id

if TYPE_CHECKING:
    from .host import ImproveHost


async def project_summary(workspace: Path) -> str:
    """What kind of project this is, for the prompt (the same cheap look a task gets)."""
    return (await asyncio.to_thread(workspace_summary, workspace))["summary"]


TOOL = {
    "name": "submit_proposals",
    "description": "Submit the improvement proposals for the operator to accept or reject.",
    "input_schema": {
        "type": "object",
        "properties": {
            "proposals": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string", "description": "short imperative title"},
                        "task": {"type": "string", "description": (
                            "the task for the coding agent, ready to run: what to change, "
                            "where, and how to verify it (tests)")},
                        "rationale": {"type": "string", "description": (
                            "why: the root cause the evidence points to")},
                        "impact": {"type": "string", "enum": ["low", "medium", "high"]},
                        "effort": {"type": "string", "enum": ["low", "medium", "high"]},
                        "evidence": {"type": "array", "items": {"type": "string"},
                                     "description": "ids of the insights it rests on"},
                    },
                    "required": ["title", "task", "rationale", "impact", "effort", "evidence"],
                },
            }
        },
        "required": ["proposals"],
    },
}

SYSTEM = """\
You are Liv Hana's improvement reviewer. You read measurements of an operator's project \
and of the coding agent working on it (computed by the cockpit, not guessed), and you \
propose a few concrete changes worth making. Each proposal becomes a task for the coding \
agent if the operator accepts it, so its `task` must be ready to run: what to change, \
where, the root cause it fixes, and how to verify it (tests to add or run). Propose only \
what the evidence supports, cite the ids of the insights each proposal rests on, and \
prefer few strong proposals to many weak ones. Answer by calling submit_proposals once."""

LEVELS = ("low", "medium", "high")
MAX_TITLE, MAX_TASK, MAX_TEXT = 200, 4000, 2000


def _level(value: Any) -> str:
    text = str(value or "").strip().lower()
    return next((lv for lv in LEVELS if text.startswith(lv)), "medium" if not text else text[:20])


def brief(insight: dict[str, Any]) -> str:
    """An insight as the prompt shows it: id, kind, summary, a little evidence."""
    lines = [f"- [{insight['id']}] ({insight['kind']}) {insight['summary']}"]
    for e in list(insight.get("evidence") or [])[:3]:
        lines.append(f"    evidence: {ins.one_line(str(e), 240)}")
    return "\n".join(lines)


def parse(response_content: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The raw proposals of an answer: the tool's input, or JSON found in the text."""
    for block in response_content:
        if block.get("type") == "tool_use" and block.get("name") == TOOL["name"]:
            given = block.get("input") or {}
            items = given.get("proposals") if isinstance(given, dict) else None
            if isinstance(items, list):
                return [p for p in items if isinstance(p, dict)]
    match = re.search(r"\{.*\}|\[.*\]", text, re.DOTALL)
    if match:
        try:
            data = json.loads(match.group(0))
        except ValueError:
            return []
        items = data.get("proposals") if isinstance(data, dict) else data
        if isinstance(items, list):
            return [p for p in items if isinstance(p, dict)]
    return []


def clean(raw: list[dict[str, Any]], known: set[str], source: str, workspace: str,
          redact: Any, limit: int, taken: set[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Checked proposals, and notes on what was dropped and why."""
    out, notes = [], []
    for p in raw:
        title = ins.one_line(redact(str(p.get("title") or "")), MAX_TITLE)
        task = redact(str(p.get("task") or "")).strip()[:MAX_TASK]
        if not title or not task:
            notes.append(f"dropped a proposal without a {'title' if not title else 'task'}")
            continue
        key = " ".join(title.lower().split())
        if key in taken:
            notes.append(f"dropped \"{title}\": already proposed and not done")
            continue
        cited = [str(e) for e in (p.get("evidence") or []) if isinstance(e, str | int)]
        evidence = [e for e in cited if e in known]
        if len(evidence) < len(cited):
            unknown = [e for e in cited if e not in known]
            notes.append(f"\"{title}\": evidence {', '.join(unknown[:5])} names no insight")
        taken.add(key)
        out.append({
            "id": new_proposal_id(), "title": title, "task": task,
            "rationale": redact(str(p.get("rationale") or "")).strip()[:MAX_TEXT],
            "impact": _level(p.get("impact")), "effort": _level(p.get("effort")),
            "evidence": evidence, "source": source, "workspace": workspace, "state": "pending",
        })  # fmt: skip
        if len(out) >= limit:
            break
    return out, notes


async def ask(engine: ImproveHost, job: str, prompt: str, dry_run: bool) -> tuple[
    list[dict[str, Any]], dict[str, Any]
]:
    """One model call: (raw proposals, {"model", "cost_usd", "tokens", ...})."""
    if await engine.safety.over_daily_budget():
        raise CockpitError(
            f"{job}: daily budget reached (engine.daily_budget_usd); the model was not called"
        )
    model = engine.make_model()
    try:
        response = await model.complete(
            system=SYSTEM,
            messages=[{"role": "user", "content": [{"type": "text", "text": prompt}]}],
            tools=[TOOL],
        )
    finally:
        await model.aclose()
    usage = response.usage.as_dict()
    if not dry_run:
        await engine.store.add_usage(None, model.name, usage)
    call = {"job": job, "model": model.name, "cost_usd": usage["cost_usd"],
            "tokens": usage["input_tokens"] + usage["output_tokens"], "recorded": not dry_run}
    return parse(response.content, response.text), call
