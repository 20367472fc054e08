"""Approval requests: persisted rows, awaited as futures, decided from any process.

A decision is a single atomic UPDATE of the row (first decider wins). The owning engine
resolves its future at once when the decision is made in-process, or within one poll
when another process (the CLI, the cockpit, the API) made it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .store import Store

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
