"""2 · Active Tasks: every live task (this process's and a daemon's) with state, its current
step and what it is doing now, elapsed time and cost; cancel, open in Task Execution,
pause and resume."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from agent.events import LIVE_STATES

from .. import fmt
from ..keys import key_for
from ..widgets import EventLog, KeyedTable, put
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

CONFLICT_MARK = "⚠"
RADAR_AGE_S = 2.0  # the conflict radar (git under it) is asked at most this often


class ActiveTasksScreen(PanelScreen):
    MODE = "active"
    CSS_PATH = "active_tasks.tcss"
    POLL_S = 1.0  # elapsed time ticks even when no event arrives
    WATCH = frozenset({"status", "step", "usage", "complete"})
    MIN_REFRESH_S = 1.0  # every cell of a busy table changes each time: keep it calm
    BINDINGS = [
        Binding("c", "cancel", "Cancel", id="active.cancel"),
        Binding("enter,o", "open", "Open", id="active.open"),
        Binding("p", "pause", "Pause/resume", id="active.pause"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.peeking: str | None = None
        self.paused: set[str] = set()
        self._modes: dict[str, str] = {}
        self.conflicts: dict[str, list[dict[str, Any]]] = {}  # task id -> its overlaps

    def compose_panel(self) -> ComposeResult:
        with Vertical(classes="panel-body"):
            yield Static("", id="summary")
            yield KeyedTable(("ID", 8), ("State", 17), ("Step", 4), ("Elapsed", 7),
                             ("Cost", 9), ("Task", 30), "Now", flex="Now", id="live")
            yield Static("[dim]No live tasks. Submit one on Task Execution "
                         f"({key_for(self.app, 'panel.tasks', '1')}).[/]",
                         id="empty", classes="empty-state")
            yield Static("", id="conflict")  # the peeked task's overlaps (agent/conflicts.py)
            yield EventLog(max_lines=300, id="peek")

    async def refresh_data(self, engine: Engine) -> None:
        tasks = sorted(await engine.list(states=list(LIVE_STATES), limit=500), key=lambda t: t["created_at"])
        doing = await engine.activity([t["id"] for t in tasks])
        self.paused = {task_id for task_id, now in doing.items() if now["paused"]}
        self._modes = {t["id"]: t["approve_mode"] for t in tasks}
        self.conflicts = await engine.conflicts(max_age=RADAR_AGE_S)
        table = self.query_one("#live", KeyedTable)
        table.sync({t["id"]: (t["id"][:8], fmt.state(t["state"], paused=t["id"] in self.paused),
                              str(max(t["steps"], doing[t["id"]]["step"])), fmt.elapsed(t),
                              fmt.money(t["cost_usd"]),
                              _titled(t["title"], t["id"] in self.conflicts),
                              _now(doing[t["id"]]))
                    for t in tasks})
        self._show_conflict()
        self.query_one("#empty").display = not tasks
        if self.peeking is None and tasks:
            self.peek(table.selected_key or tasks[0]["id"])
        running = sum(1 for t in tasks if t["state"] not in ("queued", "awaiting_approval")
                      and t["id"] not in self.paused)
        waiting = sum(1 for t in tasks if t["state"] == "awaiting_approval")
        spent = sum(t["cost_usd"] or 0 for t in tasks)
        held = f"{len(self.paused)} paused · " if self.paused else ""
        put(self.query_one("#summary", Static),
            f"[b]{len(tasks)}[/] live · {running} working · {held}{waiting} awaiting approval · "
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
        log.follow(task_id)
        mode = self._modes.get(task_id)
        log.border_title = f"latest from {task_id[:8]}" + (f" · approve {mode}" if mode else "")
        self._show_conflict()
        self.catch_up()

    def _show_conflict(self) -> None:
        """The peeked task's overlaps with other tasks, above its log (hidden when none)."""
        clashes = self.conflicts.get(self.peeking or "", [])
        line = self.query_one("#conflict", Static)
        line.display = bool(clashes)
        put(line, conflict_text(clashes))

    def catch_up(self) -> None:
        """The peeked task's events that the log has not shown (first look, or a return)."""
        engine = self.engine
        if self.peeking and self._ready and engine is not None:
            log = self.query_one("#peek", EventLog)
            self.run_worker(partial(log.catch_up, engine), group="replay", exclusive=True)

    def handle_events(self, events: list[dict[str, Any]]) -> None:
        log = self.query_one("#peek", EventLog)
        log.feed(events)
        if log.needs_catch_up:
            self.catch_up()

    def _selected(self) -> str | None:
        return self.query_one("#live", KeyedTable).selected_key

    def action_cancel(self) -> None:
        task_id = self._selected()
        if not task_id:
            return
        self.confirm_cancel(task_id, done=f"Cancelled {task_id[:8]}")

    def action_open(self) -> None:
        task_id = self._selected()
        if not task_id:
            return
        self.app.switch_mode("tasks")
        screen = self.app.screen
        if hasattr(screen, "select"):
            screen.select(task_id)

    def action_pause(self) -> None:
        """Pause the selected task (it holds before its next step; a running command
        finishes first), or resume it when it is paused."""
        task_id = self._selected()
        if not task_id:
            return
        if task_id in self.paused:
            self.paused.discard(task_id)
            self.act(lambda e: e.resume(task_id), done=f"Resumed {task_id[:8]}")
        else:
            self.paused.add(task_id)
            self.act(lambda e: e.pause(task_id),
                     done=f"Paused {task_id[:8]}: it holds before its next step")


def _titled(title: str, clashing: bool) -> str:
    """The Task cell, marked when the task changes files another task changes too."""
    if not clashing:
        return fmt.cell(title, 30)
    return f"{fmt.paint(CONFLICT_MARK, 'bold $text-warning')} {fmt.cell(title, 28)}"


def conflict_text(clashes: list[dict[str, Any]]) -> str:
    """'⚠ conflict: shared.py, app.py — task 1a2b3c4d (running) also changes shared.py; …'"""
    from agent.conflicts import who

    if not clashes:
        return ""
    paths = sorted({p for c in clashes for p in c["paths"]})
    shown = ", ".join(paths[:6]) + (f" (+{len(paths) - 6})" if len(paths) > 6 else "")
    withs = "; ".join(f"{who(c)} {'changed' if c['applied'] else 'also changes'} "
                      f"{', '.join(c['paths'][:3])}" for c in clashes[:3])  # fmt: skip
    head = fmt.paint(f"{CONFLICT_MARK} conflict: {shown}", "bold $text-warning")
    return f"{head} [dim]—[/] {fmt.escape(withs)}"


def _now(doing: dict[str, Any]) -> str:
    """The current action, from the task's latest step: 'execute_bash sleep 600'."""
    if not doing.get("action"):
        return "[dim]—[/]"
    return fmt.cell(f"{doing['action']} {doing['target']}".strip(), 300)  # the table cuts it
