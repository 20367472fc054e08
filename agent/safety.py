"""The safety façade the engine talks to: policy, redaction, audit, budgets. Each concern
lives in its own module; applying a task and undoing it is agent/changes.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import Any

from . import audit as audit_log
from .config import Config
from .errors import ConfigError
from .policy import Policy
from .redact import Redactor, redact_logs
from .store import Store

log = logging.getLogger(__name__)
BUDGET_REFRESH_S = 2.0
POLICY_CHECK_S = 0.5  # how stale the policy may be: hand edits and other processes' changes


class Safety:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.policy = Policy.load(config.policy_path)
        self.policy_error = ""  # the broken edit being ignored, if any (the last good one rules)
        self._policy_stamp = _stamp(config.policy_path)
        self._policy_checked = time.monotonic()
        # One object for the engine's life: the bus, the log filter and refreshes share it.
        self.redactor = Redactor([])
        redact_logs(self.redactor)
        self._spent, self._spent_at = 0.0, -1e9

    async def load(self) -> None:
        """Slow, blocking look-ups (the keyring, the one-off bubblewrap probe) run in a
        thread, so a cockpit hosting the engine keeps painting meanwhile."""
        from .sandbox import bwrap_available

        await self.refresh_secrets()
        await asyncio.to_thread(bwrap_available)

    async def refresh_secrets(self) -> None:
        """Learn the keyring's and the environment's secrets (again: `secrets set` in another
        process sends a control row, so a running engine redacts the new value too)."""
        from .secrets import known_secret_values

        try:
            values = await asyncio.to_thread(known_secret_values)
        except Exception:  # no keyring backend: still redact the env keys and patterns
            values = []
        self.redactor.add_many(values)

    def redact(self, obj: Any) -> Any:
        return self.redactor.redact_obj(obj)

    def decide(self, tool_name: str, args: dict[str, Any]) -> tuple[str, str]:
        from .sandbox import bwrap_available

        self.reload_policy()
        return self.policy.decide(tool_name, args, sandboxed=bwrap_available())

    def gates(self, tool_name: str) -> list[str]:
        """What can still make a call of this tool ask or be refused (see Policy.gates)."""
        from .sandbox import bwrap_available

        self.reload_policy()
        return self.policy.gates(tool_name, sandboxed=bwrap_available())

    def reload_policy(self, force: bool = False) -> bool:
        """Re-read policy.toml when it changed on disk (checked at most every POLICY_CHECK_S).
        A broken edit never replaces the last good policy: it is logged once and kept in
        `policy_error`. True when a new policy took effect."""
        now = time.monotonic()
        if not force and now - self._policy_checked < POLICY_CHECK_S:
            return False
        self._policy_checked = now
        path = self.config.policy_path
        stamp = _stamp(path)
        if stamp == self._policy_stamp:
            return False
        self._policy_stamp = stamp
        try:
            policy = Policy.load(path)
        except ConfigError as exc:
            self.policy_error = str(exc)
            log.warning("%s; keeping the last good policy until it is fixed", exc)
            return False
        self.policy, self.policy_error = policy, ""
        log.info("policy reloaded from %s (mode %s)", path, policy.mode)
        return True

    async def audit(
        self, actor: str, action: str, task_id: str | None, detail: dict[str, Any]
    ) -> None:
        await audit_log.append(self.store, actor, action, task_id, self.redact(detail))

    async def spent_today(self) -> float:
        today = dt.date.fromtimestamp(time.time())  # the clock the usage rows are stamped by
        midnight = dt.datetime.combine(today, dt.time()).timestamp()
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

    # -- policy edits (Capabilities and Safety panels) ---------------------------------------
    def set_policy(self, tool: str, decision: str) -> None:
        self._fresh_policy().set(tool, decision)
        self._save_policy()

    def set_mode(self, mode: str) -> None:
        if mode not in ("normal", "strict", "yolo"):
            raise ConfigError(f"policy mode must be normal, strict or yolo, not {mode!r}")
        self._fresh_policy().mode = mode
        self._save_policy()

    def _fresh_policy(self) -> Policy:
        # Edit what is on disk now (another process may have changed it a moment ago), and
        # never save over a hand edit that does not parse: that would lose the operator's text.
        self.reload_policy(force=True)
        if self.policy_error:
            raise ConfigError(f"{self.policy_error}; fix the file before changing the policy here")
        return self.policy

    def _save_policy(self) -> None:
        self.policy.save(self.config.policy_path)
        self._policy_stamp = _stamp(self.config.policy_path)

def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino
