"""1 · Task Execution: type a task, pick workspace and approval mode, submit, and watch the
selected task's live stream (analysis, thinking folded, plan and progress, steps, tool
results, verification, cost).

Typing lands in the task field: it has focus on open when no task is selected, keys typed
while the panel is still being built go into it, and a letter typed on the task list that
is no key of the panel starts a task with it. After Submit the focus goes to the list, so
the panel's keys work again. A task refused during an emergency stop stays in the field,
and Enter asks before submitting it once re-armed.

On a narrow terminal the form stacks above the stream; on a short one the fields lose
their borders."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, ProgressBar, Select, Static

from agent.errors import StopActive
from agent.events import LIVE_STATES as LIVE

from .. import fmt
from ..widgets import Confirm, EventLog, KeyedTable, put
from ..widgets.live_line import LiveLine
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine
    from agent.timing import Timing

APPROVE_MODES = [("ask: I approve risky steps", "ask"), ("auto: approve everything", "auto"),
                 ("deny: refuse risky steps", "deny")]
# Short state names for the narrow list: "awaiting approval" is cut at 11 columns.
SHORT_STATES = {"awaiting approval": "awaiting"}


def short_state(value: str) -> str:
    label = fmt.state(value)
    for long, short in SHORT_STATES.items():
        label = label.replace(long, short)
    return label


class TaskExecutionScreen(PanelScreen):
    MODE = "tasks"
    CSS_PATH = "task_execution.tcss"
    AUTO_FOCUS = ""  # the field or the list, decided in `body_mounted`
    COMPACT = "#compose Input, #compose Select, #compose Button"
    WATCH = frozenset({"status", "complete"})
    POLL_S = 1.0
    ENTER = "on a task: its log, where ↑/↓ choose an event"
    HELP_EXTRA = [("↑/↓ in the log", "choose an event"),
                  ("enter in the log", "the chosen step's whole output (or event), scrollable"),
                  ("Home/End in the log", "top / bottom (the log stops following at the top)"),
                  ("esc", "leave the task field: the keys above work again")]
    BINDINGS = [
        Binding("n", "new_task", "New task", id="tasks.new"),
        Binding("t", "toggle_thinking", "Thinking", id="tasks.thinking"),
        Binding("c", "cancel_task", "Cancel task", id="tasks.cancel"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.selected: str | None = None
        self.follow = True  # show the newest task until the operator picks one
        self._plan: list[dict[str, Any]] = []
        self._paused = False
        self._state = ""  # the selected task's state: a finished task's plan reads differently
        self._timing: tuple[str, Timing] | None = None  # (task id, its working/waiting time)
        self.refused: str | None = None  # a task the emergency stop refused, still in the field

    def compose_panel(self) -> ComposeResult:
        with Horizontal(classes="panel-body", id="body"):
            with Vertical(id="compose"):
                yield Label("New task", classes="section-title", id="new-title")
                # No select-on-focus: a letter typed on the list lands in it, and the next
                # one must follow it, not replace it.
                yield Input(placeholder="What should the agent do?", id="title",
                            select_on_focus=False)
                yield Static("", id="refused")
                with Horizontal(id="options"):
                    with Vertical(id="workspace-field", classes="field"):
                        yield Label("Workspace", classes="field-label")
                        yield Input(placeholder="workspace folder", id="workspace")
                    with Vertical(id="approve-field", classes="field"):
                        yield Label("Approval mode", classes="field-label")
                        yield Select(APPROVE_MODES, value="ask", allow_blank=False, id="approve")
                    yield Button("Submit", id="submit", variant="primary")
                yield Label("Recent tasks", classes="section-title", id="recent-title")
                yield KeyedTable(("ID", 6), ("State", 11), "Task", flex="Task", flex_min=8,
                                 id="recent")
            with Vertical(id="stream-pane"):
                yield Static("No task selected: submit one, or pick one on the left.", id="head")
                yield Static("", id="plan")
                yield ProgressBar(total=1, show_eta=False, id="progress")
                yield EventLog(id="log")
                yield LiveLine(id="live")

    def body_mounted(self) -> None:
        self.query_one("#refused").display = False
        if self.selected:
            chosen, self.selected = self.selected, None
            self.select(chosen)
            self.query_one("#recent", KeyedTable).focus()
        else:  # nothing to look at yet: typing goes to the task field
            self.query_one("#title", Input).focus()

    def on_key(self, event: events.Key) -> None:
        super().on_key(event)
        if not self._ready or not event.is_printable or "+" in event.key:
            return  # alt+q (Escape then q, typed quickly) is no letter to type
        if isinstance(self.focused, Input | Select) or event.key in self.active_bindings:
            return
        # A letter that is no key of this panel, typed on the list or the log: the start of
        # a task, not a lost keystroke.
        field = self.query_one("#title", Input)
        field.focus()
        field.insert_text_at_cursor(event.character or "")
        event.stop()
        event.prevent_default()

    # -- data ------------------------------------------------------------------------------
    async def refresh_data(self, engine: Engine) -> None:
        ws = self.query_one("#workspace", Input)
        if not ws.value:
            ws.value = self.cockpit.workspace
        tasks = await engine.list(limit=40)
        table = self.query_one("#recent", KeyedTable)
        with table.prevent(KeyedTable.RowHighlighted):  # only the operator's moves select
            table.sync({t["id"]: (t["id"][:6], short_state(t["state"]), fmt.cell(t["title"], 300))
                        for t in tasks})
        if tasks and (self.selected is None or self.follow):
            title = self.query_one("#title", Input)
            self.select(tasks[0]["id"])
            if self.focused is title and not title.value and not self.cockpit.operator_acted:
                # A task showed up before the operator did anything: its list gets the keys.
                self.query_one("#recent", KeyedTable).focus()
        if self.selected in table.rows:  # the highlighted row is the task shown
            with table.prevent(KeyedTable.RowHighlighted):
                table.move_cursor(row=table.get_row_index(self.selected), animate=False)
        if self.selected:
            task = await engine.get(self.selected)
            if task:
                if task["state"] in LIVE:  # the row's counters lag the step under way
                    doing = (await engine.activity([task["id"]]))[task["id"]]
                    self._paused = doing["paused"]
                    task = {**task, "steps": max(task["steps"], doing["step"])}
                await self._time(engine, task["id"])
                self._show_head(task)

    async def _time(self, engine: Engine, task_id: str) -> None:
        """Working and waiting time from the task's events (agent/timing.py): a rollback
        later changes neither, and time waiting for the operator is not working time."""
        self._timing = (task_id, (await engine.views.timings([task_id]))[task_id])

    def _show_head(self, task: dict[str, Any]) -> None:
        e = fmt.escape
        paused = self._paused and task["state"] in LIVE
        state = fmt.state(task["state"], paused=paused)
        head = self.query_one("#head", Static)
        room = head.size.width - len(task["state"]) - (10 if paused else 2)
        span = self._timing[1] if self._timing and self._timing[0] == task["id"] else None
        times = (f"working {fmt.duration(span.working_s)} · waiting {fmt.duration(span.waiting_s)}"
                 if span and span.started_at is not None else "not started")
        # Most telling first; what does not fit the pane's width is left out, not cut.
        parts = [task["id"], times, fmt.money(task["cost_usd"]),
                 fmt.plural(task["steps"], "step"), f"{task['tokens']:,} tok",
                 f"approve {task['approve_mode']}"]
        width = head.size.width or 80
        while len(parts) > 2 and len(" · ".join(parts)) > width:
            parts.pop()
        put(head, f"[b]{e(fmt.short(task['title'], max(20, room)))}[/]  {state}\n"
                  f"[dim]{e(' · '.join(parts))}[/]")
        if task["state"] != self._state:
            self._state = task["state"]
            self._draw_plan()

    def show_task(self, task_id: str) -> None:
        """Show this task, chosen elsewhere (Active Tasks, History): stop following the
        newest, and put the focus on its log."""
        self.follow = False
        self.select(task_id)
        if self._ready:
            self.query_one("#log", EventLog).focus()

    def select(self, task_id: str) -> None:
        if task_id == self.selected:
            return
        self.selected = task_id
        if not self._ready:  # shown once the body is mounted
            return
        self._plan = []
        self._paused = False
        self._state = ""
        self._draw_plan()
        self.query_one("#log", EventLog).follow(task_id)
        self.query_one("#live", LiveLine).clear()
        self.catch_up()

    def catch_up(self) -> None:
        """Load the selected task's events the log has not shown (all of them after a new
        selection; those that came while the panel was hidden after a return)."""
        if self.selected and self._ready:
            self.run_worker(partial(self._replay, self.selected), group="replay", exclusive=True)

    async def _replay(self, task_id: str) -> None:
        engine = self.engine
        if engine is None:
            return
        added = await self.query_one("#log", EventLog).catch_up(engine)
        if task_id != self.selected:
            return
        self._shown(added)
        task = await engine.get(task_id)
        if task and task_id == self.selected:
            await self._time(engine, task_id)
            self._show_head(task)

    def handle_events(self, events: list[dict[str, Any]]) -> None:
        live = self.query_one("#live", LiveLine)
        for delta in events:  # live deltas (no seq, never stored) go to the live line
            if delta.get("type") == "delta" and delta.get("task_id") == self.selected:
                live.feed(delta)
        log = self.query_one("#log", EventLog)
        shown = log.feed([ev for ev in events if ev.get("type") != "delta"])
        if log.needs_catch_up:
            self.catch_up()
        if any(ev["type"] in ("thinking", "text", "complete") for ev in shown):
            live.clear()  # the stored block (or the end) is in the log now
        self._shown(shown)

    def _shown(self, events: list[dict[str, Any]]) -> None:
        """Events just added to the log: the plan, the paused mark and the head follow."""
        if not events:
            return
        if any([self._note_plan(ev) for ev in events]):
            self._draw_plan()
        if any(ev["type"] in ("usage", "step", "status", "paused", "resumed") for ev in events):
            self.request_refresh()

    def _note_plan(self, event: dict[str, Any]) -> bool:
        if event.get("type") in ("paused", "resumed"):
            self._paused = event["type"] == "paused"
        if event.get("type") == "plan":
            self._plan = list(event.get("steps") or [])
            return True
        return False

    def _draw_plan(self) -> None:
        marks = {"done": fmt.paint("✓", "ok"), "in_progress": fmt.paint("▶", "bold $text-primary")}
        text = "  ".join(f"{marks.get(s.get('status'), '[dim]·[/]')} {fmt.escape(s.get('title', ''))}"
                         for s in self._plan)
        done = sum(1 for s in self._plan if s.get("status") == "done")
        total = max(1, len(self._plan))
        if self._state == "succeeded" and self._plan and done < len(self._plan):
            # The task is finished, whatever its plan says: the bar says so, and the plan
            # line says the agent left its plan behind (it set it, then never updated it).
            text += (f"  [dim]· the agent did not update its plan "
                     f"({done}/{len(self._plan)} marked done)[/]")
            done = total
        elif self._state == "succeeded":
            done = total
        ended = self._state and self._state not in LIVE
        put(self.query_one("#plan", Static),
            text or ("[dim]the agent set no plan[/]" if ended else "[dim]no plan yet[/]"))
        self.query_one("#progress", ProgressBar).update(total=total, progress=done)

    # -- input -----------------------------------------------------------------------------
    @on(KeyedTable.RowHighlighted, "#recent")
    def _row(self, event: KeyedTable.RowHighlighted) -> None:
        if event.row_key.value and event.row_key.value != self.selected:
            self.follow = False
            self.select(event.row_key.value)

    def drill(self, table: KeyedTable, key: str) -> None:
        self.follow = False
        self.select(key)
        self.query_one("#log", EventLog).focus()

    @on(Input.Submitted, "#title")
    @on(Button.Pressed, "#submit")
    def submit(self) -> None:
        title = self.query_one("#title", Input).value.strip()
        if not title:
            self.notify("Type a task first.", severity="warning")
            return
        if self.refused is not None and title == self.refused:
            def answered(yes: bool | None) -> None:
                if yes:
                    self._submit(title)

            self.app.push_screen(Confirm(
                "This task was refused during the emergency stop:\n"
                f"[b]{fmt.escape(fmt.short(title, 200))}[/]\nSubmit it now?", yes="Submit"),
                answered)
            return
        self._submit(title)

    def _submit(self, title: str) -> None:
        engine = self.engine
        if engine is None:
            self.notify("the engine is still starting", severity="warning")
            return
        workspace = self.query_one("#workspace", Input).value.strip() or self.cockpit.workspace
        approve = str(self.query_one("#approve", Select).value)

        async def run() -> None:
            try:
                task_id = await engine.submit(title, workspace, approve=approve)
            except StopActive as exc:
                self._refuse(title, str(exc))
                return
            except Exception as exc:
                self.notify(str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                            severity="error", timeout=6)
                return
            self.refused = None
            self.query_one("#refused").display = False
            self.query_one("#title", Input).value = ""
            self.follow = True
            self.select(task_id)
            self.query_one("#recent", KeyedTable).focus()  # the panel's keys work again
            self.notify(f"Submitted: {fmt.cell(title, 40)}")
            self.request_refresh()

        self.run_worker(run, group="actions")

    def _refuse(self, title: str, why: str) -> None:
        """The stop refused it: it stays in the field, marked, and asks before it goes."""
        self.refused = title
        note = self.query_one("#refused", Static)
        put(note, fmt.paint(f"⚠ refused: {fmt.escape(why)}. Enter asks before submitting it "
                            "again.", "warn"))
        note.display = True
        self.notify(f"Not submitted: {why}", severity="error", timeout=8)

    @on(Input.Changed, "#title")
    def _edited(self, event: Input.Changed) -> None:
        if self.refused is not None and event.value.strip() != self.refused:
            self.refused = None  # a new task now, not the refused one
            self.query_one("#refused").display = False

    def action_new_task(self) -> None:
        self.query_one("#title", Input).focus()

    def action_toggle_thinking(self) -> None:
        log = self.query_one("#log", EventLog)
        log.toggle_thinking()
        self.query_one("#live", LiveLine).toggle_thinking(log.show_thinking)

    def action_cancel_task(self) -> None:
        task_id = self.selected
        if not task_id:
            return
        self.confirm_cancel(task_id, done=f"Cancelling {task_id[:8]}")
