"""The bottom line of keys. A light stand-in for Textual's Footer: one Static rendered
when the panel shows, instead of a widget per key that is rebuilt on every panel switch
and focus change (the Footer's recompose was most of the cost of switching panels)."""

from __future__ import annotations

from textual.widgets import Static

from ..keys import key_for


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

    def show_keys(self) -> None:
        """Render the visible bindings of the panel and the app (call after a keymap change)."""
        app = self.app
        seen: set[str] = set()
        parts: list[str] = []
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            key = app.get_key_display(binding).replace("[", "\\[")
            style = "b $error" if binding.id == "emergency_stop" else "b $accent"
            parts.append(f"[{style}]{key}[/] {binding.description}")
        parts.append(f"[b $accent]{key_for(app, 'palette', '^p')}[/] Palette")
        self.update("  ".join(parts))
