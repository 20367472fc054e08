"""Running a self-improvement job: daily, weekly, monthly, full (the three in turn) and
auto (accepted proposals run as ordinary tasks).

A real run is claimed in the store (agent/improve/records.py: no two runs of one job at
once, one run per scheduled due time), saves its insights and proposals, writes a Markdown
report to the data dir's `reports/`, and records how it ended and what it produced. A dry
run computes and returns the same, and writes nothing: no run record, insight, proposal,
report or task; a job that needs a model call (weekly, monthly) still makes it, and says
so in `notes` with its cost, which is not recorded either.

The result is the `improve JOB --json` object of DESIGN.md:
`{"job", "started_at", "insights", "proposals", "report", "tasks", ...}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import events as ev
from ..errors import CockpitError, StopActive, UsageError
from ..workspace import check_workspace
from . import JOBS, daily, monthly, records, report, weekly

if TYPE_CHECKING:
    from ..store import Store
    from .host import ImproveHost

log = logging.getLogger(__name__)
STOPPED = "stopped before it finished"
Say = Callable[[str], None]


def _quiet(_line: str) -> None:
    return None


NAMES = {
    "error_spike": "error spike", "failure_cluster": "failure cluster", "slow_tool": "slow tool",
    "cost": "cost note", "task_outcomes": "task tally", "large_function": "large function",
    "complex_function": "complex function", "duplicate_block": "duplicated block",
    "todo_density": "TODO-dense file", "untested_module": "untested module",
    "churn": "often-changed file",
}  # fmt: skip


def summary_of(result: dict[str, Any]) -> str:
    """A computed one-paragraph summary (no model writes it)."""
    if result["job"] == "auto":
        ended = Counter(t["state"] for t in result["tasks"])
        told = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in ended.most_common())
        return (f"auto: {len(result['tasks'])} accepted proposal(s) run as tasks"
                + (f" ({told})." if told else "."))
    kinds = Counter(i["kind"] for i in result["insights"])
    parts = [f"{n} {NAMES.get(k, k)}{'' if n == 1 else 's'}" for k, n in kinds.most_common()]
    spikes = [i for i in result["insights"] if i["kind"] == "error_spike"]
    text = f"{result['job']}: " + (", ".join(parts) if parts else "no insight")
    week = result["stats"].get("weekly")
    if week:
        text += (f" (weekly read {week['insights']} insight(s) of the week and "
                 f"{week['learnings']} learning(s))")
    if spikes:
        text += f". Strongest: {spikes[0]['summary']}"
    if result["proposals"]:
        text += f". {len(result['proposals'])} proposal(s) wait for the operator"
    return text + "."


async def run_job(
    engine: ImproveHost,
    job: str,
    workspace: Path | str,
    *,
    dry_run: bool = False,
    trigger: str = "manual",
    scheduled_for: float | None = None,
    run_id: int | None = None,
    say: Say = _quiet,
) -> dict[str, Any]:
    """Run `job` on `workspace`. `run_id`: a run the scheduler already claimed."""
    if job not in JOBS:
        raise UsageError(f"unknown job {job!r}: one of {', '.join(JOBS)}")
    try:
        ws = await check_workspace(Path(workspace), engine.config.worktrees_dir)
    except CockpitError as exc:
        if run_id is not None:  # claimed already (a schedule): its end is recorded too
            await records.finish_run(engine.store, run_id, records.FAILED, str(exc))
        raise
    except asyncio.CancelledError:
        if run_id is not None:
            await close_run(engine.store, run_id, records.INTERRUPTED, STOPPED)
        raise
    result: dict[str, Any] = {
        "job": job, "started_at": time.time(), "finished_at": None, "insights": [],
        "proposals": [], "report": None, "tasks": [], "dry_run": dry_run,
        "workspace": str(ws), "trigger": trigger, "scheduled_for": scheduled_for,
        "run_id": None, "model_calls": [], "notes": [], "stats": {}, "summary": "",
    }  # fmt: skip
    if job == "auto" and engine.stopped and not dry_run:
        raise StopActive("emergency stop is engaged: re-arm before starting new work")
    if not dry_run and run_id is None:
        run_id, why = await records.claim_run(
            engine.store, job, trigger, engine.engine_id, str(ws), scheduled_for
        )
        if run_id is None:
            raise UsageError(f"{job} not started: {why}")
    result["run_id"] = run_id
    try:
        if job == "auto":
            await _auto(engine, ws, dry_run, result, say)
        else:
            await _analyse(engine, job, ws, dry_run, result, say)
        result["summary"] = summary_of(result)
        if dry_run:
            result["finished_at"] = time.time()
            return result
        assert run_id is not None
        # Only what this run computed: the week's insights shown by weekly are stored already.
        fresh = [i for i in result["insights"] if "run_id" not in i]
        await records.save_insights(engine.store, run_id, fresh)
        await records.save_proposals(engine.store, run_id, result["proposals"])
        result["finished_at"] = time.time()
        path = await asyncio.to_thread(report.write, engine.config.reports_dir, result)
        result["report"] = str(path)
        await records.finish_run(engine.store, run_id, records.SUCCEEDED, report=str(path),
                                 produced=produced(result))
    except asyncio.CancelledError:
        if run_id is not None:
            await _close(engine, run_id, records.INTERRUPTED, STOPPED, result)
        raise
    except Exception as exc:
        if run_id is not None:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not isinstance(exc, CockpitError):
                log.exception("%s run %s failed", job, run_id)
                message = f"internal error: {type(exc).__name__}: {message}"
            await _close(engine, run_id, records.FAILED, engine.safety.redact(message), result)
        raise
    return result


async def _close(engine: ImproveHost, run_id: int, outcome: str, error: str,
                 result: dict[str, Any]) -> None:
    await close_run(engine.store, run_id, outcome, error, produced(result))


async def close_run(store: Store, run_id: int, outcome: str, error: str,
                    produced: dict[str, Any] | None = None) -> None:
    """Record how a run ended even while its caller is being cancelled (a second cancel
    while it is written does not lose it: the write is shielded)."""
    with contextlib.suppress(Exception):
        await asyncio.shield(records.finish_run(store, run_id, outcome, error,
                                                produced=produced))


def produced(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "insights": len(result["insights"]),
        "kinds": dict(Counter(i["kind"] for i in result["insights"])),
        "proposals": [p["id"] for p in result["proposals"]],
        "tasks": [t["id"] for t in result["tasks"]],
        "cost_usd": round(sum(c["cost_usd"] for c in result["model_calls"]), 6),
        "summary": result.get("summary", ""),
    }


async def _analyse(engine: ImproveHost, job: str, ws: Path, dry_run: bool, result: dict[str, Any],
                   say: Say) -> None:
    fresh: list[dict[str, Any]] = []
    if job in ("daily", "full"):
        say("daily: reading the logs and the last day's tasks")
        day = await daily.analyse(engine, ws)
        fresh = day["insights"]
        result["insights"] += fresh
        result["stats"].update(day["stats"])
    if job in ("weekly", "full"):
        say("weekly: asking the model for proposals from the week's insights and learnings")
        week = await weekly.propose(engine, ws, fresh, dry_run)
        # The week's stored insights it rested on are shown (the proposals cite them).
        shown = {i["id"] for i in result["insights"]}
        result["insights"] += [i for i in week["insights"] if i["id"] not in shown]
        result["proposals"] += week["proposals"]
        result["model_calls"] += week["model_calls"]
        result["notes"] += week["notes"]
        result["stats"]["weekly"] = {"insights": len(week["insights"]),
                                     "learnings": week["learnings"]}
    if job in ("monthly", "full"):
        say("monthly: measuring the code")
        month = await monthly.analyse(ws)
        result["insights"] += month["insights"]
        result["stats"]["code"] = month["stats"]
        say("monthly: asking the model to rank the measurements")
        ranked = await monthly.propose(engine, ws, month["insights"], dry_run)
        result["proposals"] += ranked["proposals"]
        result["model_calls"] += ranked["model_calls"]
        result["notes"] += ranked["notes"]
    if dry_run and result["model_calls"]:
        cost = sum(c["cost_usd"] for c in result["model_calls"])
        result["notes"].append(
            f"dry run: {job} needs {len(result['model_calls'])} model call(s); made, "
            f"${cost:.4f}, not recorded; nothing else was written"
        )


# -- auto: accepted proposals as ordinary tasks -------------------------------------------
def task_text(proposal: dict[str, Any]) -> str:
    return f"{proposal['task']} (proposal {proposal['id']}: {proposal['title']})"


async def start_proposal(engine: ImproveHost, proposal: dict[str, Any],
                         workspace: Path | str) -> str | None:
    """Claim an accepted proposal and submit its task (the normal approval gates apply:
    approve mode "ask"). None if another runner claimed it first."""
    if not await records.claim_proposal(engine.store, proposal["id"], engine.engine_id):
        return None
    try:
        task_id = await engine.submit(task_text(proposal), proposal.get("workspace") or workspace,
                                      approve="ask")
    except BaseException:
        await records.set_proposal_task(engine.store, proposal["id"], None, back_to_accepted=True)
        raise
    await records.set_proposal_task(engine.store, proposal["id"], task_id)
    await engine.audit("operator", "proposal_started", task_id,
                       {"proposal": proposal["id"], "title": proposal["title"]})
    return task_id


async def _auto(engine: ImproveHost, ws: Path, dry_run: bool, result: dict[str, Any],
                say: Say) -> None:
    accepted = sorted(await records.proposals(engine.store, (records.ACCEPTED,)),
                      key=lambda p: p["created_at"])
    if not accepted:
        result["notes"].append("auto: no accepted proposal to run")
        return
    if dry_run:
        result["notes"].append(f"dry run: would run {len(accepted)} accepted proposal(s) as "
                               "tasks, one at a time; none was started")
        result["stats"]["would_run"] = [{"proposal": p["id"], "title": p["title"]}
                                        for p in accepted]
        return
    at_once = engine.config.improve.auto_concurrent
    running: dict[str, dict[str, Any]] = {}
    for proposal in accepted:
        while len(running) >= at_once:
            await _wait_one(engine, running, result, say)
        task_id = await start_proposal(engine, proposal, ws)
        if task_id is None:
            continue
        say(f"auto: task {task_id} started for proposal {proposal['id']} "
            f"({proposal['title']}); it asks before applying")
        entry = {"id": task_id, "proposal": proposal["id"], "title": proposal["title"],
                 "state": ev.QUEUED}
        result["tasks"].append(entry)
        running[task_id] = entry
    while running:
        await _wait_one(engine, running, result, say)


async def _wait_one(engine: ImproveHost, running: dict[str, dict[str, Any]],
                    result: dict[str, Any], say: Say) -> None:
    waits = {asyncio.ensure_future(engine.wait(t)): t for t in running}
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            if not w.done():
                w.cancel()
    for w in done:
        task_id = waits[w]
        entry = running.pop(task_id)
        task = w.result()
        entry["state"] = task["state"]
        say(f"auto: task {task_id} ended {task['state']}")
