"""Which log files the daily job reads, and reading them in a child process.

Patterns come from config `[improve] logs` (default `logs/**/*.log` and `*.log`): relative
ones are globs over the workspace (`**` is any number of folders), absolute ones the
operator's own paths. The reading (agent/improve/logscan.py) runs in a child process: it is
CPU-bound for seconds on big logs, and in a thread it would hold the GIL the engine's
control loop (stop, cancel, heartbeats) needs; a child can also use a second core, and it
dies with the job when the job is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from ..errors import CockpitError

MAX_FILES = 1000
SKIP_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv", "venv", ".tox",
                       ".mypy_cache", ".pytest_cache", ".livhana"})
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # the folder holding agent/
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from agent.improve.logscan import main; main()"
CHILD_MEMORY = 1 << 30


def _pattern(glob_text: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(glob_text):
        if glob_text.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob_text.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob_text[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob_text[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob_text[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def find_logs(workspace: Path, patterns: list[str], avoid: list[Path] | None = None,
              limit: int = MAX_FILES) -> list[tuple[str, str]]:
    """(path to open, name to show) of every regular file a pattern matches, sorted."""
    found: dict[str, str] = {}
    avoid_real = {os.path.realpath(a) for a in (avoid or [])}
    for raw in patterns:
        pat = os.path.expanduser(raw.strip())
        if not pat:
            continue
        if os.path.isabs(pat):  # the operator's own path: read where it points
            for p in sorted(glob.glob(pat, recursive=True)):
                if os.path.isfile(p):
                    found.setdefault(p, p)
            continue
        parts = pat.split("/")
        fixed = []
        for part in parts[:-1]:
            if any(c in part for c in "*?["):
                break
            fixed.append(part)
        top = workspace.joinpath(*fixed) if fixed else workspace
        if not top.is_dir() or ".." in parts:
            continue
        matcher = _pattern(pat)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(
                d for d in dirnames
                if d not in SKIP_DIRS and os.path.realpath(os.path.join(dirpath, d)) not in avoid_real
            )
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, workspace)
                if matcher.match(rel) and os.path.isfile(full):
                    found.setdefault(full, rel)
                    if len(found) >= limit:
                        return sorted(found.items(), key=lambda kv: kv[1])
    return sorted(found.items(), key=lambda kv: kv[1])


class LogScanError(CockpitError):
    """The log reading child failed (out of memory, killed)."""


async def scan_logs(files: list[tuple[str, str]], now: float, days: int = 7,
                    workers: int | None = None) -> dict[str, Any]:
    """The merged scan of `files` (agent/improve/logscan.Scan.as_dict), read by a child."""
    if not files:
        from .logscan import Scan

        return Scan(now=now, days=days).as_dict()
    workers = workers or min(2, os.cpu_count() or 1)
    job = {"files": files, "now": now, "days": days, "workers": workers, "memory": CHILD_MEMORY}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-X", "utf8", "-c", _BOOT, PACKAGE_PARENT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={"PATH": os.defpath, "LC_ALL": "C.UTF-8"},
        start_new_session=True,  # its workers die with it (the process group is killed)
    )
    try:
        out, err = await proc.communicate(json.dumps(job, ensure_ascii=True).encode())
    except BaseException:  # cancelled (a stop, the daemon shutting down): nothing outlives us
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())
        raise
    try:
        result = json.loads(out)
    except ValueError:
        tail = err.decode(errors="replace").strip().splitlines()
        raise LogScanError(
            f"reading the logs failed (exit {proc.returncode}): {tail[-1] if tail else 'no output'}"
        ) from None
    if "error" in result:
        raise LogScanError(f"reading the logs failed: {result['error']}")
    return dict(result["scan"])
