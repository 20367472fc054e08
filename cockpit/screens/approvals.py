"""3 · Approval Queue: pending requests from every task first, oldest first, with the diff
or command and the risk; then the decided ones, newest first, with who decided (read from
the store's approval rows: a decision from the CLI, another panel or before a restart shows
its decider too). One key each: approve, deny, approve all of this kind (after a confirm
that shows what it covers). Enter shows the request in full, on the whole screen.

The cursor goes to the first pending request when the panel opens, when a new request
arrives and when the one under it is decided; `w` (from any panel) moves it to the next."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer, Vertical
from textual.notifications import SeverityLevel
from textual.widgets import Static

from .. import fmt
from ..keys import key_for
from ..widgets import Confirm, KeyedTable, put
from ..widgets.detail_view import DetailView
from ..widgets.keyed_table import Col
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

MAX_DIFF_LINES = 400
KEEP_DECIDED = 50  # decided requests still listed (newest), with who decided
TASK_W = 26
LIST_AT_MOST = 8  # distinct commands listed in the approve-all confirm


def diff_text(diff: str, limit: int | None = MAX_DIFF_LINES) -> Text:
    lines = diff.splitlines()
    text = Text(no_wrap=True, overflow="ignore")
    limit = len(lines) if limit is None else limit
    for line in lines[:limit]:
        style = ("green" if line.startswith("+") else "red" if line.startswith("-")
                 else "cyan" if line.startswith("@@") else "bold" if line.startswith("diff") else "")
        text.append(line + "\n", style=style)
    if len(lines) > limit:
        text.append(f"… {len(lines) - limit} more lines (enter: the whole diff)\n",
                    style="dim")
    return text


class ApprovalsScreen(PanelScreen):
    MODE = "approvals"
    CSS_PATH = "approvals.tcss"
    POLL_S = 2.0  # requests from a daemon's tasks arrive through the store
    WATCH = frozenset({"approval_requested", "approval_decided"})
    ENTER = "the request in full (the whole diff or command), full screen"
    BINDINGS = [
        Binding("a", "decide(True)", "Approve", id="approvals.approve"),
        Binding("d", "decide(False)", "Deny", id="approvals.deny"),
        Binding("A", "approve_kind", "Approve all of kind", id="approvals.approve_kind"),
        Binding("R", "rebase", "Rebase", id="approvals.rebase"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self._titles: dict[str, str] = {}
        self._pending_seen: set[str] = set()  # pending keys at the last draw
        self._drawn = False
        self._focus_on_draw = False  # `w` came before the queue was first drawn

    def compose_panel(self) -> ComposeResult:
        with Vertical(classes="panel-body"):
            with Vertical(id="top"):
                yield Static("", id="summary")
                # Narrow: Waiting goes first, then Task, then Decision (README).
                yield KeyedTable(("#", 4), Col("Waiting", 7, drop=1), ("Kind", 8), ("Risk", 6),
                                 Col("Task", TASK_W, drop=2), Col("Decision", 20, drop=3),
                                 "Summary", flex="Summary", flex_min=16, id="queue")
                yield Static("[dim]Nothing waits for you.[/]", id="empty", classes="empty-state")
            with Vertical(id="detail-pane"):
                yield Static("", id="detail-head")
                with ScrollableContainer(id="detail-scroll"):
                    yield Static("", id="detail")

    async def refresh_data(self, engine: Engine) -> None:
        pending = await engine.pending_approvals()
        decided = [a for a in await engine.recent_approvals(limit=2 * KEEP_DECIDED)
                   if a["state"] != "pending" and not _by_rule(a)][:KEEP_DECIDED]
        pending.sort(key=lambda a: (a["created_at"], a["id"]))  # oldest first
        decided.sort(key=lambda a: (-(a.get("decided_at") or a["created_at"]), -a["id"]))
        # The improvement jobs' pending proposals wait here too, after the requests.
        rows = pending + await proposal_rows(engine) + decided
        for row in rows:
            if row["task_id"] and row["task_id"] not in self._titles:
                task = await engine.get(row["task_id"])
                self._titles[row["task_id"]] = task["title"] if task else ""
        self.rows = {str(a["id"]) if "proposal" not in a else f"p:{a['id']}": a for a in rows}
        self._draw()

    def _draw(self) -> None:
        table = self.query_one("#queue", KeyedTable)
        table.sync({key: (str(a["id"]), _waiting(a), fmt.cell(a["kind"], 8), fmt.risk(a["risk"]),
                          fmt.cell(f"{a['task_id'][:8]} {self._titles.get(a['task_id'], '')}",
                                   TASK_W),
                          _decision(a), fmt.cell(a.get("summary", ""), 300))  # the table cuts it
                    for key, a in self.rows.items()})
        pending = [key for key, a in self.rows.items() if a["state"] == "pending"]
        under = table.selected_key
        arrived = set(pending) - self._pending_seen
        decided_under = under in self._pending_seen and under not in pending
        if pending and (arrived or decided_under or under is None):
            table.select_key(pending[0])
        self._pending_seen = set(pending)
        self.query_one("#empty").display = not self.rows
        keys = [key_for(self, f"approvals.{name}", name[0]) for name in
                ("approve", "deny", "approve_kind")]
        put(self.query_one("#summary", Static),
            f"[b]{len(pending)}[/] pending · {keys[0]} approve · {keys[1]} deny · "
            f"{keys[2]} approve all of the same kind")
        self._show(table.selected_key)
        self._drawn = True
        if self._focus_on_draw:
            self._focus_on_draw = False
            table.focus()

    @on(KeyedTable.RowHighlighted, "#queue")
    def _row(self, event: KeyedTable.RowHighlighted) -> None:
        self._show(event.row_key.value)

    def _show(self, key: str | None) -> None:
        row = self.rows.get(key or "")
        head = self.query_one("#detail-head", Static)
        body = self.query_one("#detail", Static)
        if row is None:
            put(head, "")
            put(body, "")
            return
        e = fmt.escape
        title = self._titles.get(row["task_id"], "")
        whose = (f"task {row['task_id'][:8]} {e(fmt.short(title, 60))}" if "proposal" not in row
                 else f"from the {e(row['proposal']['source'])} job: accepted, it runs as a task")
        put(head, f"[b]#{row['id']} {e(row['kind'])}[/] risk {fmt.risk(row.get('risk', ''))} · "
                  f"{_decision(row)} · {whose}"
                  f"\n{e(row.get('summary', ''))}")
        detail = row.get("detail") or {}
        body.set_class(not detail.get("diff"), "-wrap")  # a diff scrolls sideways; text wraps
        put(body, detail_text(detail))

    def show_request(self, key: str) -> None:
        """The cursor on this request (chosen on another panel)."""
        if self._ready:
            table = self.query_one("#queue", KeyedTable)
            table.select_key(key)
            table.focus()

    def next_pending(self) -> None:
        """The cursor to the next pending request after the one under it (cycling)."""
        if not self._ready or not self._drawn:  # the first draw selects the first pending
            self._focus_on_draw = True
            return
        table = self.query_one("#queue", KeyedTable)
        pending = [key for key, a in self.rows.items() if a["state"] == "pending"]
        if not pending:
            return
        under = table.selected_key
        later = pending[pending.index(under) + 1:] if under in pending else []
        table.select_key((later or pending)[0] if under in pending else pending[0])
        table.focus()

    def drill(self, table: KeyedTable, key: str) -> None:
        row = self.rows.get(key)
        if row is None:
            return
        detail = row.get("detail") or {}
        title = (f"#{row['id']} {row['kind']} · risk {row.get('risk', '')} · "
                 f"{_plain(_decision(row))} · task {row['task_id'][:8]} "
                 f"{self._titles.get(row['task_id'], '')}")
        body = Text(f"{row.get('summary', '')}\n\n", style="bold")
        body.append_text(detail_text(detail, limit=None))
        self.app.push_screen(DetailView(title, body, wrap=not detail.get("diff")))

    def _selected(self) -> dict[str, Any] | None:
        row = self.rows.get(self.query_one("#queue", KeyedTable).selected_key or "")
        return row if row and row.get("state") == "pending" else None

    def action_decide(self, approved: bool) -> None:
        row = self._selected()
        if row is None:
            self.notify("Select a pending request first.", severity="warning")
            return
        self._decide([row], approved)

    def action_rebase(self) -> None:
        """A task waiting to apply: rebase it onto the workspace's HEAD; its apply request
        comes back with what would land (the second apply's choice; `d` keeps it)."""
        row = self._selected()
        if row is None or row["kind"] not in ("apply", "rebase"):
            self.notify("Select a pending apply or rebase request first.", severity="warning")
            return
        task_id = row["task_id"]
        self.act(lambda e: e.rebase(task_id, by="operator"),
                 done=f"Rebasing {task_id[:8]} onto HEAD: its apply request comes back")

    def action_approve_kind(self) -> None:
        row = self._selected()
        if row is None:
            self.notify("Select a pending request first.", severity="warning")
            return
        same = [a for a in self.rows.values()
                if a.get("state") == "pending" and a["kind"] == row["kind"]]

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide(same, True)

        self.app.push_screen(Confirm(approve_all_question(row["kind"], same),
                                     yes=f"Approve {len(same)}"), answered)

    def _decide(self, rows: list[dict[str, Any]], approved: bool) -> None:
        """Decide each row; one that someone else (the CLI, the timeout, a stop) decided
        first since it was drawn is reported with who won, never counted as ours."""

        async def call(engine: Engine) -> tuple[int, list[str]]:
            from agent.approvals import AlreadyDecided
            from agent.errors import UsageError
            from agent.improve.views import decide as decide_proposal

            won, lost = 0, []
            for row in rows:
                try:
                    if "proposal" in row:
                        await decide_proposal(engine, row["id"], approved, by="operator")
                    else:
                        await engine.decide(int(row["id"]), approved, by="operator")
                    won += 1
                except (AlreadyDecided, UsageError) as exc:  # UsageError: a proposal's
                    lost.append(str(exc))
            return won, lost

        def report(result: tuple[int, list[str]]) -> None:
            won, lost = result
            message, severity = decision_note(approved, len(rows), won, lost)
            self.notify(message, severity=severity, timeout=8 if lost else 3)

        self.act(call, then=report)


async def proposal_rows(engine: Engine) -> list[dict[str, Any]]:
    """Pending proposals as queue rows: accepting one lets it run as a task (which asks
    again before it applies), rejecting drops it."""
    from agent.improve import records

    out = []
    for p in await records.proposals(engine.store, (records.PENDING,)):
        out.append({
            "id": p["id"], "kind": "proposal", "risk": p["impact"], "task_id": "",
            "state": "pending", "created_at": p["created_at"], "summary": p["title"],
            "proposal": p, "detail": {"proposal": p["id"], "from": p["source"],
                                      "impact": p["impact"], "effort": p["effort"],
                                      "rationale": p["rationale"], "task": p["task"],
                                      "evidence": ", ".join(p["evidence"]) or "none"},
        })  # fmt: skip
    return out


def decision_note(
    approved: bool, asked: int, won: int, lost: list[str]
) -> tuple[str, SeverityLevel]:
    """(message, severity) for what a/d/A did: all of it, or what lost and to whom."""
    verdict = "approved" if approved else "denied"
    if not lost:
        return f"{verdict.capitalize()} {won} request(s)", "information"
    first = lost[0] + (f" (and {len(lost) - 1} more)" if len(lost) > 1 else "")
    if won:
        return f"{verdict.capitalize()} {won} of {asked} request(s); {first}", "warning"
    return f"Not {verdict}: {first}", "warning"


def what(row: dict[str, Any]) -> str:
    """What a request would let happen, in one line: the command, the SQL, or its summary."""
    given = (row.get("detail") or {}).get("input") or {}
    if isinstance(given, dict) and given.get("command"):
        return f"$ {given['command']}"
    if isinstance(given, dict) and given.get("sql"):
        return f"sql> {given['sql']}"
    return str(row.get("summary") or row.get("kind") or "")


def approve_all_question(kind: str, rows: list[dict[str, Any]]) -> str:
    """'Approve 3 pending command requests?' and each distinct one they cover, with counts."""
    counts = Counter(what(r) for r in rows)
    lines = [f"[b]Approve {len(rows)} pending {fmt.escape(kind)} request"
             f"{'' if len(rows) == 1 else 's'}?[/] They cover:"]
    for text, n in counts.most_common(LIST_AT_MOST):
        lines.append(f"  {fmt.escape(fmt.short(text, 52))}" + (f"  [dim]×{n}[/]" if n > 1 else ""))
    if len(counts) > LIST_AT_MOST:
        lines.append(f"  [dim]… and {len(counts) - LIST_AT_MOST} more[/]")
    return "\n".join(lines)


def detail_text(detail: dict[str, Any], limit: int | None = MAX_DIFF_LINES) -> Text:
    """A request's detail: the diff (coloured, never wrapped), or the `$ command` line
    then the rest of its input and the rule that asked."""
    clash = conflict_text(detail)
    if detail.get("diff"):
        files = ", ".join(detail.get("files", []))
        text = Text(no_wrap=True, overflow="ignore")
        text.append_text(clash)
        text.append(f"files: {files}\n\n", style="bold")
        text.append_text(diff_text(detail["diff"], limit))
        return text
    text = clash
    given = detail.get("input") if isinstance(detail.get("input"), dict) else {}
    command = detail.get("command") or given.get("command")
    if command:
        text.append("$ ", style="bold")
        text.append(str(command), style="bold yellow")
        text.append("\n")
    elif given.get("sql"):
        text.append("sql> ", style="bold")
        text.append(str(given["sql"]), style="bold yellow")
        text.append("\n")
    rest = {k: v for k, v in given.items() if k not in ("command", "sql")}
    rest.update({k: v for k, v in detail.items() if k not in ("input", "command", *CARD_ONLY)})
    for key, value in rest.items():
        text.append(f"{key}: ", style="dim")
        text.append(f"{value}\n")
    return text


def _plain(markup: str) -> str:
    return Text.from_markup(markup).plain


CARD_ONLY = ("conflict", "note", "apply_summary")  # shown by conflict_text, or in the summary


def conflict_text(detail: dict[str, Any]) -> Text:
    """What the request's task overlaps with (agent/conflicts.py), and the choices."""
    text = Text()
    clash = detail.get("conflict") or {}
    note = clash.get("note") or detail.get("note")
    if note:
        text.append("⚠ conflict\n", style="bold " + fmt.resolve("$text-warning"))
        text.append(f"{note}\n", style=fmt.resolve("$text-warning"))
        text.append("R rebase onto HEAD · d keep it on its branch · a approve\n\n", style="dim")
    return text


def _by_rule(row: dict[str, Any]) -> bool:
    """Decided by a rule (approve=auto/deny) at once: it never waited for anyone."""
    return str(row.get("decided_by") or "").startswith("rule:")


def _waiting(row: dict[str, Any]) -> str:
    """How long it waited: up to now while pending, frozen at the decision after."""
    end = row.get("decided_at") if row.get("state") != "pending" else None
    return fmt.duration((end or fmt.now()) - row["created_at"])


def _decision(row: dict[str, Any]) -> str:
    state = row.get("state", "pending")
    if state == "pending":
        return fmt.paint("pending", "bold $text-warning")
    tone = "ok" if state == "approved" else "bad" if state == "denied" else "muted"
    said = {"rebase": "rebase", "kept on its branch": "kept"}.get(row.get("reason") or "", state)
    return f"{fmt.paint(said, tone)} by {fmt.escape(row.get('decided_by') or '?')}"
