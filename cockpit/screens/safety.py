"""9 · Safety Controls: the emergency stop (big, obvious), re-arm, today's spend against
the daily cap, the policy mode and the audit log's verification."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, ProgressBar, Select, Static

from .. import fmt
from ..widgets import put
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

FALLBACK_MODES = ("strict", "standard", "permissive")


def policy_modes() -> tuple[str, ...]:
    try:
        from agent import policy
    except ImportError:
        return FALLBACK_MODES
    return tuple(getattr(policy, "MODES", FALLBACK_MODES))


class SafetyScreen(PanelScreen):
    MODE = "safety"
    CSS_PATH = "safety.tcss"
    POLL_S = 5.0
    WATCH = frozenset({"usage"})
    BINDINGS = [
        Binding("r", "rearm", "Re-arm", id="safety.rearm"),
        Binding("v", "verify", "Verify audit", id="safety.verify"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._modes_loaded = False
        self._verified = False

    def compose_panel(self) -> ComposeResult:
        with Horizontal(classes="panel-body"):
            with Vertical(id="stop-col"):
                yield Button("■ EMERGENCY STOP\n(ctrl+x, any panel)", id="stop", variant="error")
                yield Static("", id="stop-state")
                yield Button("Re-arm (r)", id="rearm", variant="success")
            with Vertical(id="controls"):
                yield Label("Budget today", classes="section-title")
                yield ProgressBar(total=1, show_eta=False, show_percentage=True, id="budget")
                yield Static("", id="budget-text")
                yield Label("Policy mode", classes="section-title")
                yield Select([], prompt="policy mode", allow_blank=True, id="mode")
                yield Label("Audit log", classes="section-title")
                yield Static("[dim]not verified yet (v)[/]", id="audit")
                yield Button("Verify audit chain (v)", id="verify")

    def body_mounted(self) -> None:
        self.watch(self.app, "halted", self._show_halted, init=True)

    def _show_halted(self, halted: bool) -> None:
        self.query_one("#stop-state", Static).update(
            "[b red]HALTED[/]: running work was killed; queued work is held.\n"
            "Re-arm when it is safe to continue." if halted else
            "[b green]ARMED[/]: tasks run normally.\nctrl+x stops everything, from any panel.")
        self.query_one("#rearm", Button).disabled = not halted
        self.set_class(halted, "-halted")

    async def refresh_data(self, engine: Engine) -> None:
        budget = await engine.budget()
        spent, cap = float(budget.get("spent_today", 0)), float(budget.get("daily_cap", 0) or 0)
        self.query_one("#budget", ProgressBar).update(total=max(cap, 1e-9), progress=min(spent, cap))
        task_cap = budget.get("task_cap")
        put(self.query_one("#budget-text", Static), 
            f"{fmt.money(spent)} spent of {fmt.money(cap)} daily cap"
            + (f" · {fmt.money(task_cap)} per task" if task_cap else ""))
        select = self.query_one("#mode", Select)
        if not self._modes_loaded:
            modes = list(dict.fromkeys([*policy_modes(), engine.policy_mode]))
            with self.prevent(Select.Changed):
                select.set_options([(m, m) for m in modes])
                select.value = engine.policy_mode
            self._modes_loaded = True
        if not self._verified:
            self._verified = True
            await self._verify(engine)

    async def _verify(self, engine: Engine) -> None:
        ok, detail = await engine.audit_verify()
        mark = "[b green]✓ intact[/]" if ok else "[b red]✗ BROKEN[/]"
        self.query_one("#audit", Static).update(f"{mark} {fmt.escape(detail)}")

    @on(Button.Pressed, "#stop")
    async def _stop(self) -> None:
        await self.cockpit.action_emergency_stop()

    @on(Button.Pressed, "#rearm")
    async def action_rearm(self) -> None:
        if self.cockpit.halted:
            await self.cockpit.action_rearm()

    @on(Button.Pressed, "#verify")
    def action_verify(self) -> None:
        self.act(self._verify)

    @on(Select.Changed, "#mode")
    def _mode(self, event: Select.Changed) -> None:
        engine = self.engine
        if engine is None or event.value is Select.BLANK or event.value == engine.policy_mode:
            return
        mode = str(event.value)
        self.act(lambda e: e.set_policy_mode(mode), done=f"Policy mode: {mode}")
