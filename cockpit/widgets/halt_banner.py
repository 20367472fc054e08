"""The banner every panel shows while the emergency stop is engaged."""

from __future__ import annotations

from textual.widgets import Static

from ..keys import key_for


class HaltBanner(Static):
    DEFAULT_CSS = """
    HaltBanner {
        display: none;
        height: 1;
        width: 1fr;
        background: $error;
        color: $text;
        text-style: bold;
        content-align: center middle;
    }
    HaltBanner.-halted { display: block; }
    """

    def __init__(self) -> None:
        super().__init__("■ EMERGENCY STOP ENGAGED — all work halted")

    def on_mount(self) -> None:
        safety = key_for(self.app, "panel.safety", "9")
        self.update(f"■ EMERGENCY STOP ENGAGED — all work halted · re-arm on Safety Controls "
                    f"({safety})")
        self.watch(self.app, "halted", self._show, init=True)

    def _show(self, halted: bool) -> None:
        self.set_class(halted, "-halted")
