"""6 · Execution History: every finished task, filtered by state, date range and text; open
one to replay its events (with their times); roll it back from here.

"Took" is how long the task ran: a rollback later moves the row's finished_at to the
rollback's time, so a rolled-back task's run ends at its own first end state instead."""

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
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

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


def took(task: dict[str, Any], run_end: float | None = None) -> str:
    start = task.get("started_at") or task.get("created_at")
    end = run_end if task.get("state") == "rolled_back" else task.get("finished_at")
    if not start or not end:
        return "—"
    return fmt.duration(end - start)


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
    WATCH = frozenset({"complete", "rollback"})
    BINDINGS = [
        Binding("enter,o", "replay", "Replay", id="history.replay"),
        Binding("r", "rollback", "Rollback", id="history.rollback"),
        Binding("slash", "search", "Filter", id="history.filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.tasks: dict[str, dict[str, Any]] = {}
        self.replaying: str | None = None
        self._debounce: Timer | None = None
        self._run_ends: dict[str, float] = {}  # rolled-back task -> when its run ended

    def compose_panel(self) -> ComposeResult:
        with Vertical(classes="panel-body"):
            with Horizontal(id="filters"):
                yield Input(placeholder="text or id (/)", id="text")
                yield Select([(s.replace("_", " "), s) for s in ENDED], prompt="any state",
                             id="state")
                yield Input(placeholder="since YYYY-MM-DD", id="since")
                yield Input(placeholder="until YYYY-MM-DD", id="until")
            yield Static("", id="filter-warning")
            yield KeyedTable(("ID", 8), ("Finished", 11), ("State", 11), ("Took", 7),
                             ("Cost", 8), ("Task", 34), ("Outcome", 24), id="ended")
            yield ReplayLog(id="replay")
            yield Static("", id="summary")

    def body_mounted(self) -> None:
        self.query_one("#replay", EventLog).write("enter (or o): replay the selected task here")
        self.query_one("#filter-warning").display = False

    async def refresh_data(self, engine: Engine) -> None:
        state = self.query_one("#state", Select).value
        states = [str(state)] if state in ENDED else ENDED
        text = self.query_one("#text", Input).value.strip() or None
        since_field, until_field = self.query_one("#since", Input), self.query_one("#until", Input)
        since, until, problems = day_range(since_field.value, until_field.value)
        self._warn(problems, since_field, until_field)
        tasks = await engine.list(states=states, text=text, since=since, until=until, limit=PAGE)
        missing = [t["id"] for t in tasks
                   if t["state"] == "rolled_back" and t["id"] not in self._run_ends]
        self._run_ends.update(await engine.views.run_ends(missing))
        tasks.sort(key=lambda t: self._finished(t) or t["created_at"], reverse=True)
        self.tasks = {t["id"]: t for t in tasks}
        self.query_one("#ended", KeyedTable).sync({
            t["id"]: (t["id"][:8], fmt.clock(self._finished(t)), fmt.state(t["state"]),
                      took(t, self._run_ends.get(t["id"])), fmt.money(t["cost_usd"]),
                      fmt.cell(t["title"], 34),
                      fmt.cell(t.get("error") or t.get("summary") or "", 24))
            for t in tasks})
        ok = sum(1 for t in tasks if t["state"] == "succeeded")
        put(self.query_one("#summary", Static),
            f"{len(tasks)} shown · {ok} succeeded · enter replay · r rollback"
            + (" · [dim]first 200 only[/]" if len(tasks) >= PAGE else ""))

    def _finished(self, task: dict[str, Any]) -> float | None:
        """When the run finished (a rollback's later time is in the replay, not here)."""
        if task["state"] == "rolled_back":
            return self._run_ends.get(task["id"]) or task.get("finished_at")
        return task.get("finished_at")

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

    @on(KeyedTable.RowSelected, "#ended")
    def action_replay(self) -> None:
        task_id = self._selected()
        if not task_id:
            return
        self.replaying = task_id
        log = self.query_one("#replay", EventLog)
        log.reset()
        task = self.tasks.get(task_id) or {}
        day = datetime.fromtimestamp(task["created_at"]).strftime(DAY_FORMAT) if task else ""
        log.border_title = f"replay {task_id[:8]} · {day}" if day else f"replay {task_id[:8]}"

        async def load(engine: Engine) -> list[dict[str, Any]]:
            return await engine.events(task_id)

        def show(events: list[dict[str, Any]]) -> None:
            if self.replaying == task_id:
                log.add(events[-(log.events.maxlen or len(events)):])

        self.act(load, then=show)

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
