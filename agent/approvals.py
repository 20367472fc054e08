"""Approval requests: persisted rows, awaited as futures, decided from any process.

A decision is a single atomic UPDATE of the row (first decider wins). The owning engine
resolves its future at once when the decision is made in-process, or within one poll
when another process (the CLI, the cockpit, the API) made it.

Every decider learns whether it won: `decide` returns the row it wrote, or raises
`AlreadyDecided` naming who decided first and what (an operator elsewhere, the timeout, a
rule, or the task stopping and closing the request). No front end reports a decision that
did not take effect.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import events as ev
from .errors import UsageError
from .policy import NETWORK_RULE
from .risk import rate
from .sandbox import bwrap_available, sandbox_status

if TYPE_CHECKING:
    from .bus import EventBus
    from .config import Config
    from .safety import Safety
    from .store import Store
    from .taskbook import TaskBook

COMMAND_TOOLS = ("execute_bash", "run_tests", "deploy_code")  # they run shell commands


@dataclass(frozen=True)
class Decision:
    """How a request was decided, for the run that asked."""

    approved: bool
    by: str  # an operator, "rule:approve=auto", "timeout", "nobody (stdin closed)", ...
    # The yes covers network use for this one call: an operator (not a rule) approved a
    # request that asked because the command wants the network.
    network: bool = False


# Reasons agent/control.py gives when it closes the open requests of a task that stopped
# (cancel, emergency stop, engine shut down) or whose engine died.
CLOSED_REASONS = ("task stopped", "the process running it stopped")


class AlreadyDecided(UsageError):
    """A decision lost: the request was decided first by someone else (the message says by
    whom and what), or there was none left to decide. `won` lists what this call did
    decide when it covered several requests."""

    def __init__(self, message: str, won: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.won = won or []


def verdict(row: dict[str, Any], now: float | None = None) -> str:
    """How a request was decided, for whoever comes after: 'denied by cli (pid 7), 2 s ago',
    'denied by timeout (no decision in time), ...', 'closed unanswered when its task
    stopped (cancelled by cli), ...'."""
    by = row.get("decided_by") or "someone else"
    reason = row.get("reason") or ""
    if reason in CLOSED_REASONS:
        text = f"closed unanswered when its task stopped ({by})"
    else:
        text = f"{row['state']} by {by}" + (f" ({reason})" if reason else "")
    if row.get("decided_at"):
        text += f", {_ago((now or time.time()) - float(row['decided_at']))} ago"
    return text


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


