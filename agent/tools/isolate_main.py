"""The child side of agent/tools/isolate.py: limits itself, runs one job, prints JSON lines.

Records: anything a job writes, plus {"refused": message} (a ToolError: the path was
refused, say) and {"fatal": message} (out of memory, a bug)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
from collections.abc import Callable
from typing import Any

from ..errors import ToolError
from .isolate import Emit


def _limit(job: dict[str, Any]) -> None:
    limits = job.get("limits") or {}
    seconds = int(float(limits.get("seconds", 60))) + 5  # the parent's wall clock comes first
    for name, value in (
        (resource.RLIMIT_CPU, seconds),
        (resource.RLIMIT_AS, int(limits.get("memory", 2 << 30))),
        (resource.RLIMIT_FSIZE, 0),  # it only reads
        (resource.RLIMIT_CORE, 0),
    ):
        with contextlib.suppress(ValueError, OSError):  # a lower hard limit already holds
            resource.setrlimit(name, (value, value))
    with contextlib.suppress(OSError):
        os.nice(5)  # the engine and the operator's shell come first on a busy machine


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, ensure_ascii=True) + "\n")
    sys.stdout.flush()


def jobs() -> dict[str, Callable[[dict[str, Any], Emit], None]]:
    from . import analyze_logs, search_codebase

    return {"search": search_codebase.scan, "logs": analyze_logs.scan}


def main() -> None:
    job = json.loads(sys.stdin.buffer.read())
    _limit(job)
    try:
        jobs()[job["kind"]](job, _emit)
    except ToolError as exc:
        _emit({"refused": str(exc)})
    except MemoryError:
        _emit({"fatal": f"out of memory (limit {int(job['limits']['memory']) >> 20} MiB)"})
    except RecursionError:
        _emit({"fatal": "the pattern is nested too deeply"})
    except Exception as exc:  # a bug of ours: one line for the model, not a traceback
        _emit({"fatal": f"{type(exc).__name__}: {exc}"[:500]})
