"""2 · Active Tasks: every live task (this process's and a daemon's) with state, step,
elapsed time and cost; cancel, open in Task Execution."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from .. import fmt
from ..widgets import Confirm, EventLog, KeyedTable, put
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

LIVE = ["queued", "planning", "running", "verifying", "awaiting_approval", "applying"]


class ActiveTasksScreen(PanelScreen):
    MODE = "active"
    CSS_PATH = "active_tasks.tcss"
    POLL_S = 1.0  # elapsed time ticks even when no event arrives
    WATCH = frozenset({"status", "step", "usage", "complete"})
    MIN_REFRESH_S = 1.0  # every cell of a busy table changes each time: keep it calm
    BINDINGS = [
        Binding("c", "cancel", "Cancel", id="active.cancel"),
        Binding("enter,o", "open", "Open", id="active.open"),
        Binding("p", "pause", "Pause", id="active.pause"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.peeking: str | None = None

    def compose_panel(self) -> ComposeResult:
        with Vertical(classes="panel-body"):
            yield Static("", id="summary")
            yield KeyedTable(("ID", 12), ("State", 18), ("Step", 5), ("Elapsed", 8),
                             ("Cost", 9), ("Approve", 7), "Task", id="live")
            yield Static("[dim]No live tasks. Submit one on Task Execution (1).[/]",
                         id="empty", classes="empty-state")
            yield EventLog(max_lines=300, id="peek")

    async def refresh_data(self, engine: Engine) -> None:
        tasks = sorted(await engine.list(states=LIVE, limit=500), key=lambda t: t["created_at"])
        table = self.query_one("#live", KeyedTable)
        table.sync({t["id"]: (t["id"], fmt.state(t["state"]), str(t["steps"]), fmt.elapsed(t),
                              fmt.money(t["cost_usd"]), t["approve_mode"], fmt.cell(t["title"], 60))
                    for t in tasks})
        self.query_one("#empty").display = not tasks
        if self.peeking is None and tasks:
            self.peek(table.selected_key or tasks[0]["id"])
        running = sum(1 for t in tasks if t["state"] not in ("queued", "awaiting_approval"))
        waiting = sum(1 for t in tasks if t["state"] == "awaiting_approval")
        spent = sum(t["cost_usd"] or 0 for t in tasks)
        put(self.query_one("#summary", Static), 
            f"[b]{len(tasks)}[/] live · {running} working · {waiting} awaiting approval · "
            f"{fmt.money(spent)} spent by live tasks")

    @on(KeyedTable.RowHighlighted, "#live")
    def _row(self, event: KeyedTable.RowHighlighted) -> None:
        if event.row_key.value:
            self.peek(event.row_key.value)

    def peek(self, task_id: str) -> None:
        """Show the latest events of one live task under the table."""
        if task_id == self.peeking:
            return
        self.peeking = task_id
        log = self.query_one("#peek", EventLog)
        log.reset()
        log.border_title = f"latest from {task_id[:8]}"

        async def load(engine: Engine) -> list[dict[str, Any]]:
            return await engine.events(task_id)

        def show(events: list[dict[str, Any]]) -> None:
            if self.peeking == task_id:
                log.add(events[-300:])

        self.act(load, then=show)

    def handle_events(self, events: list[dict[str, Any]]) -> None:
        mine = [ev for ev in events if ev["task_id"] == self.peeking]
        if mine:
            self.query_one("#peek", EventLog).add(mine)

    def _selected(self) -> str | None:
        return self.query_one("#live", KeyedTable).selected_key

    def action_cancel(self) -> None:
        task_id = self._selected()
        if not task_id:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(lambda e: e.cancel(task_id), done=f"Cancelled {task_id[:8]}")

        self.app.push_screen(Confirm(f"Cancel task {task_id}? Its running command is killed.",
                                     yes="Cancel task"), answered)

    def action_open(self) -> None:
        task_id = self._selected()
        if not task_id:
            return
        self.app.switch_mode("tasks")
        screen = self.app.screen
        if hasattr(screen, "select"):
            screen.select(task_id)

    def action_pause(self) -> None:
        # The engine has no pause yet; say so instead of pretending.
        self.notify("Pause is not supported by the engine yet: cancel, or deny at the next "
                    "approval.", severity="warning")
