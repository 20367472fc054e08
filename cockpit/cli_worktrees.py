"""The command line for task worktrees and branches: `gc`, and the second apply's choices
`rebase` and `keep` (agent/prune.py, agent/rebase.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

COMMANDS = ("gc", "rebase", "keep")
REBASE_WAIT_S = 30.0  # how long `rebase` waits to show what its task now asks to apply
KEEP_WAIT_S = 5.0


def add_parsers(sub: Any) -> None:
    gc = sub.add_parser(
        "gc",
        help="prune worktrees, branches and checkpoints of tasks ended past [gc] keep_days",
        description="Remove what ended tasks left (worktree, branch livhana/<id>, shadow "
        "checkpoints) once they ended more than [gc] keep_days ago. Never a live task's, "
        "never what an applied task's rollback needs, never what you made.",
    )
    gc.add_argument("--dry-run", action="store_true", help="list what would go; remove nothing")
    gc.add_argument("--json", action="store_true", help="the report as one JSON object")
    for name, text in (
        ("rebase", "rebase a task waiting to apply onto the workspace's HEAD, then show what "
                   "would land (its apply request comes back)"),
        ("keep", "leave a task waiting to apply on its branch, unapplied"),
    ):  # fmt: skip
        sp = sub.add_parser(name, help=text, description=text)
        sp.add_argument("task_id", help="the task (a unique prefix will do)")


async def run(config: Any, args: argparse.Namespace) -> int:
    from agent.engine import Engine

    engine = await Engine.open(config, role="cli")
    try:
        if args.command == "gc":
            return await _gc(engine, args)
        if args.command == "rebase":
            return await _rebase(engine, args.task_id)
        return await _keep(engine, args.task_id)
    finally:
        await engine.close()


async def _gc(engine: Any, args: argparse.Namespace) -> int:
    report = await engine.gc(dry_run=args.dry_run, by="cli")
    if args.json:
        print(json.dumps(report, default=str))
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for item in report["removed"]:
        size = f" ({size_text(item['bytes'])})" if item["bytes"] else ""
        print(f"{verb} {item['what']} of task {item['task_id']}: {item['where']}{size}")
    for item in report["kept"]:
        print(f"kept {item['what']} of task {item['task_id']}: {item['where']} — {item['why']}")
    policy = f"tasks ended more than {report['keep_days']:g} day(s) ago"
    if not report["removed"]:
        print(f"nothing to remove ({policy})")
    elif args.dry_run:
        print(f"dry run: {size_text(report['freed_bytes'])} would be freed from "
              f"{report['tasks']} task(s) ({policy}); nothing was removed")  # fmt: skip
    else:
        print(f"freed {size_text(report['freed_bytes'])} from {report['tasks']} task(s) "
              f"({policy})")  # fmt: skip
    return 0


async def _rebase(engine: Any, task_id: str) -> int:
    from agent import events as ev

    row = await engine.rebase(task_id, by=f"cli (pid {os.getpid()})")
    task_id = row["task_id"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REBASE_WAIT_S
    while loop.time() < deadline:
        asked = [r for r in await engine.store.approvals("pending", task_id=task_id)
                 if r["kind"] == "apply" and r["id"] > row["id"]]  # fmt: skip
        task = await engine.get(task_id)
        if asked:
            rebased = task["options"].get("rebased") or {}
            files = asked[0]["detail"].get("files") or []
            shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
            print(f"rebased task {task_id} onto HEAD {str(rebased.get('onto', ''))[:10]}: its "
                  f"apply request #{asked[0]['id']} now shows what would land: "
                  f"{len(files)} file(s): {shown or 'none'}")  # fmt: skip
            print(f"review it, then: livhana-cockpit approve {task_id} (or keep {task_id})")
            return 0
        if task["state"] in ev.END_STATES:
            said = " ".join(str(task.get("error") or "").split())
            print(f"task {task_id} ended {task['state']}: {said}")
            return 1
        await asyncio.sleep(0.1)
    print(f"rebase requested for task {task_id}; its engine rebases it and asks again")
    return 0


async def _keep(engine: Any, task_id: str) -> int:
    from agent import events as ev

    row = await engine.keep(task_id, by=f"cli (pid {os.getpid()})")
    task_id = row["task_id"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KEEP_WAIT_S
    task = await engine.get(task_id)
    while task["state"] not in ev.END_STATES and loop.time() < deadline:
        await asyncio.sleep(0.1)
        task = await engine.get(task_id)
    print(f"task {task_id}: not applied, kept on branch {task.get('branch')}; "
          "the workspace is unchanged")  # fmt: skip
    return 0


def size_text(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
