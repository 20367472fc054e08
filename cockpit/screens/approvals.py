"""3 · Approval Queue: pending requests from every task, oldest first, with the diff or
command and the risk. One key each: approve, deny, approve all of this kind. Decided
requests stay listed with who decided."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer, Vertical
from textual.widgets import Static

from .. import fmt
from ..widgets import KeyedTable, put
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

MAX_DIFF_LINES = 400
KEEP_DECIDED = 50


def diff_text(diff: str) -> Text:
    lines = diff.splitlines()
    text = Text(no_wrap=True, overflow="ignore")
    for line in lines[:MAX_DIFF_LINES]:
        style = ("green" if line.startswith("+") else "red" if line.startswith("-")
                 else "cyan" if line.startswith("@@") else "bold" if line.startswith("diff") else "")
        text.append(line + "\n", style=style)
    if len(lines) > MAX_DIFF_LINES:
        text.append(f"… {len(lines) - MAX_DIFF_LINES} more lines\n", style="dim")
    return text


class ApprovalsScreen(PanelScreen):
    MODE = "approvals"
    CSS_PATH = "approvals.tcss"
    POLL_S = 2.0  # requests from a daemon's tasks arrive through the store
    WATCH = frozenset({"approval_requested", "approval_decided"})
    BINDINGS = [
        Binding("a", "decide(True)", "Approve", id="approvals.approve"),
        Binding("d", "decide(False)", "Deny", id="approvals.deny"),
        Binding("A", "approve_kind", "Approve all of kind", id="approvals.approve_kind"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self.decided: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._titles: dict[str, str] = {}

    def compose_panel(self) -> ComposeResult:
        with Vertical(classes="panel-body"):
            with Vertical(id="top"):
                yield Static("", id="summary")
                yield KeyedTable(("#", 4), ("Waiting", 8), ("Kind", 8), ("Risk", 6),
                                 ("Task", 34), ("Decision", 26), ("Summary", 30), id="queue")
                yield Static("[dim]Nothing waits for you.[/]", id="empty", classes="empty-state")
            with Vertical(id="detail-pane"):
                yield Static("", id="detail-head")
                with ScrollableContainer(id="detail-scroll"):
                    yield Static("", id="detail")

    async def refresh_data(self, engine: Engine) -> None:
        pending = sorted(await engine.pending_approvals(), key=lambda a: (a["created_at"], a["id"]))
        for row in pending:
            if row["task_id"] not in self._titles:
                task = await engine.get(row["task_id"])
                self._titles[row["task_id"]] = task["title"] if task else row["task_id"]
        fresh = {str(a["id"]): a for a in pending}
        for key, row in self.rows.items():  # gone from pending: decided somewhere
            if key not in fresh and key not in self.decided:
                self._remember(key, {**row, "state": "decided", "decided_by": "?"})
        self.rows = {**fresh, **{k: v for k, v in self.decided.items() if k not in fresh}}
        self._draw()

    def _remember(self, key: str, row: dict[str, Any]) -> None:
        self.decided[key] = row
        while len(self.decided) > KEEP_DECIDED:
            self.decided.popitem(last=False)

    def handle_events(self, events: list[dict[str, Any]]) -> None:
        for ev in events:
            if ev["type"] == "approval_decided" and ev.get("approval_id") is not None:
                key = str(ev["approval_id"])
                row = self.rows.get(key, {"id": ev["approval_id"], "task_id": ev["task_id"],
                                          "kind": ev.get("kind", "?"), "risk": "", "summary": "",
                                          "detail": {}, "created_at": ev["ts"]})
                state = "approved" if ev.get("approved") else "denied"
                self._remember(key, {**row, "state": state, "decided_by": ev.get("by")})

    def _draw(self) -> None:
        table = self.query_one("#queue", KeyedTable)
        table.sync({key: (str(a["id"]), fmt.duration(fmt.now() - a["created_at"]), a["kind"],
                          fmt.risk(a["risk"]), fmt.cell(self._titles.get(a["task_id"], ""), 34),
                          _decision(a), fmt.cell(a.get("summary", ""), 30)) for key, a in self.rows.items()})
        pending = [a for a in self.rows.values() if a.get("state") == "pending"]
        self.query_one("#empty").display = not self.rows
        put(self.query_one("#summary", Static), 
            f"[b]{len(pending)}[/] pending · a approve · d deny · A approve all of the same kind")
        self._show(table.selected_key)

    @on(KeyedTable.RowHighlighted, "#queue")
    def _row(self, event: KeyedTable.RowHighlighted) -> None:
        self._show(event.row_key.value)

    def _show(self, key: str | None) -> None:
        row = self.rows.get(key or "")
        head = self.query_one("#detail-head", Static)
        body = self.query_one("#detail", Static)
        if row is None:
            head.update("")
            body.update("")
            return
        e = fmt.escape
        head.update(f"[b]#{row['id']} {e(row['kind'])}[/] risk {fmt.risk(row.get('risk', ''))} · "
                    f"task {row['task_id'][:8]} {e(fmt.short(self._titles.get(row['task_id'], ''), 40))}"
                    f"\n{e(row.get('summary', ''))}")
        detail = row.get("detail") or {}
        if detail.get("diff"):
            files = ", ".join(detail.get("files", []))
            text = Text(f"files: {files}\n\n", style="bold", no_wrap=True, overflow="ignore")
            text.append_text(diff_text(detail["diff"]))
            body.update(text)
        elif detail.get("command"):
            body.update(Text.assemble(("$ ", "bold"), (detail["command"], "bold yellow")))
        else:
            body.update(Text("\n".join(f"{k}: {v}" for k, v in detail.items())))

    def _selected(self) -> dict[str, Any] | None:
        row = self.rows.get(self.query_one("#queue", KeyedTable).selected_key or "")
        return row if row and row.get("state") == "pending" else None

    def action_decide(self, approved: bool) -> None:
        row = self._selected()
        if row is None:
            self.notify("Select a pending request first.", severity="warning")
            return
        self._decide([row], approved)

    def action_approve_kind(self) -> None:
        row = self._selected()
        if row is None:
            return
        same = [a for a in self.rows.values()
                if a.get("state") == "pending" and a["kind"] == row["kind"]]
        self._decide(same, True)

    def _decide(self, rows: list[dict[str, Any]], approved: bool) -> None:
        verdict = "approved" if approved else "denied"

        async def call(engine: Engine) -> None:
            for row in rows:
                await engine.decide(int(row["id"]), approved, by="operator")
                self._remember(str(row["id"]), {**row, "state": verdict, "decided_by": "operator"})

        self.act(call, done=f"{verdict.capitalize()} {len(rows)} request(s)")


def _decision(row: dict[str, Any]) -> str:
    state = row.get("state", "pending")
    if state == "pending":
        return "[b yellow]pending[/]"
    style = "green" if state == "approved" else "red" if state == "denied" else "dim"
    return f"[{style}]{state}[/] by {fmt.escape(row.get('decided_by') or '?')}"
