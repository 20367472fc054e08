"""`livhana-cockpit run`: one task, headless, its events streamed to stdout.

The exit code comes from how the task ended: 0 succeeded, 7 cancelled/denied/rolled back,
and for a failure the code of the error class the engine recorded (5 for a dead model
API, 2 for a config problem, ...), else 1. When stdout is closed under us (`| head -1`)
nobody reads the events any more: the task is cancelled and the exit code is 7.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from .render import describe


async def run_task(config: Any, args: argparse.Namespace) -> int:
    from agent.engine import Engine
    from agent.errors import MissingKeyError

    model = args.model or config.engine.model
    if model.startswith("scripted:"):
        from agent.models.scripted import ScriptedModel

        path = Path(model.split(":", 1)[1]).expanduser().absolute()
        ScriptedModel.from_file(path)  # a missing or broken script: exit 2, no task
        model = f"scripted:{path}"
    else:
        from agent.secrets import anthropic_api_key

        if not anthropic_api_key():
            raise MissingKeyError(
                "no Anthropic API key: run `livhana-cockpit secrets set anthropic_api_key` "
                "or set ANTHROPIC_API_KEY (or try `--demo` / `--model scripted:FILE`)"
            )
    engine = await Engine.open(config, role="cli")
    try:
        task_id = await engine.submit(
            args.task,
            args.workspace,
            approve=args.approve,
            model=model,
            max_steps=args.max_steps,
            max_cost=args.max_cost,
            apply=not args.no_apply,
        )
        try:
            await _stream(engine, task_id, args)
        except (KeyboardInterrupt, asyncio.CancelledError):
            await engine.cancel(task_id, by="cli (Ctrl-C)")
            await engine.wait(task_id)
            return 130
        except BrokenPipeError:
            silence_stdout()
            await engine.cancel(task_id, by="cli (stdout closed)")
            await engine.wait(task_id)
            return 7
        task = await engine.wait(task_id)
    finally:
        await engine.close()
    return exit_code(task)


def exit_code(task: dict[str, Any]) -> int:
    from agent import errors
    from agent import events as ev

    if task["state"] == ev.SUCCEEDED:
        return 0
    if task["state"] in (ev.CANCELLED, ev.ROLLED_BACK):
        return 7
    kind = getattr(errors, str((task.get("options") or {}).get("error_kind", "")), None)
    if isinstance(kind, type) and issubclass(kind, errors.CockpitError):
        return kind.exit_code
    return 1


def silence_stdout() -> None:
    """The reader of stdout is gone: send the rest to /dev/null, so neither our next
    write nor the interpreter's final flush raises BrokenPipeError (the Python docs'
    recipe, signal module, "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


async def _stream(engine: Any, task_id: str, args: argparse.Namespace) -> None:
    # Replay what happened before we subscribed, then follow live; seq dedupes the seam.
    seen = 0
    live = engine.subscribe(task_id)
    for event in await engine.events(task_id):
        seen = _print(event, args, seen)
    async for event in live:
        seen = _print(event, args, seen)
        if event["type"] == "approval_requested" and args.approve == "ask":
            await _prompt(engine, event)
        if event["type"] == "complete":
            break


def _print(event: dict[str, Any], args: argparse.Namespace, seen: int) -> int:
    if event["seq"] <= seen:
        return seen
    if args.json:
        sys.stdout.write(json.dumps(event, default=str) + "\n")
    else:
        sys.stdout.write(f"[{event['seq']:>4}] {describe(event)}\n")
    sys.stdout.flush()
    return event["seq"]


async def _prompt(engine: Any, event: dict[str, Any]) -> None:
    detail = event.get("detail") or {}
    if detail.get("diff"):
        sys.stderr.write(detail["diff"][:4000] + "\n")
    elif detail.get("input"):
        sys.stderr.write(json.dumps(detail["input"], indent=2)[:2000] + "\n")
    sys.stderr.write(f"Approve: {event['summary']}? [y/N] ")
    sys.stderr.flush()
    answer = await asyncio.to_thread(sys.stdin.readline)
    approved = answer.strip().lower() in ("y", "yes")
    try:
        await engine.decide(event["approval_id"], approved, by="operator (terminal)")
    except Exception as exc:  # decided elsewhere meanwhile (cockpit, another CLI)
        sys.stderr.write(f"{exc}\n")
