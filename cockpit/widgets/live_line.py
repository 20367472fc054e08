"""What the model is writing right now: the live `delta` notifications of one task.

The stored `thinking`/`text` event arrives only when a turn ends (up to a minute of
streaming); this line shows the turn as it grows, then clears when the block is final
(its stored event, shown in the event log, takes over). Thinking is folded like in the
log: a character count, or with `t` its last lines.
"""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from .. import fmt

TAIL_CHARS = 400  # the live view is a glance, not a transcript


class LiveLine(Static):
    DEFAULT_CSS = """
    LiveLine { height: auto; max-height: 4; padding: 0 1; color: $text-muted; display: none; }
    LiveLine.-streaming { display: block; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", markup=True, **kwargs)
        self.kind = ""
        self.text = ""
        self.show_thinking = False

    def feed(self, delta: dict[str, Any]) -> None:
        if delta.get("reset") or delta.get("kind") != self.kind:
            self.text = ""
        self.kind = delta.get("kind", "")
        self.text += delta.get("text", "")
        if delta.get("final") or self.kind == "restart":
            self.clear()
            return
        self._draw()

    def clear(self) -> None:
        self.kind, self.text = "", ""
        self.remove_class("-streaming")
        self.update("")

    def toggle_thinking(self, show: bool) -> None:
        self.show_thinking = show
        if self.text:
            self._draw()

    def _draw(self) -> None:
        e = fmt.escape
        tail = self.text[-TAIL_CHARS:].replace("\n", " ").strip()
        if self.kind == "thinking" and not self.show_thinking:
            body = f"[italic]💭 thinking… {len(self.text):,} chars so far (t to unfold)[/]"
        elif self.kind == "thinking":
            body = f"[italic]💭 …{e(tail)}[/]"
        else:
            body = f"▌ …{e(tail)}"
        self.add_class("-streaming")
        self.update(body)
