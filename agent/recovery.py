"""After a crash: settle the applies and rollbacks whose process died mid-way.

Each left a journal (agent/journal.py) in the data dir. On every engine start, and before a
`rollback` of the task, each orphaned journal is finished (past its commit point) or undone
(before it) by agent/applyback.py, and then the task's record is made to say which: its
state, `options.applied`, a `warning` event naming what happened, and an audit entry by
"recovery". A task whose apply was undone ends `interrupted`, with the workspace as before;
one whose apply was finished ends `succeeded`, with `options.applied`, so `rollback` undoes
it like any other. A rollback that was undone leaves the task as it was (applied): running
`rollback` again does all of it.

    messages = await recover_journals(engine)             # every orphan
    messages = await recover_journals(engine, task_id)    # that task's only
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import applyback
from . import events as ev
from .journal import Journal, orphans

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)


async def recover_journals(engine: Engine, task_id: str | None = None) -> list[str]:
    messages = []
    for journal in orphans(engine.safety.journal_dir, task_id):
        try:
            outcome = await applyback.recover(journal)
        except Exception as exc:  # the workspace may be gone, git broken: say so, keep it
            log.error("could not recover %s (%s): %s", journal.op, journal.path, exc)
            journal.release()
            continue
        try:
            await _record(engine, journal, outcome)
        except Exception as exc:  # e.g. a full disk: the journal stays, the next start retries
            log.error("could not record the recovery of %s: %s", journal.op, exc)
            journal.release()
            continue
        journal.close()
        messages.append(outcome["message"])
    return messages


async def _record(engine: Engine, journal: Journal, outcome: dict[str, Any]) -> None:
    data = journal.data
    task_id = str(data.get("task_id") or "")
    task = await engine.store.get_task(task_id) if task_id else None
    what = outcome["outcome"]
    message = f"{_cause(data)}; {outcome['message']}"
    log.warning("task %s: %s", task_id or "?", message)
    detail = {"journal": journal.op, "outcome": what, "message": message,
              "kept": outcome["kept"]}  # fmt: skip
    if task is None:  # a journal of another store: the workspace is settled, nothing to record
        return
    await engine.bus.adopt(task_id)
    engine._states[task_id] = task["state"]
    engine.bus.emit(task_id, ev.WARNING, message=message, recovered=what)
    if data["kind"] == "apply":
        await _record_apply(engine, task, outcome, message, detail)
    else:
        await _record_rollback(engine, task, outcome, message, detail)
    await engine.bus.flush()


async def _record_apply(
    engine: Engine, task: dict[str, Any], outcome: dict[str, Any], message: str, detail: Any
) -> None:
    task_id, what = task["id"], outcome["outcome"]
    record = {k: v for k, v in outcome["result"].items() if k != "journal"}
    if what == "finished":
        options = {**task["options"], "applied": record}
        await engine.store.update_task(task_id, options=options, error=None)
        await engine.audit("recovery", "apply", task_id, {**record, **detail})
        if task["state"] != ev.SUCCEEDED:
            await engine.transition(task_id, ev.SUCCEEDED)
            await engine._complete(task_id, True, message, list(record.get("files", [])))
        return
    await engine.audit("recovery", "apply_undone", task_id, detail)
    if task["state"] in ev.LIVE_STATES:  # applying when its process died
        branch = f"; the task's change stays on branch {task['branch']}" if task["branch"] else ""
        await engine.transition(task_id, ev.INTERRUPTED, message + branch)
        await engine._complete(task_id, False, f"interrupted: {message}{branch}")


async def _record_rollback(
    engine: Engine, task: dict[str, Any], outcome: dict[str, Any], message: str, detail: Any
) -> None:
    task_id, what = task["id"], outcome["outcome"]
    result = outcome["result"]
    if what != "finished":
        await engine.audit("recovery", "rollback_undone", task_id, detail)
        return
    await engine.audit("recovery", "rollback", task_id, {"applied": True, **detail,
                       "action": result.get("action")})  # fmt: skip
    if task["state"] != ev.ROLLED_BACK:
        engine.bus.emit(task_id, ev.ROLLBACK, message=result.get("message", message),
                        applied=True, by="recovery")  # fmt: skip
        await engine.transition(task_id, ev.ROLLED_BACK, result.get("message", message))


def _cause(data: dict[str, Any]) -> str:
    word = "applying" if data.get("kind") == "apply" else "rolling back"
    return f"the process {word} this task (pid {data.get('pid', '?')}) stopped mid-way"
