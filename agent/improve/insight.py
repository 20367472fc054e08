"""An insight: one computed finding of a job (`{"id","kind","summary","evidence",...}`).

Its id is derived from what it is about and the day it was found, so the same spike found
twice on one day is one insight (re-running a job replaces it), and a dry run shows the id
a real run would store."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

# Kinds: daily's, then monthly's measurements.
KINDS = (
    "error_spike", "failure_cluster", "slow_tool", "cost", "task_outcomes",
    "large_function", "complex_function", "duplicate_block", "todo_density",
    "untested_module", "churn",
)  # fmt: skip
SHORT = {
    "error_spike": "spike", "failure_cluster": "fail", "slow_tool": "slow", "cost": "cost",
    "task_outcomes": "tasks", "large_function": "large", "complex_function": "complex",
    "duplicate_block": "dup", "todo_density": "todo", "untested_module": "untested",
    "churn": "churn",
}  # fmt: skip


def insight_id(kind: str, key: str, now: float) -> str:
    day = dt.date.fromtimestamp(now).isoformat()
    digest = hashlib.sha1(f"{kind}\0{key}\0{day}".encode(errors="replace")).hexdigest()[:8]
    return f"{SHORT.get(kind, kind)}-{digest}"


def make(kind: str, key: str, now: float, summary: str, evidence: list[str],
         **data: Any) -> dict[str, Any]:
    return {"id": insight_id(kind, key, now), "kind": kind, "summary": summary,
            "evidence": evidence, **data}


def one_line(text: str, width: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"
