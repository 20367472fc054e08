"""The command line. Every failure is one line on stderr and a documented exit code."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from agent.config import MAX_COST_CEILING_USD, MAX_STEPS_CEILING

EXIT_CODES = """\
exit codes:
  0   success (for `run`: the task succeeded)
  1   the task failed (an action it took was denied, or a deploy failed, and never
      made good), or an unexpected error
  2   bad input or configuration; for approve/deny, also: the request was decided
      first by someone else (the message says who and what), or none is pending
  3   the store is unusable (corrupt, locked, newer schema)
  4   no API key / secret store problem
  5   the model API is unreachable (or rejected the task's requests)
  6   the emergency stop is engaged (re-arm first)
  7   the task was cancelled, denied or rolled back; for `run`, also when its
      stdout was closed (`| head`): nobody reads the events, so the task is cancelled
  130 interrupted (Ctrl-C)"""


TASK_ID_HELP = ("the task's id, or a unique prefix of at least 4 characters "
                "(`livhana-cockpit history` lists them)")


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line (with where to look), not a usage dump and an error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="livhana-cockpit",
        description="Run, watch, approve, stop and roll back an autonomous coding agent.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="where the store and config live (default: $LIVHANA_DATA_DIR, else "
                        "the platform's user data dir)")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="config file (default: DATA_DIR/config.toml)")
    p.add_argument(
        "--daemon", action="store_true",
        help="headless engine: the schedules, accepted proposals and queued tasks, "
        "stop/cancel, HTTP API",
    )
    d = p.add_argument_group("daemon")
    d.add_argument("--workspace", dest="daemon_workspace", type=Path, metavar="DIR",
                   help="the daemon's project folder: its jobs and proposals work on it, and "
                   "API tasks that name none run here (default: .)")
    d.add_argument("--install-service", action="store_true",
                   help="write a systemd user unit for the daemon (not enabled)")
    d.add_argument("--api-host", help="where the HTTP API listens (default 127.0.0.1)")
    d.add_argument("--api-port", type=_whole(0, 65535), help="its port (default 4002; 0: any free)")
    d.add_argument("--no-api", action="store_true", help="do not serve the HTTP API")
    d.add_argument("--api-allow-remote", action="store_true",
                   help="allow a non-loopback --api-host (the API is then reachable by others)")
    p.add_argument(
        "--demo", action="store_true", help="cockpit with a sample project, no API key needed"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run one task headless and stream its events")
    run.add_argument("task", help="what the agent should do")
    run.add_argument(
        "--workspace", type=Path, default=Path.cwd(), help="project folder (default: .)"
    )
    run.add_argument(
        "--approve",
        choices=("auto", "deny", "ask"),
        default="ask",
        help="how approval requests are answered (ask: prompt here)",
    )
    run.add_argument("--json", action="store_true", help="one JSON event per line on stdout")
    run.add_argument("--model", metavar="ID",
                     help="model id, or scripted:FILE for a replayed script")
    run.add_argument(
        "--max-steps", type=_whole(1, MAX_STEPS_CEILING), metavar="N",
        help="step cap for this task",
    )
    run.add_argument("--max-cost", type=_positive_usd, metavar="USD",
                     help="USD cap for this task")
    run.add_argument(
        "--no-apply",
        action="store_true",
        help="leave the change on its branch instead of applying it to the workspace",
    )

    sub.add_parser("stop", help="emergency stop of every engine on this store")
    sub.add_parser("rearm", help="lift the emergency stop")
    for name, text in (
        ("tasks", "live tasks"),
        ("history", "finished tasks"),
        ("metrics", "cost and success"),
        ("capabilities", "the agent's tools and their policy"),
        ("approvals", "pending approval requests"),
    ):
        sp = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sp.add_argument("--json", action="store_true",
                        help="print the data as JSON instead of a table")
        if name in ("history", "tasks"):
            sp.add_argument("--limit", type=_whole(1, 100_000), default=50, metavar="N",
                            help="show at most N tasks, newest first (default: 50)")
    from .learnings_command import add_parser as add_learnings

    add_learnings(sub)
    for name, text in (
        ("approve", "approve the pending requests of a task"),
        ("deny", "deny the pending requests of a task"),
        ("cancel", "cancel a live task (it stops at its next check)"),
    ):
        sp = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sp.add_argument("task_id", metavar="TASK_ID", help=TASK_ID_HELP)
    rb = sub.add_parser("rollback", help="undo a task exactly", description="Undo a task exactly.")
    rb.add_argument("task_id", metavar="TASK_ID", help=TASK_ID_HELP)
    rb.add_argument(
        "--to-step",
        type=_whole(0, MAX_STEPS_CEILING),
        metavar="N",
        help="return the task's worktree to after step N",
    )
    sec = sub.add_parser(
        "secrets", help="keys and credentials in the OS keyring (one service: livhana-cockpit)",
        description="anthropic_api_key: the model; api_jwt_secret: the HTTP API's tokens; "
        "bigquery_credentials: a service-account JSON key; any other name: a connector's.")
    sec.add_argument("action", choices=("set", "get", "delete", "list", "test"),
                     help="set (prompts for the value), get, delete, list or test")
    sec.add_argument("name", nargs="?", help="the secret's name (not for list)")
    sec.add_argument("--from-file", type=Path, metavar="FILE",
                     help="set: the value is this file's content (a JSON key)")
    sec.add_argument("--reveal", action="store_true",
                     help="get: print the value itself, not its masked form")
    tok = sub.add_parser("token", help="bearer tokens for the HTTP API")
    tok.add_argument("action", choices=("create",), help="create: print a new token")
    tok.add_argument("--scope", choices=("operator", "viewer"), default="operator",
                     help="operator: may act; viewer: may only read (default operator)")
    tok.add_argument("--ttl", default="8h", help="how long it is valid: 30m, 8h, 7d (default 8h)")
    tok.add_argument("--subject", help="who it is for, as audited (default: user@host)")
    au = sub.add_parser("audit", help="the tamper-evident audit log")
    au.add_argument("action", choices=("verify",), help="verify: check the whole hash chain")
    from . import improve_cli
    from .cli_worktrees import add_parsers  # gc, rebase, keep

    improve_cli.add_parsers(sub)
    add_parsers(sub)
    return p


def _whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number within [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a whole number, got '{_printable(text)[:40]}'"
            ) from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:,}, got {text[:30]}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in its own messages
    return parse


def _positive_usd(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number of USD, got '{_printable(text)[:40]}'"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    if value > MAX_COST_CEILING_USD:
        raise argparse.ArgumentTypeError(
            f"must be at most {MAX_COST_CEILING_USD:,.0f}, got {text[:40]}"
        )
    return value


def _printable(text: str) -> str:
    from agent.text import marked

    return marked(text)


# Arguments that may hold any bytes: the task's title is marked (caf\xe9) by the engine;
# a secret's name is the secrets command's to judge.
_ANY_BYTES = {"task", "name"}


def _check_unicode(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Undecodable argv bytes arrive as lone surrogates, which nothing downstream can store
    or print: name the argument in one line instead of a traceback later."""
    from agent.text import lone_surrogate, marked

    for dest, value in vars(args).items():
        if dest in _ANY_BYTES or not isinstance(value, str | Path):
            continue
        if lone_surrogate(str(value)):
            flag = dest.upper() if dest in ("task_id", "action") else "--" + dest.replace("_", "-")
            parser.exit(
                2,
                f"{parser.prog}: {flag} is not valid UTF-8 ('{marked(str(value))}'); "
                "use a UTF-8 name\n",
            )


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_unicode(parser, args)
    from agent.errors import CockpitError

    try:
        store = _store_path(args)
        fresh = store is not None and not store.exists()
        code = dispatch(args)
        # Said when the command got through; a refusal stays the one line that says why.
        if fresh and store is not None and store.exists():
            _say_new_store(args, store)
        sys.stdout.flush()  # here, where a closed pipe can still be handled
    except CockpitError as exc:
        print(f"livhana-cockpit: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `livhana-cockpit tasks | head -3`: the reader left early
        from .run_command import silence_stdout

        silence_stdout()
        code = 1
    sys.exit(code)


def _store_path(args: argparse.Namespace) -> Path | None:
    from agent.config import load_config
    from agent.errors import CockpitError

    if args.demo and not args.command:
        return None  # the demo keeps its store in its own temp dir
    try:
        return load_config(args.data_dir, args.config).store_path
    except CockpitError:
        return None  # said by the command itself


def _say_new_store(args: argparse.Namespace, store: Path) -> None:
    """A store made where none was is said, never made quietly: a command meant for
    another data dir (the demo's) would otherwise leave an empty one behind unnoticed."""
    where = "--data-dir" if args.data_dir else (
        "LIVHANA_DATA_DIR" if os.environ.get("LIVHANA_DATA_DIR") else "the default data dir")
    print(f"livhana-cockpit: made a new store at {store} ({where}; pass --data-dir to use "
          "another)", file=sys.stderr)


def dispatch(args: argparse.Namespace) -> int:
    from agent.config import load_config

    if args.command in ("stop", "rearm", "audit"):
        # On the store alone: the emergency stop must work even when config.toml or
        # policy.toml is broken (an engine needs both, the stop switch neither).
        return asyncio.run(control_command(args))
    config = load_config(args.data_dir, args.config)
    if args.daemon or args.install_service:
        from .daemon import run_daemon

        return run_daemon(config, args)
    if args.command == "token":
        from .api.tokens import token_command

        return token_command(config.data_dir, args.scope, args.ttl, args.subject)
    if args.daemon_workspace is not None:
        from agent.errors import UsageError

        raise UsageError("--workspace before the command goes with --daemon; "
                         "for a command, put it after the command's name")
    if not args.command:
        from .app import run_app

        return run_app(config, demo=args.demo) or 0
    if args.command == "secrets":
        code = secrets_command(args)
        if args.action == "set":  # running engines learn the new value for redaction
            from agent.control import secrets_changed

            asyncio.run(secrets_changed(config.data_dir, args.name))
        return code
    if args.command == "run":
        from .run_command import run_task

        return asyncio.run(run_task(config, args))
    from . import improve_cli

    if args.command in improve_cli.COMMANDS:
        return improve_cli.dispatch(config, args)
    from . import cli_worktrees

    if args.command in cli_worktrees.COMMANDS:
        return asyncio.run(cli_worktrees.run(config, args))
    return asyncio.run(store_command(config, args))


def secrets_command(args: argparse.Namespace) -> int:
    """Each action is checked against the keyring afterwards (agent/secrets.py): what is
    printed is what the keyring now holds."""
    from agent import secrets
    from agent.errors import UsageError

    if args.action == "list":
        found = secrets.list_secrets()
        for name, present in found:
            print(name if present else f"{name}  (named in the index, but the keyring lost it)")
        if not found:  # stdout stays empty for scripts; the operator still gets an answer
            print(f"no secrets in the OS keyring under {secrets.SERVICE}", file=sys.stderr)
        return 0
    if not args.name:
        raise UsageError(f"secrets {args.action} needs a NAME")
    if args.from_file is not None and args.action != "set":
        raise UsageError("--from-file is for `secrets set`")
    if args.reveal and args.action != "get":
        raise UsageError("--reveal is for `secrets get`")
    if args.action == "set":
        value = _secret_value(args)
        if args.name == secrets.BIGQUERY_CREDENTIALS_NAME:
            from agent.gcp import parse_service_account

            parse_service_account(value)  # a key that cannot work is refused, not stored
        secrets.set_secret(args.name, value)
        print(f"stored {args.name} in the OS keyring ({secrets.describe_backend()})")
    elif args.action == "get":
        value = secrets.get_secret(args.name)
        if value is None:
            raise UsageError(f"no secret named {args.name}")
        print(value if args.reveal else f"{args.name}: {secrets.mask(args.name, value)}")
    elif args.action == "test":
        return _test_secret(args)
    elif not secrets.delete_secret(args.name):
        raise UsageError(f"no secret named {args.name}")
    else:
        print(f"deleted {args.name} from the OS keyring")
    return 0


def _secret_value(args: argparse.Namespace) -> str:
    """The value to store: a file's content, a hidden prompt, or all of stdin (a pipe)."""
    from agent.errors import UsageError

    if args.from_file is not None:
        try:
            value = args.from_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise UsageError(f"cannot read {args.from_file}: {why}") from None
    elif sys.stdin.isatty():
        import getpass

        value = getpass.getpass(f"value for {args.name}: ")
    else:
        value = sys.stdin.read().rstrip("\r\n")
    if not value:
        raise UsageError("empty value: nothing stored")
    return value


def _test_secret(args: argparse.Namespace) -> int:
    """`secrets test NAME`: one real, cheap call with the stored value (agent/secret_checks)."""
    from agent.config import load_config
    from agent.secret_checks import check_secret

    config = load_config(args.data_dir, args.config)
    ok, message = asyncio.run(check_secret(args.name, config))
    if ok:
        print(f"{args.name}: ok: {message}")
        return 0
    said = message if message.startswith(args.name) else f"{args.name}: {message}"
    print(f"livhana-cockpit: {said}", file=sys.stderr)
    return 4


async def control_command(args: argparse.Namespace) -> int:
    """stop, rearm, audit verify: straight on the data dir's store (no engine, no policy)."""
    from agent import audit, control
    from agent.config import default_data_dir, load_config
    from agent.errors import ConfigError

    try:
        data_dir = load_config(args.data_dir, args.config).data_dir
    except ConfigError as exc:
        data_dir = (args.data_dir or default_data_dir()).expanduser()
        print(f"livhana-cockpit: warning: {exc} (going ahead with {data_dir})", file=sys.stderr)
    if args.command == "audit":  # reads only: works on a full disk or a read-only store
        async with control.open_store(data_dir, readonly=True) as store:
            ok, message = await audit.verify(store)
        print(message)
        return 0 if ok else 1
    async with control.open_store(data_dir) as store:
        if args.command == "rearm":
            await control.lift_stop(store, by="cli")
            print("re-armed: new work accepted")
            return 0
        await control.engage_stop(store, by="cli")
        report = await control.await_stop(store)
    refused = "new work refused until `livhana-cockpit rearm`"
    if not report["engines"]:
        print(f"emergency stop engaged: no engine is running; {refused}")
        return 0
    engines = f"{report['engines']} engine(s)"
    print(f"emergency stop engaged: {report['stopped']} running task(s) stopped on {engines}; "
          f"{refused}")  # fmt: skip
    for engine_id, left in report["unconfirmed"].items():
        print(
            f"livhana-cockpit: engine {engine_id} did not confirm within {control.STOP_ACK_S:g} s: "
            f"{left} of its task(s) still running",
            file=sys.stderr,
        )
    return 1 if report["unconfirmed"] else 0


VIEWS = ("tasks", "history", "learnings", "metrics", "capabilities", "approvals")


async def store_command(config: Any, args: argparse.Namespace) -> int:
    from agent.engine import Engine

    if args.command == "learnings":
        from .learnings_command import check_args

        check_args(args)
    if args.command in VIEWS and not getattr(args, "action", None):
        await _settle_first(config)
        return await _view(config, args)
    engine = await Engine.open(config, role="cli")
    try:
        return await _store_command(engine, args)
    finally:
        await engine.close()


async def _settle_first(config: Any) -> None:
    """A view starts an engine (which writes) only to settle what a stopped process left
    (its tasks, a journaled apply): a store that cannot be written then (a full disk) is
    shown as it is, with a warning. Otherwise it only reads."""
    from agent.engine import Engine
    from agent.errors import StoreError
    from agent.recovery import needs_recovery
    from agent.store import Store

    store = await Store.open(config.store_path, readonly=True)
    try:
        if not await needs_recovery(store, config.data_dir):
            return
    finally:
        await store.close()
    try:
        await (await Engine.open(config, role="cli")).close()
    except StoreError as exc:
        print(f"livhana-cockpit: warning: what a stopped process left is not settled yet "
              f"({exc}); showing the store as it is", file=sys.stderr)  # fmt: skip


async def _view(config: Any, args: argparse.Namespace) -> int:
    """A command that shows the store: opened read-only (it works on a full disk or a
    read-only copy), no engine started, no task of another process touched."""
    from agent.engine import Engine
    from agent.store import Store

    store = await Store.open(config.store_path, readonly=True)
    try:
        return await _store_command(Engine(config, store, role="cli"), args)
    finally:
        await store.close()


async def _decide(engine: Any, task_id: str, approved: bool) -> int:
    """approve/deny: first decider wins, and a decision that lost says so (exit 2) and
    names who decided first and what. The pid tells two racing command lines apart."""
    from agent.approvals import AlreadyDecided

    verb = "approved" if approved else "denied"
    by = f"cli (pid {os.getpid()})"
    try:
        n = await engine.decide_task(task_id, approved, by=by)
    except AlreadyDecided as lost:
        if lost.won:  # several requests, some decided here: say which
            print(f"{verb} {len(lost.won)} request(s) of task {task_id}")
        raise
    print(f"{verb} {n} request(s) of task {task_id}")
    return 0


CANCEL_WAIT_S = 5.0  # how long `cancel` waits to report how the task ended


async def _cancel(engine: Any, task_id: str) -> int:
    """cancel: request it, then say how the task really ended (within CANCEL_WAIT_S): a
    task that finished first (its apply already under way, say) did not get cancelled,
    and the exit code says so."""
    from agent import events as ev
    from agent.errors import UsageError

    await engine.cancel(task_id, by="cli")
    deadline = asyncio.get_running_loop().time() + CANCEL_WAIT_S
    while (task := await engine.get(task_id))["state"] not in ev.END_STATES:
        if asyncio.get_running_loop().time() > deadline:
            print(f"cancel requested for {task['id']}; it is still {task['state']} "
                  "(its engine stops it at its next check)")  # fmt: skip
            return 0
        await asyncio.sleep(0.1)
    said = " ".join(str(task.get("error") or "").split())[:300]  # one line
    why = f": {said}" if said else ""
    if task["state"] != ev.CANCELLED:
        ended = f"task {task['id']} ended {task['state']}"
        raise UsageError(f"{ended} before the cancel took effect{why}")
    print(f"cancelled task {task['id']}{why}")
    return 0


async def _store_command(engine: Any, args: argparse.Namespace) -> int:
    from .cli_views import VIEWS as LISTINGS
    from .cli_views import show
    from .task_ids import resolve

    cmd = args.command  # stop, rearm and audit: control_command (they need no engine)
    if cmd == "learnings":  # listing (--stats, the seed's --json) or pin/edit/retire/...
        from . import learnings_command

        if args.action:
            return await learnings_command.change(engine, args)
        return await learnings_command.show(engine, args)
    if cmd in LISTINGS:
        return await show(engine, cmd, args)
    # A typed id or prefix becomes the full id first, or a one-line "no task", "ambiguous"
    # or "too short" that points to `history`.
    if cmd in ("approve", "deny"):
        return await _decide(engine, await resolve(engine.store, args.task_id), cmd == "approve")
    if cmd == "cancel":
        return await _cancel(engine, await resolve(engine.store, args.task_id))
    if cmd == "rollback":
        task_id = await resolve(engine.store, args.task_id)
        result = await engine.rollback(task_id, args.to_step, by="cli")
        print(result["message"])
        return 0
    raise AssertionError(f"unhandled command {cmd}")  # the parser knows no other
