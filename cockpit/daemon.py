"""`livhana-cockpit --daemon [--workspace DIR] [--install-service]`: the engine without a
screen. It runs the scheduled jobs (agent/schedule.py) and the accepted proposals
(agent/improve/runner.py), keeps its heartbeat and lock in the store (so cockpits see it
alive), obeys stop/cancel rows, and logs structured lines (JSON, secrets redacted) to
`DATA_DIR/logs/daemon.log`.

SIGTERM or SIGINT: the services stop; engine.close stops the scheduler (attached with
engine.attach_scheduler: job runs in progress are recorded `interrupted`), checkpoints the
running tasks and marks them `interrupted`; it exits 0 within 10 s.

The HTTP API (cockpit/api/) listens while the daemon runs, unless --no-api.

`--install-service` writes a systemd user unit and prints how to enable it; it never
enables or starts anything by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import logging.handlers
import os
import shlex
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

SHUTDOWN_S = 4.0  # the services' share of the 10 s a stop may take (engine.close has the rest)
UNIT_NAME = "livhana-cockpit.service"
log = logging.getLogger("livhana.daemon")


def run_daemon(config: Any, args: argparse.Namespace) -> int:
    workspace = (args.daemon_workspace or Path.cwd()).expanduser().absolute()
    if args.install_service:
        return install_service(config, workspace)
    return asyncio.run(_main(config, workspace, args))


# -- logging --------------------------------------------------------------------------------
class JsonLines(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (already redacted: the engine's
    record factory, agent/redact.py, scrubs every record), and the exception if any."""

    def __init__(self, engine_id: str) -> None:
        super().__init__()
        self.engine_id = engine_id

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3), "level": record.levelname.lower(),
            "logger": record.name, "msg": record.getMessage(), "pid": record.process,
            "engine": self.engine_id,
        }  # fmt: skip
        if record.exc_info:
            line["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def setup_logging(data_dir: Path, engine_id: str) -> Path:
    path = data_dir / "logs" / "daemon.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=10 << 20, backupCount=3,
                                                   encoding="utf-8")
    handler.setFormatter(JsonLines(engine_id))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "httpcore"):  # they log each request's URL: a webhook's token
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


# -- running --------------------------------------------------------------------------------
async def _main(config: Any, workspace: Path, args: argparse.Namespace) -> int:
    from agent.engine import Engine
    from agent.improve.runner import ProposalRunner
    from agent.notify import announce
    from agent.schedule import Scheduler
    from agent.workspace import check_workspace

    from .api.service import api_service

    ws = await check_workspace(workspace, config.worktrees_dir)  # a bad one: one line, exit 2
    engine = await Engine.open(config, role="daemon")
    log_path = setup_logging(config.data_dir, engine.engine_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def tell(ended: dict[str, Any]) -> None:
        sent = await announce(config.notify, ended, engine.safety.redact)
        if sent:
            log.info("told about the %s run: %s", ended.get("job"), ", ".join(sent))

    scheduler = Scheduler(engine, ws, on_end=tell)
    engine.attach_scheduler(scheduler)  # it runs beside the engine's loops until close
    # The daemon's other services: each runs until cancelled (the HTTP API: below).
    services: dict[str, Coroutine[Any, Any, None]] = {
        "proposals": ProposalRunner(engine, ws).run(),
    }
    running = {asyncio.create_task(coro, name=name): name for name, coro in services.items()}
    crons = ", ".join(f"{job} '{cron}'" for job, cron in scheduler.crons().items()) or "none"
    code = 0
    try:
        async with api_service(engine, config, args):  # the HTTP API, unless --no-api
            print(f"livhana-cockpit daemon {engine.engine_id} (pid {os.getpid()}) running on "
                  f"{config.store_path}\n  workspace {ws}\n  schedules: {crons}\n  log {log_path}",
                  file=sys.stderr, flush=True)
            log.info("daemon started: workspace %s, schedules %s", ws, crons)
            waiter = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([waiter, *running], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not waiter and not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    log.error("service %s failed: %s", running[task], exc, exc_info=exc)
                    print(f"livhana-cockpit: daemon service {running[task]} failed: {exc}",
                          file=sys.stderr)
                    code = 1
            waiter.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal must not cut the stop
            loop.add_signal_handler(sig, lambda: None)
        log.info("daemon stopping")
        started = time.monotonic()
        for task in running:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*running, return_exceptions=True), SHUTDOWN_S
            )
        await engine.close(reason="daemon shut down")
        log.info("daemon stopped in %.1f s", time.monotonic() - started)
        logging.getLogger().handlers[:] = [
            h for h in logging.getLogger().handlers if not isinstance(h, logging.FileHandler)
        ]
    return code


# -- the systemd unit -----------------------------------------------------------------------
def unit_text(config: Any, workspace: Path) -> str:
    argv = [sys.executable, "-m", "cockpit", "--data-dir", str(config.data_dir)]
    if config.config_path is not None and config.config_path.exists():
        argv += ["--config", str(config.config_path)]
    argv += ["--daemon", "--workspace", str(workspace)]
    return "\n".join([
        "[Unit]",
        "Description=Liv Hana Cockpit daemon (schedules, accepted proposals)",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"WorkingDirectory={_quote(str(workspace))}",
        f"ExecStart={' '.join(_quote(a) for a in argv)}",
        "Restart=on-failure",
        "RestartSec=10",
        # SIGTERM first: the daemon records its runs and tasks as interrupted, then exits.
        "KillSignal=SIGTERM",
        "TimeoutStopSec=15",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ])


def _quote(arg: str) -> str:
    """systemd's own quoting is close to the shell's for plain paths."""
    return shlex.quote(arg) if any(c.isspace() or c in "\"'\\;" for c in arg) else arg


def install_service(config: Any, workspace: Path) -> int:
    from agent.errors import UsageError

    if not workspace.is_dir():
        raise UsageError(f"workspace {workspace} is not a directory")
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    path = base / "systemd" / "user" / UNIT_NAME
    text = unit_text(config, workspace)
    if path.exists() and path.read_text(encoding="utf-8", errors="replace") == text:
        print(f"{path} is already installed as is")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = ""
        if path.exists():  # the operator's own edits are kept beside it, never lost
            backup = path.with_name(UNIT_NAME + ".bak")
            os.replace(path, backup)
            kept = f" (the previous one is kept as {backup})"
        tmp = path.with_name(f".{UNIT_NAME}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        print(f"wrote {path}{kept}")
    print("It is not enabled. To start it now and at every login:\n"
          "  systemctl --user daemon-reload\n"
          f"  systemctl --user enable --now {UNIT_NAME}\n"
          "To keep it running after you log out: loginctl enable-linger $USER\n"
          f"Its log: journalctl --user -u {UNIT_NAME}, and {config.data_dir / 'logs' / 'daemon.log'}")
    return 0
