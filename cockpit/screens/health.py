"""8 · System Health: model reachability and latency, API key, store size and integrity,
sandbox, daemon heartbeat, disk space and the cockpit's own event-loop lag."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widgets import Static

from .. import fmt
from ..widgets import put
from .base import PanelScreen

if TYPE_CHECKING:
    from agent.engine import Engine

OK, WARN, BAD, UNKNOWN = "[b green]● ok[/]", "[b yellow]● warn[/]", "[b red]● fail[/]", "[dim]● n/a[/]"
LOW_DISK = 1 << 30


def cards(h: dict[str, Any], lag_ms: float) -> dict[str, tuple[str, str]]:
    """Card id -> (status mark, body text)."""
    e = fmt.escape
    model = h.get("model", {})
    reach = model.get("reachable")
    latency = f"{model['latency_ms']} ms" if model.get("latency_ms") is not None else "not measured"
    store = h.get("store", {})
    sandbox = h.get("sandbox", {})
    daemon = h.get("daemon", {})
    disk = h.get("disk_free_bytes")
    age = daemon.get("heartbeat_age_s")
    engines = h.get("engines", [])
    name = str(model.get("name", "?"))
    if name.startswith("scripted:"):  # a script path says little; its file name says enough
        name = "scripted: " + name.rsplit("/", 1)[-1]
    return {
        "model": (OK if reach else UNKNOWN if reach is None else BAD,
                  f"{e(name)}\nlatency {latency}"
                  + (f"\n[red]{e(model['error'])}[/]" if model.get("error") else "")),
        "key": (OK if h.get("key_present") else WARN,
                "API key present" if h.get("key_present") else "no API key (demo and scripted models only)"),
        "store": (OK if store.get("integrity") == "ok" else BAD,
                  f"{fmt.size(store.get('size_bytes'))} · integrity {e(store.get('integrity', '?'))}"
                  f"\n[dim]{e(fmt.short(store.get('path', ''), 44))}[/]"),
        "sandbox": (OK if sandbox.get("available") else WARN,
                    f"{e(sandbox.get('version') or '')} " + (e(sandbox.get("reason") or "")
                                                            if not sandbox.get("available") else "bubblewrap")),
        "daemon": (OK if daemon.get("alive") else UNKNOWN,
                   f"heartbeat {age:.0f}s ago" if age is not None else "no daemon running"),
        "disk": (OK if disk is None or disk > LOW_DISK else WARN, f"{fmt.size(disk)} free"),
        "loop": (OK if lag_ms < 50 else WARN if lag_ms < 250 else BAD, f"{lag_ms:.0f} ms lag"),
        "engines": (OK, f"{len(engines)} engine(s) on this store\n" + "\n".join(
            f"[dim]{e(x.get('role', '?'))} pid {x.get('pid', '?')}[/]" for x in engines[:3])),
    }


TITLES = {"model": "Model", "key": "API key", "store": "Store", "sandbox": "Sandbox",
          "daemon": "Daemon", "disk": "Disk", "loop": "Event loop", "engines": "Engines"}


class HealthScreen(PanelScreen):
    MODE = "health"
    CSS_PATH = "health.tcss"
    POLL_S = 3.0
    BINDINGS = [Binding("p", "ping", "Ping model", id="health.ping")]

    def __init__(self) -> None:
        super().__init__()
        self._ping = False

    def compose_panel(self) -> ComposeResult:
        with Grid(classes="panel-body", id="cards"):
            for key, title in TITLES.items():
                card = Static("[dim]…[/]", id=f"card-{key}", classes="card")
                card.border_title = title
                yield card

    async def refresh_data(self, engine: Engine) -> None:
        ping, self._ping = self._ping, False
        health = await engine.health(ping=ping) if ping else await engine.health()
        for key, (mark, body) in cards(health, self.cockpit.loop_lag_ms).items():
            put(self.query_one(f"#card-{key}", Static), f"{mark}\n{body}")

    def action_ping(self) -> None:
        self._ping = True
        self.request_refresh()
