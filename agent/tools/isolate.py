"""Heavy tool work in a killable child process: a model's regex, a walk of a huge tree.

Python's `re` can backtrack for hours on a crafted pattern, holding the GIL all along: in a
thread (asyncio.to_thread) nothing can stop it, and the whole engine (cancel, the
emergency stop, heartbeats) freezes with it. In a child it is bounded by a wall-clock
limit, by CPU, memory and file-size rlimits, and it dies with its process group on cancel
or stop (it runs through the task's ProcessGroups like any command).

The child is our own code (agent/tools/isolate_main.py) started with `python -I`: the
worktree is not on its import path, PYTHON* variables are ignored, and its environment
holds no secret. It reads the job as JSON on stdin and writes JSON lines on stdout,
flushed as it goes, so whatever it found before a time-out is still there.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ToolError
from .base import ToolContext

PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # the folder holding agent/
MEMORY_LIMIT = 2 << 30  # address space of the child, bytes
MAX_TIMEOUT_S = 120.0
Emit = Callable[[dict[str, Any]], None]  # how a job in the child reports a record
PROGRESS = b'{"at": '  # a progress record: where the job is (json.dumps writes it so)
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); from agent.tools.isolate_main import main; main()"
)


@dataclass
class Outcome:
    records: list[dict[str, Any]] = field(default_factory=list)
    timed_out: bool = False
    killed: bool = False  # by a stop or cancel
    error: str | None = None  # the child failed (out of memory, a bug)
    seconds: float = 0.0

    def last(self, key: str) -> Any:
        """The last record's value for `key`, if any record has it."""
        for record in reversed(self.records):
            if key in record:
                return record[key]
        return None


def time_limit(ctx: ToolContext) -> float:
    return float(min(ctx.config.engine.command_timeout_s, MAX_TIMEOUT_S))


async def run_job(
    ctx: ToolContext, job: dict[str, Any], timeout_s: float, memory: int = MEMORY_LIMIT
) -> Outcome:
    """Run `job` (see isolate_main.JOBS) in a child; its records, and how it ended."""
    argv = [sys.executable, "-I", "-X", "utf8", "-c", _BOOT, PACKAGE_PARENT]
    env = {"PATH": os.defpath, "LC_ALL": "C.UTF-8"}
    payload = {**job, "limits": {"seconds": timeout_s, "memory": memory}}
    # ensure_ascii: a lone surrogate (a non-UTF-8 file name) survives the trip as \\udcXX.
    stdin = json.dumps(payload, ensure_ascii=True).encode()
    done = await ctx.procs.run(argv, cwd=Path("/"), timeout_s=timeout_s, env=env, stdin=stdin)
    out = Outcome(timed_out=done.timed_out, killed=done.killed, seconds=done.seconds)
    lines = done.stdout.splitlines()
    last_progress = max(
        (i for i, line in enumerate(lines) if line.startswith(PROGRESS)), default=-1
    )
    for i, line in enumerate(lines):
        if i != last_progress and line.startswith(PROGRESS):
            continue  # one per file walked: only the last says where a time-out struck
        try:
            record = json.loads(line)
        except ValueError:  # the last line, cut by the kill
            continue
        if isinstance(record, dict):
            out.records.append(record)
    failed = out.last("fatal")
    if failed:
        out.error = str(failed)
    elif done.returncode != 0 and not (done.timed_out or done.killed):
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        out.error = f"exit code {done.returncode}: {tail[0][:300]}"
    refused = out.last("refused")
    if refused:
        raise ToolError(str(refused))
    return out
