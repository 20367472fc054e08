"""The bottom line of keys. A light stand-in for Textual's Footer: one Static rendered
when the panel shows, instead of a widget per key that is rebuilt on every panel switch
and focus change (the Footer's recompose was most of the cost of switching panels).

The panel's own keys come first; the keys that work everywhere (stop, help, quit) are
always on the line: when it is too narrow, the panel's keys give way first (the help
overlay, `?`, lists them all)."""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.widgets import Input, Static

from ..keys import key_for

ALWAYS = ("emergency_stop", "help", "quit.q")


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        width: 1fr;
        background: $panel;
        color: $text-muted;
    }
    """

    def on_mount(self) -> None:
        self.show_keys()
        # Keys come and go with focus and with what the panel holds (`/` needs a table).
        self.screen.bindings_updated_signal.subscribe(self, lambda _screen: self.show_keys())

    def on_resize(self, _event: events.Resize) -> None:
        self.show_keys()

    def show_keys(self) -> None:
        """Render the visible bindings of the panel and the app (call after a keymap change)."""
        app = self.app
        seen: set[str] = set()
        panel: list[tuple[str, str]] = []  # (markup, plain)
        fixed: dict[str, tuple[str, str]] = {}
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or not active.enabled or binding.action in seen:
                continue
            seen.add(binding.action)
            key = app.get_key_display(binding)
            style = "b $error" if binding.id == "emergency_stop" else "b $accent"
            part = (f"[{style}]{key.replace('[', chr(92) + '[')}[/] {binding.description}",
                    f"{key} {binding.description}")
            if binding.id in ALWAYS:
                fixed[binding.id] = part
            else:
                panel.append(part)
        if isinstance(self.screen.focused, Input):  # letters type: say how to get keys back
            panel.insert(0, ("[b $accent]esc[/] leave field", "esc leave field"))
        tail = [fixed[i] for i in ALWAYS if i in fixed]
        palette = key_for(app, "palette", "^p")
        width = self.size.width or 120

        def fits(parts: list[tuple[str, str]]) -> bool:
            return sum(cell_len(p) for _, p in parts) + 2 * (len(parts) - 1) <= width

        parts = [*panel, *tail, (f"[b $accent]{palette}[/] Palette", f"{palette} Palette")]
        if not fits(parts):  # the palette hint goes first, then panel keys from the right
            while panel and not fits([*panel, *tail]):
                panel.pop()
            parts = [*panel, *tail]
        text = "  ".join(markup for markup, _ in parts)
        if text != getattr(self, "_last", None):
            self._last = text
            self.update(text)