class ApprovalDesk:
    """The approval desk: every request this engine's tasks wait on, from asking to the
    decision in their stream. It owns the requests in flight (a future per request) and
    knows which task each one belongs to, so a task that stops closes its own."""

    def __init__(
        self, config: Config, store: Store, bus: EventBus, book: TaskBook, safety: Safety
    ) -> None:
        self.config, self.store, self.bus, self.book, self.safety = (
            config, store, bus, book, safety,
        )  # fmt: skip
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._task_of: dict[int, str] = {}  # request in flight -> its task
        # Requests of a stopping task (see `stop_waiting`) whose decision its run still
        # announced: closing them must not announce it twice.
        self._closing: set[int] = set()
        self._announced: set[int] = set()

    # -- a task asks ------------------------------------------------------------------------
    async def ask(
        self, task_id: str, approve_mode: str, kind: str, summary: str, detail: dict[str, Any]
    ) -> Decision:
        """Persist a request, show it, and wait for a decision (rule, operator or timeout).
        The task sits in awaiting_approval meanwhile and returns to its previous state."""
        timeout = self.config.engine.approval_timeout_s
        tool, rule = detail.get("tool"), detail.get("rule")
        if tool in COMMAND_TOOLS and not bwrap_available():
            # Said before the answer, not after: without bubblewrap this runs with the
            # operator's own rights, everywhere on the machine.
            reason = sandbox_status()["reason"]
            summary = f"UNSANDBOXED (no bubblewrap: {reason}): {summary}"
            self.bus.emit(task_id, ev.WARNING, message=f"UNSANDBOXED command: {reason}", tool=tool)
        if rule == NETWORK_RULE and not self.config.sandbox.network:
            summary += " (approving gives this one command network access)"
        # Redacted before the row is written: a command or diff may carry a secret (the
        # event below is redacted by the bus; the approvals table is not).
        summary, detail = self.safety.redact(summary), self.safety.redact(detail)
        approval_id = await self._request(task_id, kind, summary, detail, timeout)
        risk = (await self.store.get_approval(approval_id) or {}).get("risk", "medium")
        self.bus.emit(
            task_id,
            ev.APPROVAL_REQUESTED,
            approval_id=approval_id,
            kind=kind,
            summary=summary,
            detail=detail,
            risk=risk,
        )
        if kind == "stall" and approve_mode == "auto":
            # Nobody is watching an auto run: a stuck agent must stop, not burn its budget.
            await self._decide(approval_id, False, "rule:stall under approve=auto")
        elif approve_mode in ("auto", "deny"):
            await self._decide(approval_id, approve_mode == "auto", f"rule:approve={approve_mode}")
        previous = self.book.state_of(task_id) or ev.RUNNING
        if previous != ev.AWAITING_APPROVAL:
            await self.book.transition(task_id, ev.AWAITING_APPROVAL, summary)
        row = await self._wait(approval_id, timeout)
        approved = row["state"] == "approved"
        by = row["decided_by"] or ""
        # Said at once, in the same step as the wait's end: a stop closing this request later
        # must know the decision is in the stream already (see `close`).
        self._announce(task_id, row)
        if _self_decided(by):  # an operator's answer is audited where it is made (decide())
            await self.safety.audit(
                by,
                "approve" if approved else "deny",
                task_id,
                {"approval_id": approval_id, "kind": kind, "reason": row.get("reason") or ""},
            )
        if kind != "apply" and previous != ev.AWAITING_APPROVAL:
            await self.book.transition(task_id, previous)
        # Network only when an operator said yes to a request asked for network use.
        network = approved and rule == NETWORK_RULE and not _self_decided(by)
        return Decision(approved, by, network)

    async def _request(
        self, task_id: str, kind: str, summary: str, detail: dict[str, Any], timeout_s: float = 0
    ) -> int:
        approval_id = await self.store.create_approval(
            task_id,
            kind,
            summary,
            detail,
            rate(kind, detail),
            timeout_s=timeout_s or None,
        )
        self._waiting[approval_id] = asyncio.get_running_loop().create_future()
        self._task_of[approval_id] = task_id
        return approval_id

    async def _wait(self, approval_id: int, timeout_s: float = 0) -> dict[str, Any]:
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
            self._task_of.pop(approval_id, None)

    async def _decide(self, approval_id: int, approved: bool, by: str, reason: str = "") -> bool:
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

    def pending_of(self, task_id: str) -> list[int]:
        """The requests the task is waiting on now."""
        return [a for a, t in self._task_of.items() if t == task_id]

    # -- a task stops -------------------------------------------------------------------------
    def stop_waiting(self, task_id: str) -> list[int]:
        """The task is stopping: it waits on none of its requests any more. Their ids, to
        `close` once it is stopped (left "pending" they would sit in the queue forever)."""
        ids = self.pending_of(task_id)
        self._closing.update(ids)
        for approval_id in ids:
            future = self._waiting.get(approval_id)
            if future and not future.done():
                future.cancel()
        return ids

    async def close(
        self, task_id: str, approval_id: int, by: str, reason: str, kind: str = ""
    ) -> None:
        """Deny a request its task can no longer act on, if still pending: audited, and its
        decision in the stream too, so every follower (the cockpit's pending count, `run
        --approve ask`) sees it leave the queue."""
        self._closing.discard(approval_id)
        announced = approval_id in self._announced
        self._announced.discard(approval_id)
        if not await self.store.decide_approval(approval_id, False, by, reason):
            if not announced:  # decided just before: said here, once (see `_announce_winner`)
                await self._announce_winner(task_id, approval_id)
            return
        detail = {"approval_id": approval_id, **({"kind": kind} if kind else {}), "reason": reason}
        await self.safety.audit(by, "deny", task_id, detail)
        self.bus.emit(task_id, ev.APPROVAL_DECIDED, approval_id=approval_id, approved=False,
                      by=by, reason=reason, **({"kind": kind} if kind else {}))  # fmt: skip

    def _announce(self, task_id: str, row: dict[str, Any]) -> None:
        """The request's decision, into the task's stream."""
        if row["id"] in self._closing:
            self._announced.add(row["id"])
        self.bus.emit(
            task_id,
            ev.APPROVAL_DECIDED,
            approval_id=row["id"],
            kind=row["kind"],
            approved=row["state"] == "approved",
            by=row["decided_by"],
            reason=row.get("reason") or "",
        )

    async def _announce_winner(self, task_id: str, approval_id: int) -> None:
        """A stop closing a task's request lost to a decision made just before it (the
        operator approved as the task was cancelled): the task never got to say so itself,
        so the stream would lack the decision that won."""
        row = await self.store.get_approval(approval_id)
        if row is not None and row["state"] != "pending":
            self._announce(task_id, row)

    # -- an operator (or another process) decides -----------------------------------------------
    async def decide(
        self, approval_id: int, approved: bool, by: str, reason: str = ""
    ) -> dict[str, Any]:
        """The operator's (or another process's) answer: the decided row when it won,
        audited; AlreadyDecided naming the winner when someone decided first. No read before
        the write: the UPDATE alone says who won, so no interleaving reports a lost decision."""
        if await self._decide(approval_id, approved, by, reason):
            row = await self.store.get_approval(approval_id)
            assert row is not None
            await self.safety.audit(
                by,
                "approve" if approved else "deny",
                row["task_id"],
                {"approval_id": approval_id, "kind": row["kind"], **({"reason": reason} if reason else {})},
            )
            return row
        row = await self.store.get_approval(approval_id)
        if row is None:
            raise UsageError(f"no approval request {approval_id}")
        verb = "approve" if approved else "deny"
        raise AlreadyDecided(
            f"request #{approval_id} was already {verdict(row)}; your {verb} was not applied"
        )

    async def decide_task(
        self, task: dict[str, Any], approved: bool, by: str, reason: str = ""
    ) -> list[dict[str, Any]]:
        """Decide every pending request of a task (the CLI's approve/deny TASK_ID): the rows
        this call decided. AlreadyDecided when it decided none of them, or lost some (then
        `won` holds the rest), naming each winner; with nothing pending it says why: the
        task ended, or its last request was decided already."""
        pending = await self.store.approvals("pending", task_id=task["id"])
        if not pending:
            why = await self._why_none(task)
            raise AlreadyDecided(f"task {task['id']} has no pending approval: {why}")
        won: list[dict[str, Any]] = []
        lost: list[str] = []
        for row in pending:
            try:
                won.append(await self.decide(row["id"], approved, by, reason))
            except AlreadyDecided as exc:
                lost.append(str(exc))
        if lost:
            raise AlreadyDecided("; ".join(lost), won)
        return won

    async def _why_none(self, task: dict[str, Any]) -> str:
        """Why a task has nothing to decide, in words: its state and its last request."""
        latest = await self.store.approvals(None, task_id=task["id"], limit=1)
        last = f"its last request #{latest[0]['id']} was {verdict(latest[0])}" if latest else ""
        if task["state"] in ev.END_STATES:
            said = " ".join(str(task.get("error") or "").split())  # one line, however it was
            error = f": {said[:300]}" if said else ""
            return f"it already ended ({task['state']}{error})" + (f"; {last}" if last else "")
        return last or f"it has not asked for any (it is {task['state']})"


def _self_decided(by: str) -> bool:
    """Decided by the engine itself (a rule, the timeout), not by a person."""
    return by.startswith("rule:") or by in ("timeout", "interrupted", "")
