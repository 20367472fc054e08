"""8 · System Health: model reachability and latency, API key, store size and integrity,
sandbox, daemon heartbeat, disk space and the cockpit's own event-loop lag; below, the
BigQuery export (its lag and last error), the engines sharing the store and the latest
failures. `k` opens the secrets dialog (cockpit/screens/secrets.py).

On a narrow terminal the cards go two by two and the panel scrolls; a card's line too long
for it ends with an ellipsis. Enter on a failure opens its task in Task Execution.

The model is pinged on its own when the panel opens and then every minute while it is
shown (one ping at a time, in a worker); the last result stays up, with its age, until
the next one lands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.timer import Timer
from textual.widgets import Label, Static

from .. import fmt
from ..widgets import KeyedTable, put
from ..widgets.detail_view import DetailView
from ..widgets.keyed_table import Col
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

LOW_DISK = 1 << 30
PING_EVERY_S = 60.0
OK, WARN, BAD, UNKNOWN = "ok", "warn", "bad", "muted"
MARK = {OK: "● ok", WARN: "● warn", BAD: "● fail", UNKNOWN: "● n/a"}


def mark(level: str) -> str:
    return fmt.paint(MARK[level], f"bold {fmt.TONE[level]}" if level != UNKNOWN else "dim")


def model_card(name: str, ping: dict[str, Any] | None, pinging: bool) -> tuple[str, str]:
    e = fmt.escape
    if name.startswith("scripted:"):  # a script path says little; its file name says enough
        name = "scripted: " + name.rsplit("/", 1)[-1]
    if ping is None:
        return UNKNOWN, f"{e(name)}\n{'checking…' if pinging else 'not checked yet (p)'}"
    if ping.get("reachable"):
        level = OK
        latency = ("local model, no network" if ping.get("local")
                   else f"latency {ping.get('latency_ms')} ms")
    else:
        level, latency = BAD, fmt.paint(fmt.short(ping.get("error") or "unreachable", 80), "bad")
    when = "checking again…" if pinging else f"checked {fmt.ago(ping.get('checked_at'))}"
    return level, f"{e(name)}\n{latency}\n[dim]{when}[/]"


def sandbox_card(sandbox: dict[str, Any]) -> tuple[str, str]:
    version = str(sandbox.get("version") or "")
    if version and "bubblewrap" not in version:
        version = f"bubblewrap {version}"
    if sandbox.get("available"):
        return OK, f"{fmt.escape(version)}\ncommands run sandboxed"
    lines = [version, str(sandbox.get("reason") or "bubblewrap is not available")]
    return WARN, fmt.escape("\n".join(line for line in lines if line))


def daemon_card(daemon: dict[str, Any]) -> tuple[str, str]:
    """Alive (its lock, not its beat), the next scheduled job and how the last run ended."""
    age = daemon.get("heartbeat_age_s")
    lines = [f"heartbeat {fmt.duration(age)} ago" if daemon.get("alive") and age is not None
             else "no daemon running"]
    upcoming = [s for s in daemon.get("schedules") or [] if s.get("next_run")]
    if upcoming:
        first = min(upcoming, key=lambda s: s["next_run"])
        lines.append(f"next {first['job']} {fmt.clock(first['next_run'])}")
    last = daemon.get("last_run")
    if last:
        outcome = last.get("outcome") or "running"
        lines.append(f"last {last['job']} {fmt.clock(last['started_at'])} "
                     f"{fmt.escape('ok' if outcome == 'succeeded' else outcome)}")
    level = OK if daemon.get("alive") else UNKNOWN
    if daemon.get("alive") and last and last.get("outcome") == "failed":
        level = WARN
    return level, "\n".join(lines)


def cards(h: dict[str, Any], lag_ms: float, ping: dict[str, Any] | None = None,
          pinging: bool = False) -> dict[str, tuple[str, str]]:
    """Card id -> (status level, body markup)."""
    e = fmt.escape
    store = h.get("store", {})
    counts = store.get("counts", {})
    daemon = h.get("daemon", {})
    disk = h.get("disk_free_bytes")
    return {
        "model": model_card(str(h.get("model", {}).get("name", "?")), ping, pinging),
        "key": (OK if h.get("key_present") else WARN,
                "API key present" if h.get("key_present")
                else "no API key\n(demo and scripted models only)"),
        "store": (OK if store.get("integrity") == "ok" else BAD,
                  f"integrity {e(store.get('integrity', '?'))}"
                  f"\n{fmt.size(store.get('db_bytes'))} + WAL {fmt.size(store.get('wal_bytes'))}"
                  f"\n[dim]{e(fmt.tail(store.get('path', ''), 24))}[/]"),
        "sandbox": sandbox_card(h.get("sandbox", {})),
        "daemon": daemon_card(daemon),
        "disk": (OK if disk is None or disk > LOW_DISK else WARN, f"{fmt.size(disk)} free"),
        "loop": (OK if lag_ms < 50 else WARN if lag_ms < 250 else BAD, f"{lag_ms:.0f} ms lag"),
        "contents": (OK, f"tasks {fmt.count(counts.get('tasks'))} · "
                         f"events {fmt.count(counts.get('events'))}\n"
                         f"learnings {fmt.count(counts.get('learnings'))} · "
                         f"audit {fmt.count(counts.get('audit_records'))}\n"
                         f"approvals pending {fmt.count(counts.get('pending_approvals'))}"),
    }


EXPORT_SLOW_S = 600.0  # an export lag beyond this is worth a look


def export_line(x: dict[str, Any]) -> tuple[str, str]:
    """(level, markup) of the BigQuery export: off, or its lag, what waits, the last error."""
    e = fmt.escape
    if not x.get("enabled"):
        return UNKNOWN, fmt.paint("off: set [bigquery] project and dataset in config.toml to "
                                  "share with your team", "muted")  # fmt: skip
    pending, rejected, lag = int(x.get("pending") or 0), int(x.get("rejected") or 0), x.get("lag_s")
    error, error_at, sent_at = x.get("last_error"), x.get("last_error_at"), x.get("last_sent_at")
    ok_at = x.get("last_ok_at") or sent_at  # BigQuery's last answer (a send or a pull)
    failing = bool(error) and (not ok_at or (error_at or 0) > ok_at)
    level = BAD if failing else WARN if rejected or (lag or 0) > EXPORT_SLOW_S else OK
    parts = [f"{e(x.get('project', ''))}.{e(x.get('dataset', ''))}",
             f"lag {fmt.duration(lag)} · {fmt.count(pending)} waiting" if pending
             else "nothing waiting"]
    if rejected:
        parts.append(fmt.paint(f"{fmt.count(rejected)} rejected", "warn"))
    parts.append(f"last sent {fmt.ago(sent_at)}" if sent_at else "nothing sent yet")
    retry = x.get("backoff_until")
    if failing and retry and retry > fmt.now():
        parts.append(f"retry in {fmt.duration(retry - fmt.now())}")
    lines = [" · ".join(parts)]
    if error:
        past = "" if failing else " [dim](since recovered)[/]"
        lines.append(f"last error {fmt.ago(error_at)}{past}: "
                     + fmt.paint(fmt.short(error, 200), "bad" if failing else "muted"))  # fmt: skip
    return level, "\n".join(lines)


def disk_text(usage: dict[str, Any]) -> str:
    """'worktrees 12.3 MB (4) · checkpoints 2.1 MB (5) · journals 0 B · store 1.2 MB ·
    total 15.6 MB' and, below, the last gc (agent/diskuse.py, agent/prune.py)."""
    if not usage or usage.get("measuring"):
        return "[dim]measuring…[/]"
    parts = []
    for key, label in (("worktrees", "worktrees"), ("shadow", "checkpoints"),
                       ("journals", "journals"), ("store", "store")):  # fmt: skip
        part = usage.get(key) or {}
        count = f" ({part['count']})" if part.get("count") else ""
        parts.append(f"{label} [b]{fmt.size(part.get('bytes'))}[/]{count}")
    line = " · ".join(parts) + f" · total [b]{fmt.size(usage.get('total_bytes'))}[/]"
    last = usage.get("last_gc") or {}
    if last.get("at"):
        gc = (f"last gc {fmt.ago(last['at'])} by {fmt.escape(last.get('by', '?'))}, freed "
              f"{fmt.size(last.get('freed_bytes'))}")  # fmt: skip
    else:
        gc = "no gc yet"
    return f"{line}\n[dim]{gc} · `livhana-cockpit gc --dry-run` lists what it would free[/]"


