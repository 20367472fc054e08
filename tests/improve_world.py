"""The self-improvement tests' world: a real git workspace with a week of synthetic logs
and history, and a store seeded with a week of tasks, events, usage and learnings.

The story it holds (the seed's): since a few hours ago every request fails JWT validation
because JWT_SECRET is not loaded (app/auth.py reads the wrong variable). Around it, errors
that are always there at the same rate (a flaky database, a full queue, an sshd warning),
which are not a spike. Times are relative to `now`, so the last day is the last 24 hours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

DAY = 86_400.0
HOUR = 3_600.0
JWT_ERROR = "JWT validation failed: JWT_SECRET is not set"

AUTH_BUGGY = '''\
"""Request authentication: bearer tokens signed with the app's secret."""

import hashlib
import hmac
import os

# The secret's name in the environment.
SECRET = os.environ.get("JWT_SECRET_KEY", "")  # TODO: load it the way deploy sets it


def sign(payload: str, secret: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def validate(token: str, secret: str = SECRET) -> str:
    if not secret:
        raise RuntimeError("JWT_SECRET is not set")
    payload, _, signature = token.rpartition(".")
    if not hmac.compare_digest(sign(payload, secret), signature):
        raise ValueError("bad signature")
    return payload
'''

AUTH_FIXED = AUTH_BUGGY.replace(
    'os.environ.get("JWT_SECRET_KEY", "")  # TODO: load it the way deploy sets it',
    'os.environ.get("JWT_SECRET", "")',
)

TEST_AUTH = '''\
import os
import subprocess
import sys
import unittest


class SecretLoaded(unittest.TestCase):
    def test_reads_jwt_secret(self) -> None:
        code = "import app.auth as a; print(bool(a.SECRET))"
        env = {**os.environ, "JWT_SECRET": "s3"}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout
        self.assertEqual(out.strip(), "True")
'''

SERVER = '''\
"""The HTTP handlers."""

from app import auth


def handle(request: dict) -> dict:
    token = request.get("authorization", "").removeprefix("Bearer ")
    user = auth.validate(token)
    return {"status": 200, "user": user}


def paginate(items: list, page: int, size: int) -> list:
    start = (page - 1) * size
    end = start + size
    chosen = items[start:end]
    total = len(items)
    pages = (total + size - 1) // size
    return {"items": chosen, "page": page, "pages": pages, "total": total}
'''

LEGACY_TAIL = '''

def report_rows(items: list, page: int, size: int) -> list:
    start = (page - 1) * size
    end = start + size
    chosen = items[start:end]
    total = len(items)
    pages = (total + size - 1) // size
    return {"items": chosen, "page": page, "pages": pages, "total": total}
'''


def _legacy() -> str:
    """A long, branchy function (a monthly finding) and a block copied from server.py."""
    body = ['"""Old reporting code."""', "", "", "def classify(order: dict) -> str:",
            "    kind = 'unknown'"]
    for i in range(30):
        body += [f"    if order.get('code') == {i}:  # FIXME: table-driven",
                 f"        kind = 'kind-{i}'"]
    body += ["    return kind"]
    return "\n".join(body) + "\n" + LEGACY_TAIL


TEST_SERVER = '''\
import unittest

from app import server


class Paging(unittest.TestCase):
    def test_pages(self) -> None:
        self.assertEqual(server.paginate(list(range(5)), 1, 2)["pages"], 3)
'''


def git(cwd: Path, *args: str, when: float | None = None) -> str:
    env = {**os.environ}
    if when is not None:
        stamp = f"@{int(when)} +0000"
        env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True, env=env).stdout


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S,") + f"{int(t * 1000) % 1000:03d}"


def write_logs(ws: Path, now: float) -> dict[str, int]:
    """A week and a day of logs in three formats; how many of each error went in."""
    logs = ws / "logs"
    (logs / "sys").mkdir(parents=True, exist_ok=True)
    start = now - 8 * DAY + 60
    counts = {"jwt": 0, "db_last_day": 0}
    app: list[str] = []
    t = start
    n = 0
    while t < now - 60:
        n += 1
        app.append(f"{_stamp(t)} INFO app.http: GET /api/cart/{n % 97} 200 in {n % 40 + 3}ms")
        if n % 6 == 0:  # one an hour, every hour: a steady error, not a spike
            app.append(f"{_stamp(t + 1)} ERROR app.db: connection timeout after "
                       f"{n % 9 + 1}s to 10.0.0.{n % 5 + 2}")
            if now - (t + 1) < DAY:
                counts["db_last_day"] += 1
        if n % 18 == 0:
            app.append(f"{_stamp(t + 2)} WARNING app.cache: cache miss ratio {n % 30}%")
        if now - 10 * HOUR <= t <= now - HOUR and n % 2 == 0:  # the injected spike
            app.append(f"{_stamp(t + 3)} ERROR app.auth: {JWT_ERROR} "
                       f"(request {n:08x}-aaaa-bbbb-cccc-{n:012x})")
            app += ["Traceback (most recent call last):",
                    '  File "app/auth.py", line 16, in validate',
                    '    raise RuntimeError("JWT_SECRET is not set")',
                    "RuntimeError: JWT_SECRET is not set"]
            counts["jwt"] += 1
        t += 10 * 60
    (logs / "app.log").write_text("\n".join(app) + "\n")
    worker: list[str] = []
    t = start
    n = 0
    while t < now - 60:
        n += 1
        iso = datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")
        level = "error" if n % 4 == 0 else "info"
        msg = f"queue full, dropped job {n}" if level == "error" else f"job {n} done"
        worker.append(json.dumps({"ts": iso, "level": level, "msg": msg, "logger": "worker"}))
        t += HOUR
    worker.append('{"ts": "broken json line')
    (logs / "worker.log").write_text("\n".join(worker) + "\n")
    sys_lines: list[str] = []
    t = start
    while t < now - 60:
        stamp = datetime.fromtimestamp(t).strftime("%b %e %H:%M:%S")
        sys_lines.append(f"{stamp} host sshd[{int(t) % 9000}]: error: kex_exchange_identification: "
                         "Connection closed by remote host")
        sys_lines.append(f"{stamp} host CRON[{int(t) % 7000}]: (root) CMD (run-parts /etc/cron.hourly)")
        t += 4 * HOUR
    data = ("\n".join(sys_lines) + "\n").encode() + b"\xff\xfe not text \xc3\n"
    (logs / "sys" / "syslog.log").write_bytes(data)
    return counts


def make_workspace(root: Path, now: float) -> tuple[Path, dict[str, int]]:
    ws = root / "shop"
    (ws / "app").mkdir(parents=True)
    (ws / "tests").mkdir()
    (ws / "app" / "__init__.py").write_text("")
    (ws / "tests" / "__init__.py").write_text("")
    (ws / "Makefile").write_text(
        f".PHONY: test\ntest:\n\t{sys.executable} -m unittest discover -s tests -t . -q\n"
    )
    (ws / ".gitignore").write_text("logs/\n__pycache__/\n")
    git(ws, "init", "-q", "-b", "main")
    git(ws, "config", "user.email", "op@example.com")
    git(ws, "config", "user.name", "Operator")
    # A week of history: auth.py changes in most commits (the churn finding).
    history = [
        (7.5, {"app/auth.py": AUTH_BUGGY.replace("SECRET = ", "SECRET  = "),
               "app/server.py": SERVER, "tests/test_server.py": TEST_SERVER}, "start"),
        (5.2, {"app/auth.py": AUTH_BUGGY.replace("# The secret", "# the secret")}, "auth wording"),
        (3.1, {"app/legacy.py": _legacy()}, "import the reporting code"),
        (2.0, {"app/auth.py": AUTH_BUGGY.replace("hexdigest", "hexdigest")  + "\n"}, "auth ws"),
        (0.4, {"app/auth.py": AUTH_BUGGY}, "read the secret from its new name"),
    ]
    for age, files, message in history:
        for rel, text in files.items():
            (ws / rel).write_text(text)
        git(ws, "add", "-A")
        git(ws, "commit", "-q", "-m", message, when=now - age * DAY)
    counts = write_logs(ws, now)
    return ws, counts


async def seed_store(store: Any, now: float) -> dict[str, Any]:
    """A week of tasks: cost every day, more today; today, failing test runs that quote
    the JWT error (a failure cluster) and slow shell commands (a slow tool)."""
    seeded: dict[str, Any] = {"failed": []}
    for day in range(8):
        t = now - day * DAY - 2 * HOUR
        task_id = f"seed{day:02d}aaaa"
        await store.create_task({"id": task_id, "title": f"tidy module {day}", "workspace": "/x",
                                 "state": "succeeded", "created_at": t, "finished_at": t + 60})
        await store.execute(  # add_usage stamps "now": this spend was on its own day
            "INSERT INTO usage (task_id, ts, model, input_tokens, output_tokens, "
            "cache_creation_input_tokens, cache_read_input_tokens, cost_usd) "
            "VALUES (?, ?, 'claude-sonnet-4-6', 1000, 100, 0, 0, ?)",
            [task_id, t + 30, 2.0 if day == 0 else 0.5],
        )
    for k in range(3):
        task_id = f"fail{k:02d}bbbbbb"
        t = now - (3 + k) * HOUR
        await store.create_task({"id": task_id, "title": f"fix login {k}", "workspace": "/x",
                                 "state": "failed", "created_at": t, "finished_at": t + 300,
                                 "error": "verification failed: tests are red"})
        events = []
        seq = 0
        for step in range(1, 3):
            seq += 1
            events.append({"task_id": task_id, "seq": seq, "ts": t + step * 100, "type": "step",
                           "step": step, "action": "execute_bash", "target": "make migrate"})
            seq += 1
            events.append({"task_id": task_id, "seq": seq, "ts": t + step * 100 + 45,
                           "type": "tool_result", "step": step, "action": "execute_bash",
                           "output": "migrated", "is_error": False})
        seq += 1
        events.append({"task_id": task_id, "seq": seq, "ts": t + 250, "type": "step", "step": 3,
                       "action": "run_tests", "target": ""})
        seq += 1
        events.append({"task_id": task_id, "seq": seq, "ts": t + 260, "type": "tool_result",
                       "step": 3, "action": "run_tests", "is_error": True,
                       "output": f"FAILED tests/test_auth.py::test_login - RuntimeError: "
                                 f"{JWT_ERROR} (run {k})"})
        await store.append_events(events)
        seeded["failed"].append(task_id)
    await store.add_learnings("seed00aaaa", [("pattern", "run make test before finishing"),
                                             ("improvement", "read app/auth.py before changing login")])
    return seeded


@dataclass
class World:
    workspace: Path
    data_dir: Path
    now: float
    counts: dict[str, int]
    seeded: dict[str, Any]
    script: Path

    def env(self) -> dict[str, str]:
        return {"LIVHANA_DATA_DIR": str(self.data_dir)}


async def build(root: Path, config_extra: str = "") -> World:
    from agent.store import Store

    now = time.time()
    ws, counts = make_workspace(root, now)
    data = root / "data"
    data.mkdir()
    script = root / "model.json"
    script.write_text(json.dumps({"scripts": []}))
    (data / "config.toml").write_text(
        f'[engine]\nmodel = "scripted:{script}"\n'
        '[schedules]\ndaily = ""\nweekly = ""\nmonthly = ""\n' + config_extra
    )
    store = await Store.open(data / "livhana.db")
    try:
        seeded = await seed_store(store, now)
    finally:
        await store.close()
    return World(ws, data, now, counts, seeded, script)


def proposal_turn(evidence: list[str], title: str = "Load JWT_SECRET from the environment") -> dict[str, Any]:
    return {"tool_calls": [{"name": "submit_proposals", "input": {"proposals": [{
        "title": title,
        "task": "In app/auth.py SECRET is read from JWT_SECRET_KEY, but deploy sets "
                "JWT_SECRET, so read JWT_SECRET instead, and add tests/test_auth.py "
                "checking that the secret is loaded from JWT_SECRET.",
        "rationale": "Since today every request fails with 'JWT_SECRET is not set': the "
                     "secret is not loaded because auth.py reads the wrong variable.",
        "impact": "high", "effort": "low", "evidence": evidence,
    }]}}], "usage": {"input_tokens": 5000, "output_tokens": 400}}


FIX_TURNS = [
    {"tool_calls": [{"name": "update_plan", "input": {"steps": [
        {"title": "read app/auth.py", "status": "in_progress"},
        {"title": "load JWT_SECRET and test it", "status": "pending"}]}}]},
    {"tool_calls": [{"name": "read_file", "input": {"path": "app/auth.py"}}]},
    {"tool_calls": [{"name": "write_file", "input": {"path": "app/auth.py", "content": AUTH_FIXED}},
                    {"name": "write_file", "input": {"path": "tests/test_auth.py",
                                                     "content": TEST_AUTH}}]},
    {"tool_calls": [{"name": "update_plan", "input": {"steps": [
        {"title": "read app/auth.py", "status": "done"},
        {"title": "load JWT_SECRET and test it", "status": "done"}]}}]},
]


def write_script(world: World, evidence: list[str]) -> None:
    """The scripted model: the weekly review answers with the proposal, the task it
    becomes fixes auth.py and adds a test. (The weekly prompt quotes the JWT error too:
    it is matched first, by its header.)"""
    world.script.write_text(json.dumps({"scripts": [
        {"match": "^Weekly review", "turns": [proposal_turn(evidence)]},
        {"match": "^Monthly refactoring review", "turns": [{"tool_calls": [{
            "name": "submit_proposals", "input": {"proposals": []}}]}]},
        {"match": "JWT_SECRET", "turns": FIX_TURNS, "summary": "auth.py reads JWT_SECRET now."},
    ]}))
