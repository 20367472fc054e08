"""7 · Self-Improvement: the schedules with their next and last runs (and whether a daemon
is up to run them), the latest report, the week's insights, the proposals waiting for the
operator (`a` accept, `d` reject) and each learning's measured effect.

Everything is read from the store (agent/improve/views.py), so runs made by a daemon or by
`livhana-cockpit improve` in another shell show up here by themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Label, Static

from .. import fmt
from ..keys import key_for
from ..widgets import KeyedTable, put
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

NARROW = 110  # below this many columns the two columns stack
NO_DAEMON = ("[b]No daemon running[/]: the schedules run under `livhana-cockpit --daemon`. "
             "Now: `livhana-cockpit improve daily`.")
NO_LEARNINGS = "[dim]No measured learnings yet.[/]"
# An engine without `learning_stats` (an ImproveHost in a test) measures no effects: say so.
NOT_MEASURED = "[dim]This engine does not measure learnings' effect yet.[/]"
NO_PROPOSALS = ("[dim]No proposals yet: `livhana-cockpit improve weekly` (or the weekly "
                "schedule) turns the week's insights into proposals.[/]")
NO_INSIGHTS = ("[dim]No insights in the last 7 days: `livhana-cockpit improve daily` reads "
               "the logs and the last day's tasks.[/]")
STATE_TONE = {"pending": "warn", "accepted": "info", "rejected": "muted", "started": "accent",
              "succeeded": "ok", "failed": "bad", "skipped": "warn", "interrupted": "warn",
              "running": "accent"}


def tone(state: str | None) -> str:
    if not state:
        return "—"
    t = STATE_TONE.get(state)
    return fmt.paint(state, t) if t else fmt.escape(state)


def schedule_rows(items: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    return {s["job"]: (s["job"], fmt.escape(s["cron"] or "off"), fmt.clock(s["next_run"]),
                       f"{fmt.clock(s['last_run'])} {tone(s['last_outcome'])}"
                       if s["last_run"] else "—")
            for s in items}


def proposal_state(p: dict[str, Any]) -> str:
    if p["state"] == "started" and p.get("task_state"):
        return tone(p["task_state"])
    return tone(p["state"])


def proposal_detail(p: dict[str, Any] | None, keys: tuple[str, str]) -> str:
    if p is None:
        return "[dim]Select a proposal to see its task and evidence.[/]"
    e = fmt.escape
    lines = [f"[b]{e(p['title'])}[/]",
             f"{e(p['id'])} · {proposal_state(p)} · impact {e(p['impact'])} · effort "
             f"{e(p['effort'])} · from {e(p['source'])} · {fmt.ago(p['created_at'])}"]
    if p["state"] == "pending":
        lines.append(f"[dim]{keys[0]} accept (it then runs as a task, asking before it "
                     f"applies) · {keys[1]} reject[/]")
    elif p.get("decided_by"):
        lines.append(f"[dim]{e(p['state'])} by {e(p['decided_by'])}[/]"
                     + (f" · task {e(p['task_id'])}" if p.get("task_id") else ""))
    if p.get("rationale"):
        lines += ["", e(p["rationale"])]
    lines += ["", "[b]Task[/]", e(p["task"])]
    if p.get("evidence"):
        lines += ["", "[b]Evidence[/] " + e(", ".join(p["evidence"]))]
    return "\n".join(lines)


def report_line(latest: dict[str, Any] | None) -> str:
    if not latest:
        return "[dim]No report yet.[/]"
    e = fmt.escape
    summary = (latest.get("produced") or {}).get("summary") or ""
    gone = " [b](file gone)[/]" if latest.get("missing") else ""
    return (f"{e(latest['job'])} · {fmt.clock(latest['finished_at'])} · {tone(latest['outcome'])}"
            f"\n{e(fmt.tail(latest['report'], 100))}{gone}\n{e(fmt.short(summary, 300))}")


MAX_LEARNINGS = 8


def confidence(conf: Any) -> str | None:
    """A share (0.9), or an interval on the effect ({"level", "low", "high"}: the learnings
    engine's), as words; None when there is none."""
    if conf is None:
        return None
    if isinstance(conf, dict):
        low, high = conf.get("low"), conf.get("high")
        if low is None or high is None:
            return None
        level = conf.get("level") or 0.95
        return f"{level:.0%} interval {low * 100:+.0f} to {high * 100:+.0f} pts"
    if isinstance(conf, float) and conf <= 1:
        return f"confidence {conf:.0%}"
    return f"confidence {fmt.escape(conf)}"


def effect(row: dict[str, Any]) -> str:
    w, wo = row.get("success_with"), row.get("success_without")
    if w is None or wo is None:
        return "[dim]effect not measured yet[/]"
    delta = (w - wo) * 100
    t = "ok" if delta > 0 else "bad" if delta < 0 else "muted"
    return fmt.paint(f"{delta:+.0f} pts", t) + f": {w:.0%} of tasks succeed with it, {wo:.0%} without"


def learnings_text(rows: list[dict[str, Any]]) -> str:
    """Each learning's measured effect, the strongest first: two lines each."""
    def strength(r: dict[str, Any]) -> float:
        w, wo = r.get("success_with"), r.get("success_without")
        return abs(w - wo) if w is not None and wo is not None else -1.0

    lines = []
    for r in sorted(rows, key=strength, reverse=True)[:MAX_LEARNINGS]:
        extra = [fmt.plural(int(r.get("uses") or 0), "use")]
        if (conf := confidence(r.get("confidence"))) is not None:
            extra.append(conf)
        if r.get("state"):
            extra.append(tone(str(r["state"])))
        lines.append(f"{effect(r)} [dim]·[/] " + " · ".join(extra))
        lines.append(f"  {fmt.cell(r.get('text'), 200)}")
    if len(rows) > MAX_LEARNINGS:
        lines.append(f"[dim]… {len(rows) - MAX_LEARNINGS} more in Learnings (4)[/]")
    return "\n".join(lines)


class ImprovementScreen(PanelScreen):
    MODE = "improve"
    CSS_PATH = "improvement.tcss"
    POLL_S = 2.0  # runs and proposals arrive through the store from other processes
    WATCH = frozenset({"complete", "learning"})
    BINDINGS = [
        Binding("a", "decide(True)", "Accept", id="improve.accept"),
        Binding("d", "decide(False)", "Reject", id="improve.reject"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.proposals: dict[str, dict[str, Any]] = {}

    def compose_panel(self) -> ComposeResult:
        # What waits for the operator comes first (and first in one narrow column).
        with Horizontal(classes="panel-body", id="columns"):
            with Vertical(id="left"):
                yield Label("Proposals", classes="section-title")
                yield Static(NO_PROPOSALS, id="no-proposals", classes="empty-state")
                yield KeyedTable(("ID", 8), ("State", 11), ("Impact/effort", 13), "Title",
                                 flex="Title", id="proposals")
                with VerticalScroll(id="proposal-pane"):
                    yield Static("", id="proposal")
                yield Label("Learnings: measured effect", classes="section-title")
                yield Static(NO_LEARNINGS, id="learnings", classes="empty-state")
            with VerticalScroll(id="right"):
                yield Label("Schedules", classes="section-title")
                yield Static("", id="daemon", classes="empty-state")
                yield KeyedTable(("Job", 7), ("Cron", 11), ("Next", 11), "Last run",
                                 flex="Last run", id="schedules", cursor_type="none")
                yield Label("Latest report", classes="section-title")
                yield Static("[dim]No report yet.[/]", id="report", classes="empty-state")
                yield Label("Insights, last 7 days", classes="section-title")
                yield Static(NO_INSIGHTS, id="no-insights", classes="empty-state")
                yield KeyedTable(("ID", 15), ("Kind", 15), "Finding", flex="Finding",
                                 id="insights", cursor_type="none")

    def body_mounted(self) -> None:
        self.query_one("#proposal-pane").border_title = "Selected proposal"
        for shown_only in ("#schedules", "#insights"):  # keys go to the proposals
            self.query_one(shown_only, KeyedTable).can_focus = False
        self._fit(self.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        if self._ready:
            self.query_one("#columns").set_class(0 < width < NARROW, "-narrow")

    async def refresh_data(self, engine: Engine) -> None:
        from agent.improve import views

        data = await views.panel(engine)
        alive = data["daemons"]
        if alive:
            pids = ", ".join(str(d["pid"]) for d in alive)
            beat = max(d["heartbeat"] for d in alive)
            put(self.query_one("#daemon", Static),
                f"{fmt.paint('● daemon running', 'ok')} (pid {pids}, heartbeat "
                f"{fmt.ago(beat)}): it runs these")
        else:
            put(self.query_one("#daemon", Static), NO_DAEMON)
        self.query_one("#schedules", KeyedTable).sync(schedule_rows(data["schedules"]))
        put(self.query_one("#report", Static), report_line(data["latest"]))
        self._fill("#insights", "#no-insights", {
            i["id"]: (fmt.escape(i["id"]), fmt.escape(i["kind"]), fmt.cell(i["summary"], 300))
            for i in data["insights"]})
        self.proposals = {p["id"]: p for p in data["proposals"]}
        self._fill("#proposals", "#no-proposals", {
            p["id"]: (fmt.escape(p["id"]), proposal_state(p),
                      fmt.escape(f"{p['impact']}/{p['effort']}"), fmt.cell(p["title"], 300))
            for p in data["proposals"]})
        self.query_one("#proposal-pane").display = bool(self.proposals)
        learned = data["learnings"]
        put(self.query_one("#learnings", Static),
            learnings_text(learned) if learned else NOT_MEASURED if learned is None
            else NO_LEARNINGS)
        self._show(self.query_one("#proposals", KeyedTable).selected_key)

    def _fill(self, table_id: str, empty_id: str, rows: dict[str, tuple[str, ...]]) -> None:
        table = self.query_one(table_id, KeyedTable)
        table.sync(rows)
        table.display = bool(rows)
        self.query_one(empty_id).display = not rows

    def _keys(self) -> tuple[str, str]:
        return (key_for(self, "improve.accept", "a"), key_for(self, "improve.reject", "d"))

    @on(KeyedTable.RowHighlighted, "#proposals")
    def _row(self, event: KeyedTable.RowHighlighted) -> None:
        self._show(event.row_key.value)

    def _show(self, key: str | None) -> None:
        put(self.query_one("#proposal", Static),
            proposal_detail(self.proposals.get(key or ""), self._keys()))

    def action_decide(self, accept: bool) -> None:
        key = self.query_one("#proposals", KeyedTable).selected_key
        proposal = self.proposals.get(key or "")
        if proposal is None or proposal["state"] != "pending":
            self.notify("Select a pending proposal first.", severity="warning")
            return

        async def call(engine: Engine) -> dict[str, Any]:
            from agent.improve import views

            return await views.decide(engine, proposal["id"], accept)

        done = (f"Accepted {proposal['id']}: it runs as a task (a daemon starts it, or "
                "`livhana-cockpit improve auto`), asking before it applies"
                if accept else f"Rejected {proposal['id']}")
        self.act(call, done=done)
