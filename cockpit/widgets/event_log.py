"""The live event stream of one task, bounded however long the task runs. How each event
type shows is cockpit/render.py's table, shared with the one-line summaries.

Rendered lines live in a RichLog capped at `max_lines`; the raw events behind them sit in
a deque of the same size so the view can be re-rendered (thinking folded or unfolded)
without asking the store again.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.widgets import RichLog

from ..render import log_line as render  # how each event type shows: cockpit/render.py

if TYPE_CHECKING:
    from agent.engine import Engine

MAX_LINES = 2000


class EventLog(RichLog):
    DEFAULT_CSS = """
    EventLog { height: 1fr; border: round $panel; background: $surface; }
    """

    def __init__(self, max_lines: int = MAX_LINES, **kwargs: Any) -> None:
        # min_width: lines wrap at the pane's real width (RichLog's default 78 is wider than
        # the stream pane at 120 columns, so lines were cut and scrolled sideways).
        kwargs.setdefault("min_width", 20)
        super().__init__(max_lines=max_lines, wrap=True, markup=False, **kwargs)
        self.events: deque[dict[str, Any]] = deque(maxlen=max_lines)
        self.show_thinking = False
        self.last_seq = 0
        self.task_id: str | None = None  # the task this log follows (see `follow`)
        self._catching = 0  # ticket of the catch-up in flight (0: none)
        self._tickets = 0
        self._held: list[dict[str, Any]] = []
        self.needs_catch_up = False  # set by `feed` on a gap; the panel runs `catch_up`

    def add(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append events (duplicates by seq are skipped: replay and live may overlap).
        Returns the events actually added."""
        fresh: list[dict[str, Any]] = []
        last = self.last_seq
        for ev in sorted(events, key=lambda ev: ev.get("seq", 0)):  # store + held may overlap
            if ev.get("seq", 0) > last:
                fresh.append(ev)
                last = ev["seq"]
        if not fresh:
            return []
        self.last_seq = fresh[-1].get("seq", self.last_seq)
        self.events.extend(fresh)
        shown = fresh[-self.max_lines :] if self.max_lines else fresh
        lines = [line for line in (self.event_line(ev) for ev in shown) if line is not None]
        if lines:  # one write per batch: one render, one trim, one scroll
            self.write(Text("\n").join(lines))
        return fresh

    def event_line(self, event: dict[str, Any]) -> Text | None:
        """How one event shows in this log (None hides it)."""
        return render(event, self.show_thinking)

    def reset(self) -> None:
        self.clear()
        self.events.clear()
        self.last_seq = 0
        self._held = []

    # -- following one task: live events plus catch-up from the store ------------------------
    def follow(self, task_id: str | None) -> None:
        """Show `task_id` from now on (empty until `catch_up` loads its past)."""
        self.reset()
        self.task_id = task_id
        self._catching = 0

    def feed(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Live events (of any task): this task's are shown, or held while a catch-up runs
        so they follow the events it loads instead of jumping ahead of them."""
        mine = [ev for ev in events if ev.get("task_id") == self.task_id]
        if not mine:
            return []
        if self._catching:
            self._held.extend(mine)
            return []
        if mine[0].get("seq", 0) > self.last_seq + 1:
            # A gap: events this view never saw (it was hidden, or a batch raced a catch-up
            # not yet started). Showing these would skip the missing ones for good (the log
            # only appends newer seqs), so hold them and ask the panel for a catch-up.
            self._held.extend(mine)
            self.needs_catch_up = True
            return []
        return self.add(mine)

    async def catch_up(self, engine: Engine) -> list[dict[str, Any]]:
        """Load from the store what this view has not shown yet (a first load, or events
        that came while the panel was hidden). Returns the events added."""
        task_id = self.task_id
        if task_id is None:
            return []
        self._tickets += 1
        token = self._catching = self._tickets
        self.needs_catch_up = False
        try:
            events = await engine.events(task_id, self.last_seq)
        finally:
            if self._catching == token:
                self._catching = 0
        if task_id != self.task_id or (self._catching and self._catching != token):
            return []  # another task was chosen meanwhile, or a newer catch-up runs
        if self.max_lines and len(events) > self.max_lines:
            events = events[-self.max_lines :]
        held, self._held = self._held, []
        return self.add(events + held)

    def on_mount(self) -> None:
        # Lines carry the colours of the theme they were rendered in: re-render on a switch.
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.rerender())

    def toggle_thinking(self) -> None:
        self.show_thinking = not self.show_thinking
        self.rerender()

    def rerender(self) -> None:
        kept, held = list(self.events), self._held
        self.reset()
        self._held = held  # a catch-up in flight still delivers them
        self.add(kept)