def engine_rows(engines: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    now = fmt.now()
    return {str(x.get("id")): (fmt.cell(x.get("role", "?"), 8), str(x.get("pid", "?")),
                               fmt.cell(x.get("host", ""), 16), fmt.clock(x.get("started_at")),
                               fmt.duration(now - x["heartbeat"]) + " ago"
                               if x.get("heartbeat") else "—")
            for x in engines}


def failure_rows(tasks: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    return {t["id"]: (fmt.clock(t.get("finished_at")), fmt.state(t["state"]),
                      fmt.cell(t.get("title"), 34), fmt.cell(t.get("error") or "", 52))
            for t in tasks}


TITLES = {"model": "Model", "key": "API key", "store": "Store", "sandbox": "Sandbox",
          "daemon": "Daemon", "disk": "Disk", "loop": "Event loop", "contents": "Store contents"}


class HealthScreen(PanelScreen):
    MODE = "health"
    CSS_PATH = "health.tcss"
    POLL_S = 3.0
    ENTER = "a failure: its task in Task Execution · an engine: its row in full"
    BINDINGS = [Binding("p", "ping", "Ping model", id="health.ping"),
                Binding("k", "app.secrets", "Secrets", id="health.secrets")]

    def __init__(self) -> None:
        super().__init__()
        self._last_ping: dict[str, Any] | None = None
        self._pinging = False
        self._ping_timer: Timer | None = None
        self._health: dict[str, Any] = {}
        self._disk: dict[str, Any] = {}

    def compose_panel(self) -> ComposeResult:
        with VerticalScroll(classes="panel-body", id="health-body"):
            with Grid(id="cards"):
                for key, title in TITLES.items():
                    card = Static("[dim]…[/]", id=f"card-{key}", classes="card")
                    card.border_title = title
                    yield card
            yield Label("BigQuery export", classes="section-title")
            yield Static("[dim]…[/]", id="export")
            yield Label("Disk used in the data dir", classes="section-title")
            yield Static("[dim]measuring…[/]", id="task-disk")
            yield Label("Engines on this store", classes="section-title")
            yield KeyedTable(("Role", 8), ("PID", 8), "Host", ("Started", 11),
                             ("Heartbeat", 10), flex="Host", id="engines")
            yield Label("Recent failures", classes="section-title")
            yield KeyedTable(("When", 11), ("State", 11), Col("Task", 34, drop=1), "Error",
                             flex="Error", flex_min=20, id="failures")
            yield Static("[dim]No failed tasks.[/]", id="no-failures", classes="empty-state")

    def body_mounted(self) -> None:
        self._ping_timer = self.set_interval(PING_EVERY_S, self._ping_now)
        self._ping_now()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self._ping_timer is not None:
            self._ping_timer.resume()
            checked = (self._last_ping or {}).get("checked_at") or 0
            if fmt.now() - checked >= PING_EVERY_S:
                self._ping_now()

    def on_screen_suspend(self) -> None:
        super().on_screen_suspend()
        if self._ping_timer is not None:
            self._ping_timer.pause()

    def on_engine_ready(self, message: Any) -> None:
        super().on_engine_ready(message)
        if self._last_ping is None:
            self._ping_now()

    async def refresh_data(self, engine: Engine) -> None:
        from agent.improve.views import daemon_status

        health = await engine.health()
        # The daemon's schedules and last run (agent/improve/views.py) on its card.
        health["daemon"] = {**health.get("daemon", {}),
                            **await daemon_status(engine.config, engine.store)}
        self._health = health
        self._disk = await engine.disk_usage()
        self._paint()

    def drill(self, table: KeyedTable, key: str) -> None:
        if table.id == "failures":
            self.open_task(key)
            return
        row = next((e for e in self._health.get("engines", []) if str(e.get("id")) == key), None)
        if row is not None:
            body = "\n".join(f"[b]{fmt.escape(str(k))}[/]: {fmt.escape(str(v))}"
                             for k, v in row.items())
            self.app.push_screen(DetailView(f"Engine {key}", body))

    def _paint(self) -> None:
        if not self._health:
            return
        for key, (level, body) in cards(self._health, self.cockpit.loop_lag_ms,
                                        self._last_ping, self._pinging).items():
            put(self.query_one(f"#card-{key}", Static), f"{mark(level)}\n{body}")
        level, line = export_line(self._health.get("export") or {})
        put(self.query_one("#export", Static), f"{mark(level)} {line}")
        put(self.query_one("#task-disk", Static), disk_text(self._disk))
        self.query_one("#engines", KeyedTable).sync(engine_rows(self._health.get("engines", [])))
        failures = failure_rows(self._health.get("recent_failures", []))
        table = self.query_one("#failures", KeyedTable)
        table.sync(failures)
        table.display = bool(failures)
        self.query_one("#no-failures").display = not failures

    # -- the model ping: on its own every PING_EVERY_S, or now with p; never two at once ---
    def _ping_now(self) -> bool:
        if self._pinging or self.engine is None or not self._ready:
            return False
        self._pinging = True
        self._paint()
        self.run_worker(self._ping, group="refresh")
        return True

    async def _ping(self) -> None:
        try:
            engine = self.engine
            if engine is not None:
                self._last_ping = await engine.views.ping_model()
        finally:
            self._pinging = False
        self._paint()

    def action_ping(self) -> None:
        if not self._ping_now() and self._pinging:
            self.notify("A ping is already on its way.")
