"""The banner every panel shows while the emergency stop is engaged."""

from __future__ import annotations

from textual.widgets import Static


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
        super().__init__("■ EMERGENCY STOP ENGAGED — all work halted · re-arm on Safety Controls (9)")

    def on_mount(self) -> None:
        self.watch(self.app, "halted", self._show, init=True)

    def _show(self, halted: bool) -> None:
        self.set_class(halted, "-halted")
