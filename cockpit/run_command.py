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
import threading
from pathlib import Path
from typing import Any

from .render import describe
from .run_report import RunReport


async def run_task(config: Any, args: argparse.Namespace) -> int:
    from agent.engine import Engine
    from agent.errors import MissingKeyError, UsageError

    if not args.task.split():  # bad input is named first, before any key or model check
        raise UsageError("the task is empty: describe what the agent should do")
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
        report = RunReport()
        if not args.json:  # the id first: approve/deny/cancel/rollback need it
            task = await engine.get(task_id) or {"title": args.task}
            sys.stdout.write(f"task {task_id}: {task['title']}\n")
            sys.stdout.flush()
        try:
            await _stream(engine, task_id, args, report)
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
        if not args.json:
            try:
                sys.stdout.write("\n".join(await report.closing(task)) + "\n")
                sys.stdout.flush()
            except BrokenPipeError:  # the task has ended: nothing left to cancel
                silence_stdout()
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


async def _stream(
    engine: Any, task_id: str, args: argparse.Namespace, report: RunReport
) -> None:
    # Subscribe, then replay what was stored, then follow live; seq dedupes the seam. A
    # live event past a gap (events the bus could not hand us) pulls the gap from the
    # store first: what is printed is every event, in order, once.
    seen = 0
    async with engine.subscribe(task_id) as live:
        for event in await engine.events(task_id):
            seen = _print(event, args, seen, report)
        async for event in live:
            if event["seq"] > seen + 1:
                for missed in await engine.events(task_id, seen):
                    if missed["seq"] < event["seq"]:
                        seen = _print(missed, args, seen, report)
            seen = _print(event, args, seen, report)
            if event["type"] == "approval_requested" and args.approve == "ask":
                await _prompt(engine, event)
            if event["type"] == "complete":
                break


def _print(
    event: dict[str, Any], args: argparse.Namespace, seen: int, report: RunReport
) -> int:
    if event["seq"] <= seen:
        return seen
    report.see(event)
    if args.json:
        sys.stdout.write(json.dumps(event, default=str) + "\n")
    else:
        sys.stdout.write(f"[{event['seq']:>4}] {describe(event)}\n")
    sys.stdout.flush()
    return event["seq"]


async def _prompt(engine: Any, event: dict[str, Any]) -> None:
    """Ask on the terminal until answered here or decided elsewhere (another process, the
    timeout, the task stopping): then the prompt is withdrawn, saying who decided, and a
    line typed for it later is dropped, never given to the next request."""
    from agent.approvals import AlreadyDecided, verdict

    approval_id = event["approval_id"]
    row = await engine.store.get_approval(approval_id)
    if row is None or row["state"] != "pending":
        return  # already decided (or a refreshed request shown again after its answer)
    detail = row.get("detail") or {}  # the row, not the event: a step rollback refreshes it
    if detail.get("diff"):
        sys.stderr.write(detail["diff"][:4000] + "\n")
    elif detail.get("input"):
        sys.stderr.write(json.dumps(detail["input"], indent=2)[:2000] + "\n")
    answer = _TERMINAL.ask()  # armed before the prompt shows: a line typed at once counts
    sys.stderr.write(f"Approve: {row['summary']}? [y/N] ")
    sys.stderr.flush()
    watch = asyncio.ensure_future(_until_changed(engine, row))
    try:
        await asyncio.wait({answer, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (answer, watch):
            pending.cancel()
    if answer.done() and not answer.cancelled():
        line = answer.result()
        # Who answered, as it is: EOF (stdin closed or at its end, Ctrl-D) is nobody, and
        # only a terminal is "the operator at the terminal".
        by = NOBODY if line == "" else TERMINAL if _stdin_is_tty() else PIPED
        approved = line.strip().lower() in ("y", "yes")
        try:
            await engine.decide(approval_id, approved, by=by)
        except AlreadyDecided:  # decided elsewhere just before the answer came: say by whom
            now = await engine.store.get_approval(approval_id) or row
        else:
            if by == NOBODY:
                sys.stderr.write(f"\n(no answer: stdin is closed; request {approval_id} "
                                 f"denied, decided by {NOBODY})\n")  # fmt: skip
                sys.stderr.flush()
            return
    else:
        now = watch.result()
    if now["state"] == "pending":  # the request changed (a step rollback, a conflict noted)
        sys.stderr.write(f"\n(request {approval_id} changed; it is shown again)\n")
        sys.stderr.flush()
        # Asked anew here: a change made by another process sends no event to this one.
        await _prompt(engine, event)
        return
    sys.stderr.write(
        f"\n(withdrawn: request {approval_id} was {verdict(now)}; "
        "an answer typed for it is not used)\n"
    )
    sys.stderr.flush()


NOBODY = "nobody (stdin closed)"
TERMINAL = "operator (terminal)"
PIPED = "stdin (not a terminal)"


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):  # closed
        return False


async def _until_changed(engine: Any, row: dict[str, Any]) -> dict[str, Any]:
    while True:
        await asyncio.sleep(PROMPT_POLL_S)
        now = await engine.store.get_approval(row["id"])
        if now is None:
            return {**row, "state": "withdrawn", "decided_by": "its task"}
        if now["state"] != "pending" or (now["summary"], now["detail"]) != (
            row["summary"], row["detail"],
        ):  # fmt: skip
            return now


PROMPT_POLL_S = 0.2


class _Terminal:
    """stdin lines for prompts, read by a daemon thread only while a prompt waits (a
    blocked read must not keep the process alive, nor eat input nobody asked for). A line
    completed after its prompt was withdrawn is dropped. EOF answers every prompt "no"."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._want = threading.Event()
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[str]] | None = None
        self._thread: threading.Thread | None = None
        self._eof = False

    def ask(self) -> asyncio.Future[str]:
        """The next line, for the prompt about to be shown. Armed at once, not when the
        loop next runs a task: a line read in between would find no prompt and be dropped."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        if self._eof:
            future.set_result("")
            return future
        with self._lock:
            self._waiter = (loop, future)
        future.add_done_callback(self._forget)  # answered, withdrawn or cancelled
        if self._thread is None:
            self._thread = threading.Thread(target=self._read, name="prompt-stdin", daemon=True)
            self._thread.start()
        self._want.set()
        return future

    def _forget(self, future: asyncio.Future[str]) -> None:
        with self._lock:
            if self._waiter is not None and self._waiter[1] is future:
                self._waiter = None

    def _read(self) -> None:
        while True:
            self._want.wait()
            try:  # no stdin at all (`<&-`) is EOF too
                line = sys.stdin.readline() if sys.stdin is not None else ""
            except (OSError, ValueError):
                line = ""
            with self._lock:
                waiter, self._waiter = self._waiter, None
                self._want.clear()
                self._eof = line == ""
            if waiter is not None:
                waiter[0].call_soon_threadsafe(_answer, waiter[1], line)
            if line == "":
                return


def _answer(future: asyncio.Future[str], line: str) -> None:
    if not future.done():
        future.set_result(line)


_TERMINAL = _Terminal()
