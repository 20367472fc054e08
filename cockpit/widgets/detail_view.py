"""One thing in full, on the whole screen, scrollable: an approval's diff, a step's whole
output, a learning, a tool. Escape (or q) goes back to the panel as it was."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer
from textual.screen import ModalScreen
from textual.widgets import Static


class DetailView(ModalScreen[None]):
    DEFAULT_CSS = """
    DetailView { background: $background; }
    DetailView #detail-title {
        height: auto; max-height: 3; padding: 0 1;
        background: $panel; color: $text; text-style: bold;
    }
    DetailView #detail-scroll { height: 1fr; padding: 0 1; }
    DetailView #detail-scroll:focus { background-tint: $foreground 3%; }
    DetailView #detail-body { width: 1fr; height: auto; }
    DetailView #detail-body.-nowrap { width: auto; }
    DetailView #detail-keys { height: 1; background: $panel; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape,q", "close", "Back", id="detail.close"),
    ]

    def __init__(self, title: str, body: Text | str, wrap: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._title = title
        self._body = body
        self._wrap = wrap

    def compose(self) -> ComposeResult:
        yield Static(self._title, id="detail-title", markup=False)
        with ScrollableContainer(id="detail-scroll"):
            body = Static(self._body, id="detail-body", markup=isinstance(self._body, str))
            body.set_class(not self._wrap, "-nowrap")
            yield body
        sideways = " · ←/→ sideways" if not self._wrap else ""
        yield Static(f"[b $accent]esc[/] back · ↑/↓ PgUp/PgDn Home/End scroll{sideways}",
                     id="detail-keys")

    def on_mount(self) -> None:
        self.query_one("#detail-scroll").focus()

    def action_close(self) -> None:
        self.dismiss(None)
