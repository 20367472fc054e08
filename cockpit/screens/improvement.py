"""7 · Self-Improvement: schedules with their next run, the last run's result, and the
proposals awaiting approval. The schedules arrive with the daemon's improvement work; until
the engine offers them this panel says so instead of showing made-up rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Static

from .. import fmt
from ..widgets import KeyedTable
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

# Honest until the improvement work exists: no command to point at, no made-up rows.
NO_SCHEDULES = ("[b]No schedules yet.[/] This version of Liv Hana does not run "
                "self-improvement yet: no daily, weekly or monthly review is scheduled, and "
                "nothing here can start one. When that arrives with a later version, each "
                "schedule shows here with its next run and last result, finished runs "
                "below, and the changes they propose wait for your approval in the last "
                "list (and in the Approval Queue, 3).")


class ImprovementScreen(PanelScreen):
    MODE = "improve"
    CSS_PATH = "improvement.tcss"
    POLL_S = 5.0
    WATCH = frozenset({"complete", "approval_requested", "approval_decided"})
    ENTER = "a run: open it in Task Execution · a proposal: the Approval Queue on it"

    def compose_panel(self) -> ComposeResult:
        with Vertical(classes="panel-body"):
            yield Label("Schedules", classes="section-title")
            yield Static(NO_SCHEDULES, id="no-schedules", classes="empty-state")
            yield KeyedTable(("Schedule", 12), ("Cron", 16), ("Next run", 16), "Last result",
                             flex="Last result", id="schedules")
            yield Label("Recent improvement runs", classes="section-title")
            yield Static("[dim]No improvement runs yet.[/]", id="no-runs", classes="empty-state")
            yield KeyedTable(("ID", 8), ("Kind", 10), ("State", 12), ("Finished", 11), "Run",
                             flex="Run", id="runs")
            yield Label("Proposals awaiting approval", classes="section-title")
            yield Static("[dim]No proposals waiting.[/]", id="no-proposals", classes="empty-state")
            yield KeyedTable(("#", 4), ("Kind", 8), "Proposal", flex="Proposal", id="proposals")

    async def refresh_data(self, engine: Engine) -> None:
        schedules: list[dict[str, Any]] = []
        getter = getattr(engine, "schedules", None)  # offered by a later engine version
        if callable(getter):
            result = getter()
            schedules = list(await result if hasattr(result, "__await__") else result)
        self._fill("#schedules", "#no-schedules", {
            str(s.get("name")): (str(s.get("name", "")), str(s.get("cron", "")),
                                 fmt.clock(s.get("next_run")), fmt.cell(str(s.get("last_result", "—")), 40))
            for s in schedules})
        runs = [t for t in await engine.list(limit=200) if t.get("kind", "task") != "task"]
        self._fill("#runs", "#no-runs", {
            t["id"]: (t["id"][:8], t["kind"], fmt.state(t["state"]), fmt.clock(t.get("finished_at")),
                      fmt.cell(t.get("summary") or t["title"], 60)) for t in runs[:50]})
        improve_ids = {t["id"] for t in runs}
        proposals = [a for a in await engine.pending_approvals() if a["task_id"] in improve_ids]
        self._fill("#proposals", "#no-proposals", {
            str(a["id"]): (str(a["id"]), a["kind"], fmt.cell(a["summary"], 80)) for a in proposals})

    def drill(self, table: KeyedTable, key: str) -> None:
        if table.id == "runs":
            self.open_task(key)
        elif table.id == "proposals":
            self.app.switch_mode("approvals")
            screen = self.app.screen
            if hasattr(screen, "show_request"):
                screen.show_request(key)

    def _fill(self, table_id: str, empty_id: str, rows: dict[str, tuple[str, ...]]) -> None:
        table = self.query_one(table_id, KeyedTable)
        table.sync(rows)
        table.display = bool(rows)
        self.query_one(empty_id).display = not rows
