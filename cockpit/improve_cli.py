"""The self-improvement commands: `improve JOB`, `proposals`, `schedules`.

    livhana-cockpit improve daily|weekly|monthly|full|auto [--workspace DIR] [--dry-run] [--json]
    livhana-cockpit proposals [--json] | proposals accept|reject ID
    livhana-cockpit schedules [--json] [--runs]

`improve --json` prints one object (DESIGN.md); progress goes to stderr. `proposals` and
`schedules` only read the store (opened read-only: they work on a full disk too)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

COMMANDS = ("improve", "proposals", "schedules")


def add_parsers(sub: Any) -> None:
    from agent.improve import JOBS

    imp = sub.add_parser("improve", help="run a self-improvement job now")
    imp.add_argument("job", choices=JOBS, help="daily, weekly, monthly, full (all three) or "
                     "auto (run accepted proposals as tasks)")
    imp.add_argument("--workspace", type=Path, default=Path.cwd(),
                     help="project folder (default: .)")
    imp.add_argument("--dry-run", action="store_true",
                     help="compute and print everything, write nothing")
    imp.add_argument("--json", action="store_true", help="one JSON object on stdout")
    prop = sub.add_parser("proposals", help="proposals of the weekly/monthly jobs")
    prop.add_argument("action", nargs="?", choices=("accept", "reject"),
                      help="accept (it then runs as a task) or reject a proposal; none: list them")
    prop.add_argument("proposal_id", nargs="?", metavar="ID", help="the proposal's id")
    prop.add_argument("--json", action="store_true", help="print the data as JSON")
    prop.add_argument("--all", action="store_true", help="decided ones too")
    sch = sub.add_parser("schedules", help="the job schedules, or their past runs (--runs)")
    sch.add_argument("--json", action="store_true", help="print the data as JSON")
    sch.add_argument("--runs", action="store_true", help="past scheduled runs")
    sch.add_argument("--limit", type=int, default=50, metavar="N",
                     help="with --runs: at most N runs, newest first (default: 50)")


def dispatch(config: Any, args: argparse.Namespace) -> int:
    if args.command == "improve":
        return asyncio.run(improve(config, args))
    if args.command == "proposals":
        return asyncio.run(proposals(config, args))
    return asyncio.run(schedules(config, args))


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def improve(config: Any, args: argparse.Namespace) -> int:
    from agent.engine import Engine
    from agent.improve.jobs import run_job

    _check_model(config, args.job, args.dry_run)
    engine = await Engine.open(config, role="cli")
    try:
        result = await run_job(engine, args.job, args.workspace, dry_run=args.dry_run,
                               say=_say)
    finally:
        await engine.close()
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print(render(result))
    if args.job == "auto" and any(t["state"] != "succeeded" for t in result["tasks"]):
        return 1
    return 0


def _check_model(config: Any, job: str, dry_run: bool) -> None:
    """A job that calls the model (weekly, monthly, full; auto's tasks) needs a key or a
    script, named before any work is done."""
    from agent.errors import MissingKeyError

    if job == "daily" or (job == "auto" and dry_run):
        return
    spec = config.engine.model
    if spec.startswith("scripted:"):
        from agent.models.scripted import ScriptedModel

        ScriptedModel.from_file(Path(spec.split(":", 1)[1]).expanduser())
        return
    from agent.secrets import anthropic_api_key

    if not anthropic_api_key():
        raise MissingKeyError(
            f"improve {job} calls the model: run `livhana-cockpit secrets set "
            "anthropic_api_key` or set ANTHROPIC_API_KEY (`improve daily` needs no key)"
        )


def render(result: dict[str, Any]) -> str:
    out = [result["summary"] or f"{result['job']}: done"]
    for item in result["insights"]:
        out.append(f"  [{item['id']}] {item['summary']}")
    for p in result["proposals"]:
        out.append(f"  proposal {p['id']}: {p['title']} (impact {p['impact']}, "
                   f"effort {p['effort']}; evidence {', '.join(p['evidence']) or 'none'})")
    for t in result["tasks"]:
        out.append(f"  task {t['id']} {t['state']}: {t['title']}")
    for note in result["notes"]:
        out.append(f"  note: {note}")
    if result["report"]:
        out.append(f"report: {result['report']}")
    elif result["dry_run"]:
        out.append("dry run: nothing was written")
    if result["proposals"] and not result["dry_run"]:
        out.append("decide with `livhana-cockpit proposals accept|reject ID`")
    return "\n".join(out)


async def proposals(config: Any, args: argparse.Namespace) -> int:
    from agent import audit, control
    from agent.errors import UsageError
    from agent.improve import records

    if args.action:
        if not args.proposal_id:
            raise UsageError(f"proposals {args.action} needs a proposal ID")
        async with control.open_store(config.data_dir) as store:
            accept = args.action == "accept"
            row = await records.decide_proposal(store, args.proposal_id, accept, by="cli")
            await audit.append(store, "cli", f"proposal_{args.action}", None,
                               {"proposal": row["id"], "title": row["title"]})
        verb = "accepted" if accept else "rejected"
        then = (" it runs as a task with `livhana-cockpit improve auto` (or by a running "
                "daemon), and asks before applying" if accept else "")
        print(f"{verb} proposal {row['id']}: {row['title']}{';' if then else ''}{then}")
        return 0
    if args.proposal_id:
        raise UsageError("give accept or reject before the proposal ID")
    async with control.open_store(config.data_dir, readonly=True) as store:
        states = None if args.all or args.json else (records.PENDING, records.ACCEPTED,
                                                     records.STARTED)
        rows = await records.proposals(store, states)
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    if not rows:
        print("no proposals yet (they come from `livhana-cockpit improve weekly|monthly`)")
        return 0
    from .text_table import table

    lines = table(("ID", "State", "Impact/effort", "Proposal"), [
        (p["id"], p["state"] + (f" (task {p['task_id']} {p.get('task_state') or ''})".rstrip()
                                if p.get("task_id") else ""),
         f"{p['impact']}/{p['effort']}", p["title"]) for p in rows])
    print("\n".join(lines))
    return 0


async def schedules(config: Any, args: argparse.Namespace) -> int:
    from agent import control
    from agent.improve import records, views

    from .text_table import table

    async with control.open_store(config.data_dir, readonly=True) as store:
        if args.runs:
            rows = await records.runs(store, scheduled=True, limit=max(1, args.limit))
            data = [{"job": r["job"], "scheduled_for": r["scheduled_for"],
                     "started_at": r["started_at"], "finished_at": r["finished_at"],
                     "outcome": r["outcome"] or "running", "trigger": r["trigger"],
                     "error": r["error"], "report": r["report"],
                     "produced": r["produced"]} for r in rows]
        else:
            data = await views.schedules(config, store)
    if args.json:
        print(json.dumps(data, default=str))
        return 0
    if args.runs:
        if not data:
            print("no scheduled runs yet (the daemon runs them: livhana-cockpit --daemon)")
            return 0
        print("\n".join(table(("Job", "Due", "Started", "Outcome", "Error"), [
            (r["job"], _clock(r["scheduled_for"]), _clock(r["started_at"]), r["outcome"],
             r["error"] or "") for r in data])))
        return 0
    print("\n".join(table(("Job", "Cron", "Next run", "Last run", "Last outcome"), [
        (r["job"], r["cron"] or "(disabled)", _clock(r["next_run"]), _clock(r["last_run"]),
         r["last_outcome"] or "") for r in data])))
    return 0


def _clock(ts: float | None) -> str:
    if not ts:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
