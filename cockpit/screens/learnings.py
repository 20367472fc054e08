"""4 · Learnings: patterns, improvements and next steps the agent drew from its tasks;
search them, see where each came from and how often it was used since.

The store merges a lesson taught by several tasks into one row (how many taught it, uses
summed); the pane under the table shows the highlighted one, Enter shows it in full on the
whole screen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Input, Static

from .. import fmt
from ..widgets import KeyedTable, put
from ..widgets.detail_view import DetailView
from ..widgets.keyed_table import Col
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

# category -> (label, tone)
CATEGORY = {"pattern": ("pattern", "info"), "improvement": ("improvement", "alt"),
            "nextStep": ("next step", "accent")}


def category(name: str) -> str:
    label, tone = CATEGORY.get(name, (name, ""))
    return fmt.paint(label, tone) if tone else fmt.escape(label)


def counts_line(items: list[dict[str, Any]], query: str | None) -> str:
    parts = []
    for key, (label, _tone) in CATEGORY.items():
        parts.append(fmt.plural(sum(1 for i in items if i["category"] == key), label))
    text = " · ".join(parts)
    if query:
        text += f"  [dim](matching “{fmt.escape(query)}”)[/]"
    return text


def detail(item: dict[str, Any] | None, titles: dict[str, str]) -> str:
    """The full learning, where it came from and how it was used (markup)."""
    if item is None:
        return "[dim]Select a learning to see it in full.[/]"
    e = fmt.escape
    taught = int(item.get("taught") or 1)
    sources = item.get("task_ids") or ([item["task_id"]] if item.get("task_id") else [])
    uses = int(item.get("uses") or 0)
    head = (f"{category(item['category'])} · taught by {fmt.plural(taught, 'task')} · "
            f"used {fmt.plural(uses, 'time')} · first learned {fmt.ago(item['created_at'])}")
    if taught > 1 and item.get("last_at"):
        head += f", last {fmt.ago(item['last_at'])}"
    lines = [head, "", f"[b]{e(item['text'])}[/]", ""]
    if sources:
        first, *more = sources
        lines.append(f"from [b]{e(titles.get(first, first))}[/] [dim]({e(first)})[/]")
        for task_id in more[:8]:
            lines.append(f"also {e(titles.get(task_id, task_id))} [dim]({e(task_id)})[/]")
        if len(more) > 8:
            lines.append(f"[dim]… and {len(more) - 8} more[/]")
    else:
        lines.append("[dim]not tied to a task[/]")
    return "\n".join(lines)


class LearningsScreen(PanelScreen):
    MODE = "learnings"
    CSS_PATH = "learnings.tcss"
    COMPACT = "#query"
    WATCH = frozenset({"learning"})
    ENTER = "the learning in full, where it came from and how often it was used"

    def __init__(self) -> None:
        super().__init__()
        self._debounce: Timer | None = None
        self.items: dict[str, dict[str, Any]] = {}
        self._titles: dict[str, str] = {}  # task id -> title (a title never changes)

    def compose_panel(self) -> ComposeResult:
        with Vertical(classes="panel-body"):
            yield Input(placeholder="search learnings (/)", id="query")
            yield Static("", id="counts")
            # Narrow: From task goes first, then Age (README).
            yield KeyedTable(("Category", 11), "Learning", Col("From task", 22, drop=1),
                             ("Tasks", 5), ("Used", 4), Col("Age", 10, drop=2),
                             flex="Learning", flex_min=24, id="learned")
            yield Static("[dim]No learnings yet: they are collected when a task ends.[/]",
                         id="empty", classes="empty-state")
            with VerticalScroll(id="detail-pane"):
                yield Static("", id="detail")

    def body_mounted(self) -> None:
        self.query_one("#detail-pane").border_title = "Selected learning"

    async def refresh_data(self, engine: Engine) -> None:
        query = self.query_one("#query", Input).value.strip() or None
        items = await engine.learnings(query)
        for item in items:
            for task_id in item.get("task_ids") or [item.get("task_id")]:
                if task_id and task_id not in self._titles:
                    task = await engine.get(task_id)
                    self._titles[task_id] = task["title"] if task else task_id
        self.items = {str(i["id"]): i for i in items}
        table = self.query_one("#learned", KeyedTable)
        table.sync({
            str(i["id"]): (category(i["category"]), fmt.cell(i["text"], 300),
                           fmt.cell(self._titles.get(i.get("task_id") or "", "—"), 22),
                           str(i.get("taught") or 1), str(i["uses"]), fmt.ago(i["created_at"]))
            for i in items})
        put(self.query_one("#counts", Static), counts_line(items, query))
        self.query_one("#empty").display = not items
        self.query_one("#detail-pane").display = bool(items)
        self._show(table.selected_key)

    @on(KeyedTable.RowHighlighted, "#learned")
    def _row(self, event: KeyedTable.RowHighlighted) -> None:
        self._show(event.row_key.value)

    def drill(self, table: KeyedTable, key: str) -> None:
        item = self.items.get(key)
        if item is not None:
            self.app.push_screen(DetailView(f"Learning #{key}", detail(item, self._titles)))

    def _show(self, key: str | None) -> None:
        put(self.query_one("#detail", Static), detail(self.items.get(key or ""), self._titles))

    @on(Input.Changed, "#query")
    def _typed(self) -> None:
        if self._debounce:
            self._debounce.stop()
        self._debounce = self.set_timer(0.25, self.request_refresh)

    def action_search(self) -> None:
        self.query_one("#query", Input).focus()

    def action_leave_input(self) -> None:
        self.query_one("#learned", KeyedTable).focus()  # Escape lands on the rows, not nowhere
