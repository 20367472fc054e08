"""The safety façade the engine talks to: policy, redaction, audit, budgets, checkpoints,
applying a task to the operator's workspace. Each concern lives in its own module."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from . import audit as audit_log
from .checkpoints import Checkpoints
from .config import Config
from .policy import Policy
from .redact import Redactor
from .store import Store


class Safety:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.policy = Policy.load(config.policy_path)
        self.redactor = Redactor([])

    async def load(self) -> None:
        from .secrets import known_secret_values

        try:
            values = known_secret_values()
        except Exception:  # no keyring backend: still redact the env key and patterns
            values = []
        self.redactor = Redactor(values)

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

    async def over_daily_budget(self) -> bool:
        return await self.spent_today() >= self.config.engine.daily_budget_usd

    def shadow_dir(self, task_id: str) -> Path:
        return self.config.data_dir / "shadow" / task_id

    def checkpoints_for(self, task_id: str, work_tree: Path) -> Checkpoints:
        return Checkpoints(work_tree, self.shadow_dir(task_id))
