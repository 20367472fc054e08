"""The safety façade the engine talks to: policy, redaction, audit, budgets, checkpoints,
applying a task to the operator's workspace. Each concern lives in its own module."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

from . import applyback
from . import audit as audit_log
from .checkpoints import Checkpoints
from .config import Config
from .errors import ConfigError
from .policy import Policy
from .redact import Redactor
from .store import Store
from .workspace import TaskTree

BUDGET_REFRESH_S = 2.0


class Safety:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.policy = Policy.load(config.policy_path)
        self.redactor = Redactor([])
        self._spent, self._spent_at = 0.0, -1e9

    async def load(self) -> None:
        """Slow, blocking look-ups (the keyring, the one-off bubblewrap probe) run in a
        thread, so a cockpit hosting the engine keeps painting meanwhile."""
        from .sandbox import bwrap_available
        from .secrets import known_secret_values

        try:
            values = await asyncio.to_thread(known_secret_values)
        except Exception:  # no keyring backend: still redact the env key and patterns
            values = []
        self.redactor = Redactor(values)
        await asyncio.to_thread(bwrap_available)

    def redact(self, obj: Any) -> Any:
        return self.redactor.redact_obj(obj)

    def decide(self, tool_name: str, args: dict[str, Any]) -> tuple[str, str]:
        from .sandbox import bwrap_available

        return self.policy.decide(tool_name, args, sandboxed=bwrap_available())

    async def audit(
        self, actor: str, action: str, task_id: str | None, detail: dict[str, Any]
    ) -> None:
        await audit_log.append(self.store, actor, action, task_id, self.redact(detail))

    async def spent_today(self) -> float:
        midnight = dt.datetime.combine(dt.date.today(), dt.time()).timestamp()
        return await self.store.spent_since(midnight)

    async def over_daily_budget(self, spent_now: float = 0.0) -> bool:
        """Checked on every model call, so the store's sum (which includes other
        processes' spend) is re-read at most every BUDGET_REFRESH_S; our own spend since
        then is added as it happens."""
        now = time.monotonic()
        if now - self._spent_at > BUDGET_REFRESH_S:
            self._spent, self._spent_at = await self.spent_today(), now
        else:
            self._spent += spent_now
        return self._spent >= self.config.engine.daily_budget_usd

    def shadow_dir(self, task_id: str) -> Path:
        return self.config.data_dir / "shadow" / task_id

    def checkpoints_for(self, task_id: str, work_tree: Path) -> Checkpoints:
        return Checkpoints(work_tree, self.shadow_dir(task_id))

    # -- policy edits (Capabilities and Safety panels) ---------------------------------------
    def set_policy(self, tool: str, decision: str) -> None:
        self.policy.set(tool, decision)
        self.policy.save(self.config.policy_path)

    def set_mode(self, mode: str) -> None:
        if mode not in ("normal", "strict", "yolo"):
            raise ConfigError(f"policy mode must be normal, strict or yolo, not {mode!r}")
        self.policy.mode = mode
        self.policy.save(self.config.policy_path)

    # -- applying a task to the operator's workspace, and undoing it --------------------------
    async def apply(
        self, ws: Path, tree: TaskTree, task: dict[str, Any], plain_files: list[str] | None = None
    ) -> dict[str, Any]:
        if tree.is_git and tree.branch and tree.base_commit:
            return await applyback.apply(
                ws, tree.branch, tree.base_commit, title=task["title"][:60], task_id=task["id"]
            )
        files = {rel: _read(tree.path / rel) for rel in plain_files or []}
        return await applyback.apply_plain(
            ws, files, self.shadow_dir(task["id"]) / "workspace", label=f"task {task['id']}"
        )

    async def unapply(self, ws: Path, record: dict[str, Any]) -> dict[str, Any]:
        return await applyback.rollback_applied(ws, record)


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None
