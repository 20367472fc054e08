"""Approval requests: persisted rows, awaited as futures, decided from any process.

A decision is a single atomic UPDATE of the row (first decider wins). The owning engine
resolves its future at once when the decision is made in-process, or within one poll
when another process (the CLI, the cockpit, the API) made it.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from . import events as ev
from .errors import UsageError
from .policy import NETWORK_RULE
from .sandbox import GRANT, bwrap_available, sandbox_status
from .store import Store

if TYPE_CHECKING:
    from .engine import Engine
    from .run import TaskRun

COMMAND_TOOLS = ("execute_bash", "run_tests", "deploy_code")  # they run shell commands
RISK = {
    "deploy": "high",
    "db_write": "high",
    "db": "high",
    "command": "medium",
    "apply": "medium",
    "stall": "low",
}


class ApprovalDesk:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def request(
        self,
        task_id: str,
        kind: str,
        summary: str,
        detail: dict[str, Any],
        timeout_s: float = 0,
        risk: str | None = None,
    ) -> int:
        approval_id = await self.store.create_approval(
            task_id,
            kind,
            summary,
            detail,
            risk or RISK.get(kind, "medium"),
            timeout_s=timeout_s or None,
        )
        self._waiting[approval_id] = asyncio.get_running_loop().create_future()
        return approval_id

    async def wait(self, approval_id: int, timeout_s: float = 0) -> dict[str, Any]:
        """The decided row. A timeout decides 'denied' by 'timeout'."""
        future = self._waiting[approval_id]
        try:
            if timeout_s:
                return await asyncio.wait_for(asyncio.shield(future), timeout_s)
            return await future
        except TimeoutError:
            await self.store.decide_approval(approval_id, False, "timeout", "no decision in time")
            row = await self.store.get_approval(approval_id)
            assert row is not None
            return row
        finally:
            self._waiting.pop(approval_id, None)

    async def decide(self, approval_id: int, approved: bool, by: str, reason: str = "") -> bool:
        won = await self.store.decide_approval(approval_id, approved, by, reason)
        if won:
            await self._resolve(approval_id)
        return won

    async def _resolve(self, approval_id: int) -> None:
        future = self._waiting.get(approval_id)
        if future and not future.done():
            row = await self.store.get_approval(approval_id)
            if row and row["state"] != "pending":
                future.set_result(row)

    async def poll(self) -> None:
        """Pick up decisions written by other processes."""
        if not self._waiting:
            return
        ids = list(self._waiting)
        marks = ", ".join("?" for _ in ids)
        rows = await self.store.fetch(
            f"SELECT id FROM approvals WHERE id IN ({marks}) AND state != 'pending'", ids
        )
        for row in rows:
            await self._resolve(int(row["id"]))

    def cancel_for(self, approval_ids: list[int]) -> None:
        for approval_id in approval_ids:
            future = self._waiting.get(approval_id)
            if future and not future.done():
                future.cancel()

    @staticmethod
    def now() -> float:
        return time.time()


async def ask(
    engine: Engine, run: TaskRun, kind: str, summary: str, detail: dict[str, Any]
) -> bool:
    """Persist a request, show it, and wait for a decision (rule, operator or timeout).
    The task sits in awaiting_approval meanwhile and returns to its previous state."""
    timeout = engine.config.engine.approval_timeout_s
    tool, rule = detail.get("tool"), detail.get("rule")
    if tool in COMMAND_TOOLS and not bwrap_available():
        # Said before the answer, not after: without bubblewrap this runs with the
        # operator's own rights, everywhere on the machine.
        reason = sandbox_status()["reason"]
        summary = f"UNSANDBOXED (no bubblewrap: {reason}): {summary}"
        await run.emit(ev.WARNING, message=f"UNSANDBOXED command: {reason}", tool=tool)
    if rule == NETWORK_RULE and not engine.config.sandbox.network:
        summary += " (approving gives this one command network access)"
    # Redacted before the row is written: a command or diff may carry a secret (the
    # event below is redacted by the bus; the approvals table is not).
    summary, detail = engine.safety.redact(summary), engine.safety.redact(detail)
    approval_id = await engine.desk.request(run.task_id, kind, summary, detail, timeout)
    run.pending_approvals.append(approval_id)
    risk = (await engine.store.get_approval(approval_id) or {}).get("risk", "medium")
    engine.bus.emit(
        run.task_id,
        ev.APPROVAL_REQUESTED,
        approval_id=approval_id,
        kind=kind,
        summary=summary,
        detail=detail,
        risk=risk,
    )
    if kind == "stall" and run.approve_mode == "auto":
        # Nobody is watching an auto run: a stuck agent must stop, not burn its budget.
        await engine.desk.decide(approval_id, False, "rule:stall under approve=auto")
    elif run.approve_mode in ("auto", "deny"):
        await engine.desk.decide(
            approval_id, run.approve_mode == "auto", f"rule:approve={run.approve_mode}"
        )
    previous = engine._states.get(run.task_id, ev.RUNNING)
    if previous != ev.AWAITING_APPROVAL:
        await engine.transition(run.task_id, ev.AWAITING_APPROVAL, summary)
    try:
        row = await engine.desk.wait(approval_id, timeout)
    finally:
        run.pending_approvals.remove(approval_id)
    approved = row["state"] == "approved"
    by = row["decided_by"] or ""
    run.last_decision = by
    if _self_decided(by):  # an operator's answer is audited where it is made (decide())
        await engine.safety.audit(
            by,
            "approve" if approved else "deny",
            run.task_id,
            {"approval_id": approval_id, "kind": kind, "reason": row.get("reason") or ""},
        )
    run.ctx.state.pop(GRANT, None)
    if approved and tool:
        # What this yes covers: the tool call of this step, once (agent/sandbox.py takes it).
        # Network only when an operator said yes to a request asked for network use.
        network = rule == NETWORK_RULE and not _self_decided(by)
        run.ctx.state[GRANT] = {
            "step": run.ctx.state.get("step"), "tool": tool, "by": by, "network": network,
        }  # fmt: skip
    engine.bus.emit(
        run.task_id,
        ev.APPROVAL_DECIDED,
        approval_id=approval_id,
        kind=kind,
        approved=approved,
        by=row["decided_by"],
        reason=row.get("reason") or "",
    )
    if kind != "apply" and previous != ev.AWAITING_APPROVAL:
        await engine.transition(run.task_id, previous)
    return approved


def _self_decided(by: str) -> bool:
    """Decided by the engine itself (a rule, the timeout), not by a person."""
    return by.startswith("rule:") or by in ("timeout", "interrupted", "")


async def decide(engine: Engine, approval_id: int, approved: bool, by: str, reason: str) -> None:
    """The operator's (or another process's) answer; first decider wins, and it is audited."""
    row = await engine.store.get_approval(approval_id)
    if row is None:
        raise UsageError(f"no approval request {approval_id}")
    if row["state"] != "pending":
        raise UsageError(
            f"approval {approval_id} was already {row['state']} by {row['decided_by']}"
        )
    if await engine.desk.decide(approval_id, approved, by, reason):
        await engine.safety.audit(
            by,
            "approve" if approved else "deny",
            row["task_id"],
            {"approval_id": approval_id, "kind": row["kind"]},
        )
