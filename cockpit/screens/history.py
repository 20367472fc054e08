"""6 · Execution History: every finished task, filtered by state, date and text; open one
to replay its events; roll it back from here."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Input, Select, Static

from .. import fmt
from ..widgets import Confirm, EventLog, KeyedTable, put
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

ENDED = ["succeeded", "failed", "cancelled", "rolled_back", "interrupted"]
PAGE = 200


def parse_day(text: str) -> float | None:
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").timestamp()
    except ValueError:
        return None


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

    def compose_panel(self) -> ComposeResult:
        with Vertical(classes="panel-body"):
            with Horizontal(id="filters"):
                yield Input(placeholder="text or id (/)", id="text")
                yield Select([(s.replace("_", " "), s) for s in ENDED], prompt="any state",
                             id="state")
                yield Input(placeholder="since YYYY-MM-DD", id="since")
            yield KeyedTable(("ID", 8), ("Finished", 11), ("State", 11), ("Took", 7),
                             ("Cost", 8), ("Task", 34), ("Outcome", 24), id="ended")
            yield EventLog(id="replay")
            yield Static("", id="summary")

    def body_mounted(self) -> None:
        self.query_one("#replay", EventLog).write("enter (or o): replay the selected task here")

    async def refresh_data(self, engine: Engine) -> None:
        state = self.query_one("#state", Select).value
        states = [str(state)] if state in ENDED else ENDED
        text = self.query_one("#text", Input).value.strip() or None
        since = parse_day(self.query_one("#since", Input).value)
        tasks = await engine.list(states=states, text=text, since=since, limit=PAGE)
        tasks.sort(key=lambda t: (t.get("finished_at") or t["created_at"]), reverse=True)
        self.tasks = {t["id"]: t for t in tasks}
        self.query_one("#ended", KeyedTable).sync({
            t["id"]: (t["id"][:8], fmt.clock(t.get("finished_at")), fmt.state(t["state"]),
                      fmt.elapsed(t), fmt.money(t["cost_usd"]), fmt.cell(t["title"], 34),
                      fmt.cell(t.get("error") or t.get("summary") or "", 24))
            for t in tasks})
        ok = sum(1 for t in tasks if t["state"] == "succeeded")
        put(self.query_one("#summary", Static), 
            f"{len(tasks)} shown · {ok} succeeded · enter replay · r rollback"
            + (" · [dim]first 200 only[/]" if len(tasks) >= PAGE else ""))

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
        log.border_title = f"replay {task_id[:8]}"

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
