"""Top bar: the ten panels with their keys (as remapped), the current one lit, each a click
target; and, pinned at the right where no width can cut them, the live counters: running
tasks, requests waiting for the operator (with the key that jumps to them) and the HALTED
badge.

The tabs shrink to fit what the counters leave: full names, then shorter ones, then keys
only (the current panel keeps its name)."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from .. import fmt
from ..keys import key_for
from ..panels import PANELS


def tab_labels(current: str, keys: dict[str, str], width: int) -> tuple[list[tuple[str, str]], int]:
    """(mode, label) of every tab and the spaces between two, as long as `width` allows:
    full names, then one space apart, then names cut to 4 or 3 letters, then keys alone;
    the current tab always keeps its full name."""
    labels: list[tuple[str, str]] = []
    for cut, gap in ((None, 2), (None, 1), (4, 1), (3, 1), (0, 1)):
        labels = []
        for p in PANELS:
            key = keys.get(p.mode, p.key)
            name = p.short if cut is None or p.mode == current else p.short[:cut]
            labels.append((p.mode, f"{key} {name}" if name else key))
        if 2 + sum(len(label) for _, label in labels) + gap * (len(labels) - 1) <= width:
            return labels, gap
    return labels, 1


class Tabs(Static):
    DEFAULT_CSS = """
    Tabs { width: 1fr; height: 1; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current
        self._keys: dict[str, str] = {}

    def on_mount(self) -> None:
        self._keys = {p.mode: key_for(self.app, f"panel.{p.mode}", p.key) for p in PANELS}
        self.draw()

    def on_resize(self, _event: events.Resize) -> None:
        self.draw()

    def draw(self) -> None:
        labels, gap = tab_labels(self.current, self._keys, self.size.width or 120)
        parts = []
        for mode, label in labels:
            text = fmt.escape(label)
            if mode == self.current:  # lit, with its gap's spaces around it
                parts.append(f"[reverse b]{text}[/]")
            else:  # a click switches, like the key
                parts.append(f"[@click=app.switch_mode('{mode}')]{text}[/]")
        self.update(" " + (" " * gap).join(parts) + " ")


class Counters(Static):
    DEFAULT_CSS = """
    Counters { width: auto; height: 1; padding: 0 1 0 1; }
    """

    def counters(self) -> str:
        app = self.app
        live = getattr(app, "live_count", 0)
        pending = getattr(app, "pending_count", 0)
        status = getattr(app, "engine_status", "")
        parts = [f"▶{live}"]
        if pending:
            jump = key_for(app, "next_waiting", "w")
            parts.append(f"[@click=app.next_waiting]{fmt.paint(f'⚑{pending}', 'bold $text-warning')}"
                         f" [dim]{jump}[/][/]")
        else:
            parts.append("⚑0")
        if getattr(app, "halted", False):
            parts.append(fmt.paint("■ HALTED", "bold reverse $text-error"))
        elif status not in ("ready", "demo") or self.screen.size.width >= 100:
            parts.append(f"[dim]{fmt.escape(status)}[/]")
        return " ".join(parts)

    def draw(self) -> None:
        text = self.counters()
        if text != getattr(self, "_last", None):
            self._last = text
            self.update(text)


class NavBar(Horizontal):
    DEFAULT_CSS = """
    NavBar { height: 1; width: 1fr; background: $panel; color: $text-muted; }
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        self._mode = mode

    def compose(self) -> ComposeResult:
        yield Tabs(self._mode)
        yield Counters()

    def on_mount(self) -> None:
        counters = self.query_one(Counters)
        for name in ("engine_status", "live_count", "pending_count", "halted"):
            self.watch(self.app, name, lambda _v: counters.draw(), init=False)
        counters.draw()

    def on_resize(self, _event: events.Resize) -> None:
        self.query_one(Counters).draw()
