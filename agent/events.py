"""Event and task-state vocabulary shared by the engine, the store, the CLI, the API and the UI.

One event is a plain dict: {"task_id", "seq", "ts", "type", ...payload} (see DESIGN.md).
"""

from __future__ import annotations

import time
from typing import Any

# Event types.
ANALYSIS = "analysis"
THINKING = "thinking"
TEXT = "text"
PLAN = "plan"
STEP = "step"
TOOL_RESULT = "tool_result"
PROGRESS = "progress"
APPROVAL_REQUESTED = "approval_requested"
APPROVAL_DECIDED = "approval_decided"
VERIFICATION = "verification"
USAGE = "usage"
LEARNING = "learning"
ROLLBACK = "rollback"
CHECKPOINT = "checkpoint"
STATUS = "status"
WARNING = "warning"
ERROR = "error"
COMPLETE = "complete"

# Task states.
QUEUED = "queued"
PLANNING = "planning"
RUNNING = "running"
VERIFYING = "verifying"
AWAITING_APPROVAL = "awaiting_approval"
APPLYING = "applying"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
ROLLED_BACK = "rolled_back"
INTERRUPTED = "interrupted"

LIVE_STATES = (QUEUED, PLANNING, RUNNING, VERIFYING, AWAITING_APPROVAL, APPLYING)
END_STATES = (SUCCEEDED, FAILED, CANCELLED, ROLLED_BACK, INTERRUPTED)
ALL_STATES = LIVE_STATES + END_STATES

# Forward path; any live state may also go to failed/cancelled/interrupted.
# A task pauses in awaiting_approval mid-run too (a risky command) and then resumes;
# a task run without applying goes straight from its last working state to succeeded.
_FORWARD = {
    QUEUED: {PLANNING},
    PLANNING: {RUNNING, AWAITING_APPROVAL},
    RUNNING: {VERIFYING, AWAITING_APPROVAL, SUCCEEDED},
    VERIFYING: {RUNNING, AWAITING_APPROVAL, SUCCEEDED},
    AWAITING_APPROVAL: {APPLYING, PLANNING, RUNNING, VERIFYING},
    APPLYING: {SUCCEEDED},
}


def can_transition(old: str, new: str) -> bool:
    if old in LIVE_STATES and new in (FAILED, CANCELLED, INTERRUPTED, ROLLED_BACK):
        return True
    if old in (SUCCEEDED, FAILED, CANCELLED, INTERRUPTED) and new == ROLLED_BACK:
        return True
    return new in _FORWARD.get(old, set())


def make_event(task_id: str, seq: int, type_: str, **payload: Any) -> dict[str, Any]:
    return {"task_id": task_id, "seq": seq, "ts": round(time.time(), 6), "type": type_, **payload}
