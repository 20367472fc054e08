"""1 · Task Execution: type a task, pick workspace and approval mode, submit, and watch the
selected task's live stream (analysis, thinking folded, plan and progress, steps, tool
results, verification, cost)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, ProgressBar, Select, Static

from .. import fmt
from ..widgets import EventLog, KeyedTable, put
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

APPROVE_MODES = [("ask: I approve risky steps", "ask"), ("auto: approve everything", "auto"),
                 ("deny: refuse risky steps", "deny")]


class TaskExecutionScreen(PanelScreen):
    MODE = "tasks"
    CSS_PATH = "task_execution.tcss"
    AUTO_FOCUS = "#recent"  # not the text field: digits must switch panels from the start
    WATCH = frozenset({"status", "complete"})
    POLL_S = 1.0
    BINDINGS = [
        Binding("n", "new_task", "New task", id="tasks.new"),
        Binding("t", "toggle_thinking", "Thinking", id="tasks.thinking"),
        Binding("c", "cancel_task", "Cancel task", id="tasks.cancel"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.selected: str | None = None
        self.follow = True  # show the newest task until the operator picks one
        self._loading = False
        self._held: list[dict[str, Any]] = []
        self._plan: list[dict[str, Any]] = []

    def compose_panel(self) -> ComposeResult:
        with Horizontal(classes="panel-body"):
            with Vertical(id="compose"):
                yield Label("New task", classes="section-title")
                yield Input(placeholder="What should the agent do?", id="title")
                yield Input(placeholder="workspace folder", id="workspace")
                yield Select(APPROVE_MODES, value="ask", allow_blank=False, id="approve")
                yield Button("Submit", id="submit", variant="primary")
                yield Label("Recent tasks", classes="section-title")
                yield KeyedTable(("ID", 8), ("State", 11), "Task", id="recent")
            with Vertical(id="stream-pane"):
                yield Static("No task selected: submit one, or pick one on the left.", id="head")
                yield Static("", id="plan")
                yield ProgressBar(total=1, show_eta=False, id="progress")
                yield EventLog(id="log")

    def body_mounted(self) -> None:
        if self.selected:
            chosen, self.selected = self.selected, None
            self.select(chosen)

    # -- data ------------------------------------------------------------------------------
    async def refresh_data(self, engine: Engine) -> None:
        ws = self.query_one("#workspace", Input)
        if not ws.value:
            ws.value = self.cockpit.workspace
        tasks = await engine.list(limit=40)
        table = self.query_one("#recent", KeyedTable)
        with table.prevent(KeyedTable.RowHighlighted):  # only the operator's moves select
            table.sync({t["id"]: (t["id"][:8], fmt.state(t["state"]), fmt.cell(t["title"], 40))
                        for t in tasks})
        if tasks and (self.selected is None or self.follow):
            self.select(tasks[0]["id"])
        if self.selected in table.rows:  # the highlighted row is the task shown
            with table.prevent(KeyedTable.RowHighlighted):
                table.move_cursor(row=table.get_row_index(self.selected), animate=False)
        if self.selected:
            task = await engine.get(self.selected)
            if task:
                self._show_head(task)

    def _show_head(self, task: dict[str, Any]) -> None:
        e = fmt.escape
        put(self.query_one("#head", Static), 
            f"[b]{e(fmt.short(task['title'], 70))}[/]  {fmt.state(task['state'])}\n"
            f"[dim]{task['id']} · {task['steps']} steps · {task['tokens']:,} tokens · "
            f"{fmt.money(task['cost_usd'])} · {fmt.elapsed(task)} · approve {task['approve_mode']}[/]")

    def select(self, task_id: str) -> None:
        if task_id == self.selected:
            return
        self.selected = task_id
        if not self._ready:  # shown once the body is mounted
            return
        self._plan = []
        self._draw_plan()
        self.query_one("#log", EventLog).reset()
        self._loading = True
        self._held = []
        self.run_worker(partial(self._replay, task_id), group="replay", exclusive=True)

    async def _replay(self, task_id: str) -> None:
        engine = self.engine
        if engine is None:
            return
        log = self.query_one("#log", EventLog)
        try:
            events = await engine.events(task_id)
        finally:
            self._loading = False
        if task_id != self.selected:
            return
        events = events[-log.events.maxlen:] if log.events.maxlen else events
        log.add(events + [ev for ev in self._held if ev["task_id"] == task_id])
        self._held = []
        for event in events:
            self._note_plan(event)
        self._draw_plan()
        task = await engine.get(task_id)
        if task:
            self._show_head(task)

    def handle_events(self, events: list[dict[str, Any]]) -> None:
        mine = [ev for ev in events if ev["task_id"] == self.selected]
        if not mine:
            return
        if self._loading:
            self._held.extend(mine)
            return
        self.query_one("#log", EventLog).add(mine)
        if any(self._note_plan(ev) for ev in mine):
            self._draw_plan()
        if any(ev["type"] in ("usage", "step", "status") for ev in mine):
            self.request_refresh()

    def _note_plan(self, event: dict[str, Any]) -> bool:
        if event.get("type") == "plan":
            self._plan = list(event.get("steps") or [])
            return True
        return False

    def _draw_plan(self) -> None:
        marks = {"done": "[green]✓[/]", "in_progress": "[b cyan]▶[/]"}
        text = "  ".join(f"{marks.get(s.get('status'), '[dim]·[/]')} {fmt.escape(s.get('title', ''))}"
                         for s in self._plan)
        put(self.query_one("#plan", Static), text or "[dim]no plan yet[/]")
        done = sum(1 for s in self._plan if s.get("status") == "done")
        self.query_one("#progress", ProgressBar).update(total=max(1, len(self._plan)), progress=done)

    # -- input -----------------------------------------------------------------------------
    @on(KeyedTable.RowHighlighted, "#recent")
    def _row(self, event: KeyedTable.RowHighlighted) -> None:
        if event.row_key.value and event.row_key.value != self.selected:
            self.follow = False
            self.select(event.row_key.value)

    @on(Input.Submitted, "#title")
    @on(Button.Pressed, "#submit")
    def submit(self) -> None:
        title = self.query_one("#title", Input).value.strip()
        if not title:
            self.notify("Type a task first.", severity="warning")
            return
        workspace = self.query_one("#workspace", Input).value.strip() or self.cockpit.workspace
        approve = str(self.query_one("#approve", Select).value)

        def submitted(task_id: str) -> None:
            self.query_one("#title", Input).value = ""
            self.select(task_id)

        self.act(lambda e: e.submit(title, workspace, approve=approve),
                 done=f"Submitted: {fmt.cell(title, 40)}", then=submitted)

    def action_new_task(self) -> None:
        self.query_one("#title", Input).focus()

    def action_toggle_thinking(self) -> None:
        self.query_one("#log", EventLog).toggle_thinking()

    def action_cancel_task(self) -> None:
        if self.selected:
            task_id = self.selected
            self.act(lambda e: e.cancel(task_id), done=f"Cancelling {task_id[:8]}")
