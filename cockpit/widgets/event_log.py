"""The live event stream of one task, bounded however long the task runs. How each event
type shows is cockpit/render.py's table, shared with the one-line summaries.

Rendered lines live in a RichLog capped at `max_lines`; the raw events behind them sit in
a deque of the same size so the view can be re-rendered (thinking folded or unfolded, a
new width: lines re-wrap when the pane is resized) without asking the store again.

It reads like a pager: it follows new lines only while it is scrolled to the end (Home
stays at the top while the task writes on); with focus, ↑/↓ move a cursor from event to
event and Enter (or a click on the chosen event) opens it in full: a step with its whole
output, a thinking block unfolded, a summary uncut.
"""

from __future__ import annotations

import bisect
import json
from collections import deque
from typing import TYPE_CHECKING, Any

from rich.segment import Segment
from rich.text import Text
from textual import events as ui
from textual.binding import Binding
from textual.message import Message
from textual.strip import Strip
from textual.timer import Timer
from textual.widgets import RichLog

from ..render import LEARNED
from ..render import log_line as render  # how each event type shows: cockpit/render.py
from ..textual_private import richlog_append, richlog_first_line, richlog_size_known

if TYPE_CHECKING:
    from agent.engine import Engine

MAX_LINES = 2000


class EventLog(RichLog):
    DEFAULT_CSS = """
    EventLog { height: 1fr; border: round $panel; background: $surface; }
    EventLog:focus { border: round $accent; }
    EventLog > .event-log--cursor { background: $accent 30%; }
    """
    COMPONENT_CLASSES = {"event-log--cursor"}
    BINDINGS = [
        Binding("up", "cursor(-1)", "Previous event", show=False),
        Binding("down", "cursor(1)", "Next event", show=False),
        Binding("enter", "open", "Open in full", show=False),
        Binding("home", "top", "Top", show=False),
        Binding("end", "bottom", "Bottom", show=False),
    ]

    class Open(Message):
        """Enter (or a second click) on an event: show it in full."""

        def __init__(self, log: EventLog, event: dict[str, Any]) -> None:
            super().__init__()
            self.log = log
            self.event = event

        @property
        def control(self) -> EventLog:
            return self.log

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
        # (seq, first line, end line) of every event shown, lines counted from the first
        # ever written (`richlog_first_line` is where the kept ones begin).
        self._spans: deque[tuple[int, int, int]] = deque()
        self.cursor: int | None = None  # seq of the chosen event
        self.following = True  # new lines scroll into view only while at the end
        self._width = 0  # the width the lines were wrapped at
        self._rewrap: Timer | None = None

    # -- writing ---------------------------------------------------------------------------
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
        self._write_events(fresh[-self.max_lines :] if self.max_lines else fresh)
        return fresh

    def _write_events(self, events: list[dict[str, Any]]) -> None:
        """Render events into wrapped lines at the current width, all in one pass (one
        trim, one size change, one scroll), remembering which lines are whose."""
        width = self.scrollable_content_region.width
        if not richlog_size_known(self) or width <= 0:
            return  # drawn from `self.events` once the size is known (`on_resize`)
        width = max(width, self.min_width)
        self._width = width
        console = self.app.console
        options = console.options.update_width(width)
        follow = self.following
        written: list[Strip] = []
        start = richlog_first_line(self) + len(self.lines)
        for event in events:
            line = self.event_line(event)
            if line is None:
                continue
            line.expand_tabs()
            strips = Strip.from_lines(list(Segment.split_lines(console.render(line, options))))
            strips = strips or [Strip.blank(width)]
            for strip in strips:
                strip.adjust_cell_length(width)
            end = start + len(strips)
            written.extend(strips)
            self._spans.append((int(event.get("seq", 0)), start, end))
            start = end
        first = richlog_append(self, written, width)
        while self._spans and self._spans[0][2] <= first:
            self._spans.popleft()
        self.refresh()
        if follow:
            self.scroll_end(animate=False, immediate=False, x_axis=False)

    def event_line(self, event: dict[str, Any]) -> Text | None:
        """How one event shows in this log (None hides it)."""
        return render(event, self.show_thinking)

    def clear(self) -> EventLog:
        super().clear()
        self._spans.clear()
        return self

    def reset(self) -> None:
        self.clear()
        self.events.clear()
        self.last_seq = 0
        self._held = []
        self.cursor = None
        self.following = True

    def rerender(self) -> None:
        """Draw every kept event again (new width, thinking toggled, new theme), keeping
        the view where it was: at the end, or on the same event."""
        top = self._event_at(self.scroll_offset.y + richlog_first_line(self))
        follow = self.following
        super().clear()
        self._spans.clear()
        self._write_events(list(self.events))
        self.following = follow
        if follow:
            self.scroll_end(animate=False, immediate=False, x_axis=False)
        elif top is not None and (span := self._span(top)) is not None:
            self.scroll_to(y=span[1] - richlog_first_line(self), animate=False, immediate=False)

    def on_resize(self, event: ui.Resize) -> None:
        super().on_resize(event)
        width = self.scrollable_content_region.width
        if width > 0 and max(width, self.min_width) != self._width:
            if not self._width:  # the first size known: draw what waited for it
                self.rerender()
                return
            if self._rewrap is not None:
                self._rewrap.stop()
            # Resizes come in bursts (a dragged window): re-wrap once they settle.
            self._rewrap = self.set_timer(0.05, self.rerender)
        elif self.following:  # shorter, as wide: the last lines must stay in view
            self.scroll_end(animate=False, immediate=False, x_axis=False)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new >= self.max_scroll_y:
            self.following = True
        elif new < old:
            self.following = False

    # -- the cursor ------------------------------------------------------------------------
    def _span(self, seq: int) -> tuple[int, int, int] | None:
        i = bisect.bisect_left(self._spans, (seq, -1, -1))
        if i < len(self._spans) and self._spans[i][0] == seq:
            return self._spans[i]
        return None

    def _event_at(self, line: int) -> int | None:
        """The seq of the event drawn on this (absolute) line."""
        starts = [span[1] for span in self._spans]
        i = bisect.bisect_right(starts, line) - 1
        if 0 <= i < len(self._spans) and self._spans[i][1] <= line < self._spans[i][2]:
            return self._spans[i][0]
        return None

    def chosen(self) -> dict[str, Any] | None:
        """The raw event under the cursor."""
        if self.cursor is None:
            return None
        return next((ev for ev in reversed(self.events) if ev.get("seq") == self.cursor), None)

    def choose(self, seq: int | None) -> None:
        self.cursor = seq
        span = self._span(seq) if seq is not None else None
        if span is not None:
            top, bottom = span[1] - richlog_first_line(self), span[2] - richlog_first_line(self)
            view = self.scrollable_content_region.height
            if top < self.scroll_offset.y:
                self.scroll_to(y=top, animate=False, immediate=True)
            elif bottom > self.scroll_offset.y + view:
                self.scroll_to(y=max(top, bottom - view), animate=False, immediate=True)
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        if not self._spans:
            return
        seqs = [span[0] for span in self._spans]
        if self.cursor is None or self._span(self.cursor) is None:
            # From nothing: the last event in view going up, the first going down.
            view_top = self.scroll_offset.y + richlog_first_line(self)
            view_end = view_top + self.scrollable_content_region.height
            seen = [s for s, start, end in self._spans if end > view_top and start < view_end]
            seen = seen or seqs
            self.choose(seen[-1] if delta < 0 else seen[0])
            return
        i = seqs.index(self.cursor) + delta
        self.choose(seqs[max(0, min(len(seqs) - 1, i))])

    def action_open(self) -> None:
        event = self.chosen()
        if event is None:
            self.action_cursor(-1)
            event = self.chosen()
        if event is not None:
            self.post_message(self.Open(self, event))

    def action_top(self) -> None:
        self.following = False
        self.scroll_home(animate=False, immediate=True)
        if self._spans:
            self.choose(self._spans[0][0])

    def action_bottom(self) -> None:
        self.scroll_end(animate=False, immediate=True)
        self.following = True
        if self._spans:
            self.choose(self._spans[-1][0])

    def on_click(self, event: ui.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        seq = self._event_at(self.scroll_offset.y + offset.y + richlog_first_line(self))
        if seq is None:
            return
        if seq == self.cursor:
            self.action_open()
        else:
            self.choose(seq)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        if self.cursor is None or not self.has_focus:
            return strip
        span = self._span(self.cursor)
        line = self.scroll_offset.y + y + richlog_first_line(self)
        if span is not None and span[1] <= line < span[2]:
            strip = strip.apply_style(self.get_component_rich_style("event-log--cursor"))
        return strip

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


def full_text(event: dict[str, Any], events: list[dict[str, Any]]) -> tuple[str, Text]:
    """(title, body) of one event in full, for the output view: a step (or its result)
    with its whole input and output, any other event with nothing cut."""
    kind = event.get("type", "")
    if kind in ("step", "tool_result"):
        number = event.get("step")
        step = next((ev for ev in events if ev.get("type") == "step"
                     and ev.get("step") == number), event if kind == "step" else {})
        result = next((ev for ev in events if ev.get("type") == "tool_result"
                       and ev.get("step") == number), event if kind == "tool_result" else {})
        action = step.get("action") or result.get("action") or "?"
        body = Text()
        body.append(f"step {number} · {action}\n", style="bold")
        if step.get("target"):
            body.append(f"{step['target']}\n", style="bold")
        if step.get("input"):
            body.append(json.dumps(step["input"], indent=2, default=str) + "\n", style="dim")
        body.append("\n")
        if result:
            style = "red" if result.get("is_error") else ""
            body.append(str(result.get("output") or "(no output)").expandtabs(4), style=style)
            changed = result.get("changed") or []
            if changed:
                body.append(f"\n\nchanged: {', '.join(map(str, changed))}", style="green")
        else:
            body.append("(no output yet: the step is still running)", style="dim italic")
        return f"Step {number}: {action}", body
    if kind == "thinking":
        return "Thinking", Text(str(event.get("text", "")))
    if kind == "text":
        return "The model wrote", Text(str(event.get("text", "")))
    if kind == "learning":
        body = Text()
        for key, word in LEARNED:
            for item in event.get(key) or []:
                body.append(f"{word}: ", style="bold")
                body.append(f"{item}\n")
        return "Learned", body or Text(str(event.get("message") or event.get("text") or ""))
    payload = {k: v for k, v in event.items() if k not in ("task_id", "seq", "ts", "type")}
    body = Text()
    for key, value in payload.items():
        body.append(f"{key}: ", style="bold")
        text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
        body.append(f"{text}\n")
    return kind.replace("_", " ").capitalize() or "Event", body
