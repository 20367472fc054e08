"""Top bar: the ten panels with their keys (as remapped), the current one lit, and live
counters."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static

from .. import fmt
from ..keys import key_for
from ..panels import PANELS


class NavBar(Static):
    DEFAULT_CSS = """
    NavBar { height: 1; width: 1fr; background: $panel; color: $text-muted; }
    """
    current: reactive[str] = reactive("")

    def __init__(self, mode: str) -> None:
        super().__init__()
        self._keys: dict[str, str] = {}
        self.current = mode

    def on_mount(self) -> None:
        self._keys = {p.mode: key_for(self.app, f"panel.{p.mode}", p.key) for p in PANELS}
        for name in ("engine_status", "live_count", "pending_count", "halted"):
            self.watch(self.app, name, lambda _v: self._redraw(), init=False)
        self._redraw()

    def watch_current(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        app = self.app
        parts = []
        for p in PANELS:
            label = f" {self._keys.get(p.mode, p.key)} {p.short} "
            parts.append(f"[reverse b]{label}[/]" if p.mode == self.current else label)
        live = getattr(app, "live_count", 0)
        pending = getattr(app, "pending_count", 0)
        status = getattr(app, "engine_status", "")
        flag = fmt.paint("■ HALTED", "bold $text-error") if getattr(app, "halted", False) else ""
        pend = fmt.paint(f"⚑{pending}", "bold $text-warning") if pending else "⚑0"
        text = "".join(parts) + f"  ▶{live} {pend} {flag} [dim]{status}[/]"
        if text != getattr(self, "_last", None):
            self._last = text
            self.update(text, layout=False)
