"""9 · Safety Controls: the emergency stop (big, obvious), re-arm, today's spend against
the daily cap and the tasks that spent it, the policy mode and the audit log's verification.

The audit chain is verified again whenever the panel is shown, after a stop, re-arm or
policy change, and whenever new records arrive while it is shown (in the refresh worker,
never two at once; a long chain is re-checked less often, so checking stays cheap)."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, ProgressBar, Select, Static

from .. import fmt
from ..keys import key_for
from ..widgets import KeyedTable, put
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

FALLBACK_MODES = ("strict", "standard", "permissive")
TOP_SPENDERS = 5
# A re-check of the whole chain waits at least this many times its last duration.
VERIFY_BACKOFF = 10


def policy_modes() -> tuple[str, ...]:
    try:
        from agent import policy
    except ImportError:
        return FALLBACK_MODES
    return tuple(getattr(policy, "MODES", FALLBACK_MODES))


def audit_line(ok: bool, detail: str, checked_at: float) -> str:
    verdict = fmt.paint("✓ intact", "bold $text-success") if ok else fmt.paint(
        "✗ BROKEN", "bold $text-error")
    return f"{verdict} {fmt.escape(detail)}  [dim]checked {fmt.ago(checked_at)}[/]"


def spender_rows(rows: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    return {str(r["task_id"]): (fmt.money(r["cost_usd"]), fmt.state(r.get("state") or ""),
                                fmt.cell(r.get("title") or r["task_id"] or "(no task)", 30))
            for r in rows}


class SafetyScreen(PanelScreen):
    MODE = "safety"
    CSS_PATH = "safety.tcss"
    POLL_S = 2.0
    WATCH = frozenset({"usage"})
    BINDINGS = [
        Binding("r", "rearm", "Re-arm", id="safety.rearm"),
        Binding("v", "verify", "Verify audit", id="safety.verify"),
        Binding("k", "app.secrets", "Secrets", id="safety.secrets"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._modes_loaded = False
        self._verify_next = True  # verify on the next refresh, whatever the head says
        self._audit_head: int | None = None  # the last record id the shown result covers
        self._verify_cost = 0.0
        self._verified_at = 0.0
        self._audit_result: tuple[bool, str, float] | None = None

    def compose_panel(self) -> ComposeResult:
        with Horizontal(classes="panel-body"):
            with Vertical(id="stop-col"):
                yield Button(f"■ EMERGENCY STOP\n({key_for(self.app, 'emergency_stop', 'ctrl+x')}, "
                             "any panel)", id="stop", variant="error")
                yield Static("", id="stop-state")
                yield Button(f"Re-arm ({key_for(self, 'safety.rearm', 'r')})", id="rearm",
                             variant="success")
            with Vertical(id="controls"):
                yield Label("Budget today", classes="section-title")
                yield ProgressBar(total=1, show_eta=False, show_percentage=True, id="budget")
                yield Static("", id="budget-text")
                yield KeyedTable(("Spent", 9), ("State", 17), ("Top spenders today", 30),
                                 id="spenders", cursor_type="none")
                yield Label("Policy mode", classes="section-title")
                yield Select([], prompt="policy mode", allow_blank=True, id="mode")
                yield Static("", id="policy-error")
                yield Label("Audit log", classes="section-title")
                yield Static("[dim]verifying…[/]", id="audit")
                yield Button(f"Verify audit chain ({key_for(self, 'safety.verify', 'v')})", id="verify")

    def body_mounted(self) -> None:
        self.watch(self.app, "halted", self._show_halted, init=True)

    def _show_halted(self, halted: bool) -> None:
        stop_key = fmt.paint("HALTED", "bold $text-error") if halted else fmt.paint(
            "ARMED", "bold $text-success")
        self.query_one("#stop-state", Static).update(
            f"{stop_key}: running work was killed; queued work is held.\n"
            "Re-arm when it is safe to continue." if halted else
            f"{stop_key}: tasks run normally.\n" +
            f"{key_for(self.app, 'emergency_stop', 'ctrl+x')} stops everything, from any panel.")
        self.query_one("#rearm", Button).disabled = not halted
        self.set_class(halted, "-halted")
        self._reverify()  # a stop or re-arm writes an audit record

    def on_screen_resume(self) -> None:
        self._verify_next = True
        super().on_screen_resume()

    def _reverify(self) -> None:
        self._verify_next = True
        self.request_refresh()

    async def refresh_data(self, engine: Engine) -> None:
        budget = await engine.budget()
        spent, cap = float(budget.get("spent_today", 0)), float(budget.get("daily_cap", 0) or 0)
        self.query_one("#budget", ProgressBar).update(total=max(cap, 1e-9), progress=min(spent, cap))
        task_cap = budget.get("task_cap")
        put(self.query_one("#budget-text", Static),
            f"{fmt.money(spent)} spent of {fmt.money(cap)} daily cap"
            + (f" · {fmt.money(task_cap)} per task" if task_cap else ""))
        midnight = dt.datetime.combine(dt.date.fromtimestamp(fmt.now()), dt.time()).timestamp()
        spenders = spender_rows(await engine.views.spend_by_task(midnight, TOP_SPENDERS))
        table = self.query_one("#spenders", KeyedTable)
        table.sync(spenders)
        table.display = bool(spenders)
        select = self.query_one("#mode", Select)
        if not self._modes_loaded:
            modes = list(dict.fromkeys([*policy_modes(), engine.policy_mode]))
            with self.prevent(Select.Changed):
                select.set_options([(m, m) for m in modes])
                select.value = engine.policy_mode
            self._modes_loaded = True
        # A broken hand edit of policy.toml is ignored (the last good policy rules): say so.
        error = engine.safety.policy_error
        note = self.query_one("#policy-error", Static)
        put(note, fmt.paint(f"policy.toml ignored: {error}", "bad") if error else "")
        note.display = bool(error)
        await self._check_audit(engine)

    async def _check_audit(self, engine: Engine) -> None:
        rows = await engine.store.fetch("SELECT COALESCE(MAX(id), 0) AS head FROM audit")
        head = int(rows[0]["head"]) if rows else 0
        moved = head != self._audit_head
        rested = time.monotonic() - self._verified_at >= VERIFY_BACKOFF * self._verify_cost
        if self._verify_next or (moved and rested):
            self._verify_next = False
            started = time.monotonic()
            ok, detail = await engine.audit_verify()
            self._verified_at = time.monotonic()
            self._verify_cost = self._verified_at - started
            self._audit_head = head
            self._audit_result = (ok, detail, fmt.now())
        if self._audit_result is not None:
            put(self.query_one("#audit", Static), audit_line(*self._audit_result))

    @on(Button.Pressed, "#stop")
    async def _stop(self) -> None:
        await self.cockpit.action_emergency_stop()
        self._reverify()

    @on(Button.Pressed, "#rearm")
    async def action_rearm(self) -> None:
        if self.cockpit.halted:
            await self.cockpit.action_rearm()
            self._reverify()

    @on(Button.Pressed, "#verify")
    def action_verify(self) -> None:
        self._reverify()

    @on(Select.Changed, "#mode")
    def _mode(self, event: Select.Changed) -> None:
        engine = self.engine
        if engine is None or event.value is Select.BLANK or event.value == engine.policy_mode:
            return
        mode = str(event.value)
        self.act(lambda e: e.set_policy_mode(mode), done=f"Policy mode: {mode}",
                 then=lambda _result: self._reverify())
