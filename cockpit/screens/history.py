"""6 · Execution History: every finished task, newest run first (ties by id: a stable
order), filtered by state, date range and text; the highlighted one's events replay below
(with their times; `t` unfolds thinking); Enter opens it in Task Execution; roll it back
from here. A change made elsewhere (a rollback from the CLI) shows within a second.

"Working" and "Waiting" split the run into the agent's working time and the time it waited
for the operator (an approval, a pause), from the run's own events (agent/timing.py): a
rollback later moves the row's finished_at, but neither figure, nor when the run finished."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Input, Select, Static

from agent.events import END_STATES

from .. import fmt
from ..widgets import Confirm, EventLog, KeyedTable, put
from ..widgets.keyed_table import Col
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine
    from agent.timing import Timing

ENDED = list(END_STATES)
PAGE = 200
DAY_FORMAT = "%Y-%m-%d"


class BadDate(ValueError):
    pass


def parse_day(text: str, field: str = "date") -> float | None:
    """Midnight of a YYYY-MM-DD day; None for an empty field; BadDate (a one-line
    message) for anything else."""
    text = text.strip()
    if not text:
        return None
    try:
        return datetime.strptime(text, DAY_FORMAT).timestamp()
    except ValueError:
        example = datetime.fromtimestamp(fmt.now()).strftime(DAY_FORMAT)
        raise BadDate(f"{field} “{text}” is not a date (use YYYY-MM-DD, e.g. {example}): "
                      "not applied") from None


def day_range(since_text: str, until_text: str) -> tuple[float | None, float | None, dict[str, str]]:
    """(since, until, problems by field): `until` includes its whole day; a bad field is
    left out of the filter, and its problem says why in one line."""
    since = until = None
    problems: dict[str, str] = {}
    try:
        since = parse_day(since_text, "since")
    except BadDate as exc:
        problems["since"] = str(exc)
    try:
        day = parse_day(until_text, "until")
        if day is not None:
            until = (datetime.fromtimestamp(day) + timedelta(days=1)).timestamp()
    except BadDate as exc:
        problems["until"] = str(exc)
    if since is not None and until is not None and since >= until:
        problems["until"] = "“since” is after “until”: nothing can match"
    return since, until, problems


def work_wait(span: Timing | None) -> tuple[str, str]:
    """(working, waiting) cells: "—" for a task that never left the queue."""
    if span is None or span.started_at is None:
        return "—", "—"
    return fmt.duration(span.working_s), fmt.duration(span.waiting_s)


class ReplayLog(EventLog):
    """The event log of a finished task, each line with its time (a replay is read after
    the fact: when things happened is half the story)."""

    def event_line(self, event: dict[str, Any]) -> Text | None:
        line = super().event_line(event)
        if line is None:
            return None
        stamp = datetime.fromtimestamp(event["ts"]).strftime("%H:%M:%S") if event.get("ts") else ""
        return Text.assemble((f"{stamp:8} ", "dim"), line)


class HistoryScreen(PanelScreen):
    MODE = "history"
    CSS_PATH = "history.tcss"
    COMPACT = "#filters Input, #filters Select"
    WATCH = frozenset({"complete", "rollback"})
    ENTER = "open the task in Task Execution"
    BINDINGS = [
        Binding("o", "open", "Open", id="history.open"),
        Binding("r", "rollback", "Rollback", id="history.rollback"),
        Binding("t", "toggle_thinking", "Thinking", id="history.thinking"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.tasks: dict[str, dict[str, Any]] = {}
        self.replaying: str | None = None
        self._debounce: Timer | None = None
        self._preview: Timer | None = None
        self._spans: dict[str, Timing] = {}  # ended task -> its working/waiting time

    def compose_panel(self) -> ComposeResult:
        with Vertical(classes="panel-body"):
            with Horizontal(id="filters"):
                yield Input(placeholder="text or id (/)", id="text")
                yield Select([(s.replace("_", " "), s) for s in ENDED], prompt="any state",
                             id="state")
                yield Input(placeholder="since YYYY-MM-DD", id="since")
                yield Input(placeholder="until YYYY-MM-DD", id="until")
            yield Static("", id="filter-warning")
            # Narrow: Cost goes first, then Waiting, Working, then Finished (README).
            yield KeyedTable(("ID", 8), Col("Finished", 11, drop=4), ("State", 11),
                             Col("Working", 7, drop=3), Col("Waiting", 7, drop=2),
                             Col("Cost", 8, drop=1), "Task", ("Outcome", 24), flex="Task",
                             flex_min=16, id="ended")
            yield ReplayLog(id="replay")
            yield Static("", id="summary")

    def body_mounted(self) -> None:
        self.query_one("#replay", EventLog).border_title = "replay: highlight a task"
        self.query_one("#filter-warning").display = False

    async def refresh_data(self, engine: Engine) -> None:
        state = self.query_one("#state", Select).value
        states = [str(state)] if state in ENDED else ENDED
        text = self.query_one("#text", Input).value.strip() or None
        since_field, until_field = self.query_one("#since", Input), self.query_one("#until", Input)
        since, until, problems = day_range(since_field.value, until_field.value)
        self._warn(problems, since_field, until_field)
        tasks = await engine.list(states=states, text=text, since=since, until=until, limit=PAGE)
        # An ended run's figures never change (a rollback moves neither): read once, once
        # its end is in the store (the row can say "ended" a moment before its event).
        missing = [t["id"] for t in tasks if t["id"] not in self._spans]
        fresh = await engine.views.timings(missing)
        self._spans.update({k: v for k, v in fresh.items() if v.ended_at is not None})
        spans = {**fresh, **self._spans}
        # Newest run first; equal times keep one order (created, then id): a stable sort.
        tasks.sort(key=lambda t: (self._finished(t) or t["created_at"], t["created_at"], t["id"]),
                   reverse=True)
        self.tasks = {t["id"]: t for t in tasks}
        self.query_one("#ended", KeyedTable).sync({
            t["id"]: (t["id"][:8], fmt.clock(self._finished(t)), fmt.state(t["state"]),
                      *work_wait(spans.get(t["id"])), fmt.money(t["cost_usd"]),
                      fmt.cell(t["title"], 300),
                      fmt.cell(t.get("error") or t.get("summary") or "", 300))
            for t in tasks})
        ok = sum(1 for t in tasks if t["state"] == "succeeded")
        put(self.query_one("#summary", Static),
            f"{len(tasks)} shown · {ok} succeeded · enter open · r rollback · t thinking"
            + (" · [dim]first 200 only[/]" if len(tasks) >= PAGE else ""))
        table = self.query_one("#ended", KeyedTable)
        if self.replaying is None and table.selected_key:
            self._replay(table.selected_key)
        elif self.replaying is not None and self.replaying in self.tasks:
            self._catch_up_replay()

    def _finished(self, task: dict[str, Any]) -> float | None:
        """When the run finished (a rollback's later time is in the replay, not here)."""
        span = self._spans.get(task["id"])
        return (span.ended_at if span else None) or task.get("finished_at")

    def _warn(self, problems: dict[str, str], since: Input, until: Input) -> None:
        line = self.query_one("#filter-warning", Static)
        line.display = bool(problems)
        put(line, fmt.paint("⚠ " + "; ".join(problems.values()), "warn") if problems else "")
        since.set_class("since" in problems, "-invalid")
        until.set_class("until" in problems, "-invalid")

    @on(Input.Changed)
    @on(Select.Changed)
    def _filter(self) -> None:
        if self._debounce:
            self._debounce.stop()
        self._debounce = self.set_timer(0.25, self.request_refresh)

    def _selected(self) -> str | None:
        return self.query_one("#ended", KeyedTable).selected_key

    def drill(self, table: KeyedTable, key: str) -> None:
        self.open_task(key)

    def action_open(self) -> None:
        task_id = self._selected()
        if task_id:
            self.open_task(task_id)

    @on(KeyedTable.RowHighlighted, "#ended")
    def _highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key and key != self.replaying:
            if self._preview is not None:
                self._preview.stop()
            # The cursor runs over rows quickly: replay where it stops.
            self._preview = self.set_timer(0.15, lambda: self._replay(key))

    def _replay(self, task_id: str) -> None:
        """Replay this task's events in the log under the table."""
        if task_id == self.replaying:
            return
        self.replaying = task_id
        log = self.query_one("#replay", EventLog)
        log.follow(task_id)
        task = self.tasks.get(task_id) or {}
        day = datetime.fromtimestamp(task["created_at"]).strftime(DAY_FORMAT) if task else ""
        log.border_title = f"replay {task_id[:8]} · {day}" if day else f"replay {task_id[:8]}"
        self._catch_up_replay()

    def _catch_up_replay(self) -> None:
        """Load what the replay has not shown (all of it at first; a rollback made since,
        from here or elsewhere, later)."""
        engine = self.engine
        if engine is None or self.replaying is None:
            return
        log = self.query_one("#replay", EventLog)

        self.run_worker(log.catch_up(engine), group="replay", exclusive=True)

    def action_toggle_thinking(self) -> None:
        self.query_one("#replay", EventLog).toggle_thinking()

    def action_rollback(self) -> None:
        task_id = self._selected()
        task = self.tasks.get(task_id or "")
        if task is None:
            return
        if task["state"] == "rolled_back":
            self.notify(f"{task_id} is already rolled back.", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(lambda e: e.rollback(task["id"]),
                         then=lambda result: self.notify(str(result.get("message", "rolled back"))))

        self.app.push_screen(Confirm(f"Roll back task {task['id']}?\n{fmt.escape(task['title'])}\n"
                                     "Its changes are undone; your own uncommitted work is kept.",
                                     yes="Roll back"), answered)

    def action_search(self) -> None:
        self.query_one("#text", Input).focus()

    def action_leave_input(self) -> None:
        """Escape from a filter lands on the table: the next keys move through the rows."""
        self.query_one("#ended", KeyedTable).focus()
