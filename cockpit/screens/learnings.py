"""4 · Learnings: patterns, improvements and next steps the agent drew from its tasks;
search them, see where each came from and how often it was used since."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import Input, Static

from .. import fmt
from ..widgets import KeyedTable, put
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

CATEGORY = {"pattern": "[cyan]pattern[/]", "improvement": "[magenta]improvement[/]",
            "nextStep": "[yellow]next step[/]"}


class LearningsScreen(PanelScreen):
    MODE = "learnings"
    CSS_PATH = "learnings.tcss"
    WATCH = frozenset({"learning"})
    BINDINGS = [Binding("slash", "search", "Search", id="learnings.search")]

    def __init__(self) -> None:
        super().__init__()
        self._debounce: Timer | None = None

    def compose_panel(self) -> ComposeResult:
        with Vertical(classes="panel-body"):
            yield Input(placeholder="search learnings (/)", id="query")
            yield Static("", id="counts")
            yield KeyedTable(("Category", 12), ("Learning", 62), ("From task", 22), ("Used", 5),
                             ("Age", 10), id="learned")
            yield Static("[dim]No learnings yet: they are collected when a task ends.[/]",
                         id="empty", classes="empty-state")

    async def refresh_data(self, engine: Engine) -> None:
        query = self.query_one("#query", Input).value.strip() or None
        items = await engine.learnings(query)
        titles: dict[str, str] = {}
        for task_id in {i["task_id"] for i in items if i.get("task_id")}:
            task = await engine.get(task_id)
            titles[task_id] = task["title"] if task else task_id
        self.query_one("#learned", KeyedTable).sync({
            str(i["id"]): (CATEGORY.get(i["category"], i["category"]), fmt.cell(i["text"], 62),
                           fmt.cell(titles.get(i.get("task_id") or "", "—"), 22), str(i["uses"]),
                           fmt.ago(i["created_at"]))
            for i in items})
        counts = {c: sum(1 for i in items if i["category"] == c) for c in CATEGORY}
        put(self.query_one("#counts", Static), 
            f"{counts['pattern']} patterns · {counts['improvement']} improvements · "
            f"{counts['nextStep']} next steps" + (f"  [dim](matching “{fmt.escape(query)}”)[/]"
                                                  if query else ""))
        self.query_one("#empty").display = not items

    @on(Input.Changed, "#query")
    def _typed(self) -> None:
        if self._debounce:
            self._debounce.stop()
        self._debounce = self.set_timer(0.25, self.request_refresh)

    def action_search(self) -> None:
        self.query_one("#query", Input).focus()
