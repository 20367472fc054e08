"""4 · Learnings: what the agent drew from its tasks, and what each learning was worth.

Each row is one learning (near-duplicates taught by several tasks are merged into one),
with its state (active, pinned: always given, retired: never), how often it was given,
and its measured effect: success of comparable tasks with it against without it
(agent/learnings/book.py says what comparable means). The pane under the table shows the
highlighted one in full: where it came from, the words each task used, the tasks it was
given to and how they ended, and why it was retired or restored; Enter shows it on the
whole screen.

Keys: `p` pins or unpins, `e` edits (the dialog is the confirmation), `r` retires after a
confirm, `u` restores. Every change is audited, like the CLI's `learnings pin|edit|...`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Input, Static

from .. import fmt
from ..widgets import Confirm, KeyedTable, put
from ..widgets.detail_view import DetailView
from ..widgets.edit_text import EditText
from ..widgets.keyed_table import Col
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

# category -> (label, tone)
CATEGORY = {"pattern": ("pattern", "info"), "improvement": ("improvement", "alt"),
            "nextStep": ("next step", "accent")}
VERDICT_TONE = {"helps": "success", "hurts": "error", "unclear": "warning"}
OUTCOME_TONE = {"success": "success", "failure": "error"}


def category(name: str) -> str:
    label, tone = CATEGORY.get(name, (name, ""))
    return fmt.paint(label, tone) if tone else fmt.escape(label)


def state_cell(item: dict[str, Any]) -> str:
    if item.get("state") == "retired":
        return fmt.paint("retired", "error")
    return fmt.paint("pinned", "accent") if item.get("pinned") else "active"


def rate(k: int, n: int) -> str:
    return f"{k}/{n}" if n else "—"


def effect_cell(item: dict[str, Any]) -> str:
    verdict = item.get("verdict", "")
    if item.get("effect") is None:
        return f"[dim]{fmt.escape(verdict)}[/]"
    text = f"{item['effect'] * 100:+.0f} {verdict}"
    tone = VERDICT_TONE.get(verdict)
    return fmt.paint(text, tone) if tone else fmt.escape(text)


def counts_line(items: list[dict[str, Any]], query: str | None) -> str:
    parts = []
    active = [i for i in items if i.get("state", "active") == "active"]
    for key, (label, _tone) in CATEGORY.items():
        parts.append(fmt.plural(sum(1 for i in active if i["category"] == key), label))
    pinned = sum(1 for i in active if i.get("pinned"))
    retired = len(items) - len(active)
    merged = sum(int(i.get("merged") or 0) for i in items)
    if pinned:
        parts.append(f"{pinned} pinned")
    if retired:
        parts.append(f"{retired} retired")
    if merged:
        parts.append(f"{merged} more merged as near-duplicates")
    text = " · ".join(parts)
    if query:
        text += f"  [dim](matching “{fmt.escape(query)}”)[/]"
    return text


def detail(item: dict[str, Any] | None, titles: dict[str, str]) -> str:
    """The full learning: provenance, effect, uses, state (markup)."""
    if item is None:
        return "[dim]Select a learning to see it in full.[/]"
    e = fmt.escape
    taught = int(item.get("taught") or 1)
    sources = item.get("source_tasks") or ([item["source_task"]] if item.get("source_task") else [])
    head = (f"#{item['id']} {category(item['category'])} · {state_cell(item)} · taught by "
            f"{fmt.plural(taught, 'task')} · given {fmt.plural(int(item.get('uses') or 0), 'time')}"
            f" · first learned {fmt.ago(item.get('created_at'))}")
    lines = [head, "", f"[b]{e(item['text'])}[/]"]
    if item.get("edited"):
        lines.append(f"[dim](edited by {e(item.get('changed_by') or 'the operator')})[/]")
    if item.get("state") == "retired":
        lines.append(f"{fmt.paint('why retired:', 'warning')} {e(item.get('reason') or '')}")
    elif item.get("reason"):
        lines.append(f"[dim]last change: {e(item['reason'])}[/]")
    lines.append("")
    verdict = item.get("verdict", "")
    effect = f"effect: {e(item.get('summary', ''))} → {e(verdict)}"
    tone = VERDICT_TONE.get(verdict)
    lines.append(fmt.paint(effect, tone) if tone else effect)
    if item.get("pending"):
        lines.append(f"[dim]{fmt.plural(item['pending'], 'task')} given it still running[/]")
    if sources:
        first, *more = sources
        lines.append(f"from [b]{e(titles.get(first, first))}[/] [dim]({e(first)})[/]")
        for task_id in more[:8]:
            lines.append(f"also {e(titles.get(task_id, task_id))} [dim]({e(task_id)})[/]")
        if len(more) > 8:
            lines.append(f"[dim]… and {len(more) - 8} more[/]")
    else:
        lines.append(f"[dim]not tied to a task (origin: {e(item.get('origin') or 'local')})[/]")
    said = [s for s in item.get("said") or [] if s != item["text"]]
    for words in said[:5]:
        lines.append(f"[dim]  also said as:[/] {e(words)}")
    given = item.get("given_to") or []
    if given:
        lines.append("given to:")
        for use in given[:10]:
            outcome = use.get("outcome", "")
            mark = fmt.paint(outcome, OUTCOME_TONE[outcome]) if outcome in OUTCOME_TONE else e(outcome)
            title = titles.get(use["task_id"], use["task_id"])
            lines.append(f"  {mark} {e(fmt.short(title, 60))} [dim]({e(use['task_id'])})[/]")
    return "\n".join(lines)


class LearningsScreen(PanelScreen):
    MODE = "learnings"
    CSS_PATH = "learnings.tcss"
    COMPACT = "#query"
    WATCH = frozenset({"learning", "analysis", "complete", "rollback"})
    ENTER = "the learning in full: where it came from, the tasks given it and how they ended"
    BINDINGS = [  # `/` (search) comes from PanelScreen: it calls action_search
        Binding("p", "pin", "Pin/unpin", id="learnings.pin"),
        Binding("e", "edit", "Edit", id="learnings.edit"),
        Binding("r", "retire", "Retire", id="learnings.retire"),
        Binding("u", "restore", "Restore", id="learnings.restore"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._debounce: Timer | None = None
        self.items: dict[str, dict[str, Any]] = {}
        self._titles: dict[str, str] = {}  # task id -> title (a title never changes)

    def compose_panel(self) -> ComposeResult:
        with Vertical(classes="panel-body"):
            yield Input(placeholder="search learnings (/)", id="query")
            yield Static("", id="counts")
            # Narrow: Tasks goes first, then With, then Without.
            yield KeyedTable(("Category", 11), "Learning", ("State", 7), Col("Tasks", 5, drop=1),
                             ("Used", 4), Col("With", 7, drop=2), Col("Without", 7, drop=3),
                             ("Effect", 16), flex="Learning", flex_min=20, id="learned")
            yield Static("[dim]No learnings yet: they are collected when a task ends.[/]",
                         id="empty", classes="empty-state")
            with VerticalScroll(id="detail-pane"):
                yield Static("", id="detail")

    def body_mounted(self) -> None:
        self.query_one("#detail-pane").border_title = "Selected learning"

    async def refresh_data(self, engine: Engine) -> None:
        query = self.query_one("#query", Input).value.strip() or None
        items = await engine.learning_stats(query)
        for item in items:
            wanted = [*(item.get("source_tasks") or []),
                      *(use["task_id"] for use in (item.get("given_to") or [])[:10])]
            for task_id in wanted:
                if task_id and task_id not in self._titles:
                    task = await engine.get(task_id)
                    self._titles[task_id] = task["title"] if task else task_id
        self.items = {str(i["id"]): i for i in items}
        table = self.query_one("#learned", KeyedTable)
        table.sync({
            str(i["id"]): (category(i["category"]), fmt.cell(i["text"], 200), state_cell(i),
                           str(i.get("taught") or 1), str(i["uses"]),
                           rate(i["succeeded_with"], i["tasks_with"]),
                           rate(i["succeeded_without"], i["tasks_without"]), effect_cell(i))
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

    # -- the operator's changes ------------------------------------------------------------
    def _selected(self) -> dict[str, Any] | None:
        item = self.items.get(self.query_one("#learned", KeyedTable).selected_key or "")
        if item is None:
            self.notify("No learning selected", severity="warning")
        return item

    def _change(self, item: dict[str, Any], action: str, done: str, **kw: Any) -> None:
        self.act(lambda e: e.change_learning(item["id"], action, by="operator", **kw), done=done)

    def action_pin(self) -> None:
        item = self._selected()
        if item is None:
            return
        if item.get("state") == "retired":
            self.notify(f"Learning {item['id']} is retired: restore it (u) before pinning",
                        severity="warning")
            return
        if item.get("pinned"):
            self._change(item, "unpin", f"Learning {item['id']} unpinned: given when relevant")
        else:
            self._change(item, "pin", f"Learning {item['id']} pinned: given to every task")

    def action_edit(self) -> None:
        item = self._selected()
        if item is None:
            return

        def answered(text: str | None) -> None:
            if text is None:
                return
            if " ".join(text.split()) == item["text"]:
                self.notify("Unchanged: nothing saved")
                return
            self._change(item, "edit", f"Learning {item['id']} edited", text=text)

        self.app.push_screen(EditText(
            f"Edit learning {item['id']} ({CATEGORY.get(item['category'], (item['category'],))[0]})."
            " The words each task used are kept.", item["text"]), answered)

    def action_retire(self) -> None:
        item = self._selected()
        if item is None:
            return
        if item.get("state") == "retired":
            self.notify(f"Learning {item['id']} is already retired (u restores it)")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._change(item, "retire", f"Learning {item['id']} retired",
                             reason="retired by the operator in the cockpit")

        pinned = " It is pinned: retiring unpins it." if item.get("pinned") else ""
        self.app.push_screen(Confirm(
            f"Retire learning {item['id']}? It will never be given to a task again "
            f"(u restores it).{pinned}\n{fmt.escape(fmt.short(item['text'], 120))}",
            yes="Retire"), answered)

    def action_restore(self) -> None:
        item = self._selected()
        if item is None:
            return
        if item.get("state") != "retired":
            self.notify(f"Learning {item['id']} is not retired", severity="warning")
            return
        self._change(item, "restore", f"Learning {item['id']} restored: given when relevant")
