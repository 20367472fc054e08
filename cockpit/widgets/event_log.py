"""The live event stream of one task, bounded however long the task runs.

Rendered lines live in a RichLog capped at `max_lines`; the raw events behind them sit in
a deque of the same size so the view can be re-rendered (thinking folded or unfolded)
without asking the store again.
"""

from __future__ import annotations

import json
from collections import deque
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.widgets import RichLog

from .. import fmt

if TYPE_CHECKING:
    from agent.engine import Engine

MAX_LINES = 2000
OUTPUT_LINES = 6  # a tool result keeps its first lines, not one run-on line
OUTPUT_WIDTH = 200
LEARNED = (("patterns", "pattern"), ("improvements", "improvement"), ("nextSteps", "next step"))


def _t(style: str) -> str:
    """A TONE role or theme-variable style as markup the current theme reads well."""
    return fmt.resolve(fmt.TONE.get(style, style)) or "none"


def render(event: dict[str, Any], show_thinking: bool = False) -> Text | None:
    """One event as one (or a few) lines of text; None hides it."""
    kind = event.get("type", "")
    e = fmt.escape
    if kind == "thinking":
        text = event.get("text", "")
        if show_thinking:
            return Text.from_markup(f"[dim italic]💭 {e(text)}[/]")
        return Text.from_markup(f"[dim]💭 thinking… ({len(text)} chars, t to unfold)[/]")
    if kind == "text":
        return Text.from_markup(f"[b]▌[/] {e(event.get('text', ''))}")
    if kind == "analysis":
        given = given_note(event.get("learnings"))
        return Text.from_markup(f"[{_t('info')}]🔎 analysis[/] {e(fmt.short(event.get('summary', ''), 200))}"
                                + (f" [dim]· {e(given)}[/]" if given else ""))
    if kind == "plan":
        steps = event.get("steps", [])
        marks = {"done": "✓", "in_progress": "▶"}
        items = "  ".join(f"{marks.get(s.get('status'), '·')} {e(s.get('title', ''))}" for s in steps)
        return Text.from_markup(f"[{_t('alt')}]☰ plan[/] {items}")
    if kind == "step":
        target = event.get("target") or ""
        return Text.from_markup(
            f"[{_t('bold $text-primary')}]→ {event.get('step', '')} {e(event.get('action', ''))}[/] {e(fmt.short(target, 120))}")
    if kind == "tool_result":
        return _tool_result(event)
    if kind == "progress":
        return Text.from_markup(f"[{_t('alt')}]◔ progress {event.get('completed')}/{event.get('total')}[/]")
    if kind == "approval_requested":
        return Text.from_markup(
            f"[{_t('bold $text-warning')}]⚑ approval needed[/] ({e(event.get('kind', ''))}, risk "
            f"{fmt.risk(event.get('risk', ''))}) {e(event.get('summary', ''))}")
    if kind == "approval_decided":
        verdict = fmt.paint("approved", "ok") if event.get("approved") else fmt.paint("denied", "bad")
        return Text.from_markup(f"{fmt.paint('⚑', 'warn')} {verdict} by {e(event.get('by', '?'))}")
    if kind == "verification":
        passed = event.get("passed")
        mark = fmt.paint("✓ verified", "ok") if passed else (
            "[dim]? unverified[/]" if passed is None else fmt.paint("✗ verification failed", "bad"))
        return Text.from_markup(f"{mark} {e(fmt.short(event.get('evidence', ''), 140))}")
    if kind == "usage":
        return Text.from_markup(
            f"[dim]$ {event.get('input_tokens', 0)} in / {event.get('output_tokens', 0)} out · "
            f"total {fmt.money(event.get('total_cost_usd'))}[/]")
    if kind == "status":
        reason = f" — {e(event.get('reason'))}" if event.get("reason") else ""
        return Text.from_markup(f"[b]● {fmt.state(event.get('state', ''))}[/]{reason}")
    if kind in ("warning", "error"):
        style = _t("warn") if kind == "warning" else _t("bold $text-error")
        return Text.from_markup(f"[{style}]! {e(event.get('message', ''))}[/]")
    if kind == "complete":
        mark = (fmt.paint("✔ complete", "bold $text-success") if event.get("success")
                else fmt.paint("✘ ended", "bold $text-error"))
        return Text.from_markup(f"{mark} {e(fmt.short(event.get('summary', ''), 200))}")
    if kind == "learning":
        return _learning(event)
    if kind in ("paused", "resumed"):
        mark = "‖" if kind == "paused" else "▶"
        return Text.from_markup(fmt.paint(f"{mark} {event.get('message') or kind}",
                                          "bold $text-warning"))
    if kind in ("rollback", "checkpoint"):
        body = event.get("message") or event.get("text") or event.get("label") or ""
        return Text.from_markup(f"[{_t('alt')}]◆ {kind}[/] {e(fmt.short(str(body), 160))}")
    payload = {k: v for k, v in event.items() if k not in ("task_id", "seq", "ts", "type")}
    return Text.from_markup(f"[dim]{e(kind)} {e(fmt.short(json.dumps(payload, default=str), 160))}[/]")


def _tool_result(event: dict[str, Any]) -> Text:
    """The first OUTPUT_LINES lines of the output, indented under the step."""
    style = _t("bad") if event.get("is_error") else "dim"
    lines = [line.rstrip() for line in str(event.get("output") or "").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    text = Text("  ↳ ", style=style)
    for n, line in enumerate(lines[:OUTPUT_LINES]):
        if n:
            text.append("\n    ")
        cut = line if len(line) <= OUTPUT_WIDTH else line[: OUTPUT_WIDTH - 1] + "…"
        text.append(cut.expandtabs(4), style=style)
    if len(lines) > OUTPUT_LINES:
        text.append(f"\n    … {len(lines) - OUTPUT_LINES} more lines", style="dim italic")
    changed = event.get("changed") or []
    if changed:
        text.append(f" ✎ {', '.join(map(str, changed))}", style="green")
    return text


def given_note(chosen: Any) -> str:
    """What the task was given of the learnings (the analysis event's `learnings`)."""
    if not isinstance(chosen, dict):
        return ""
    if chosen.get("error"):
        return "no learnings (the store could not be read)"
    given = chosen.get("given") or []
    if chosen.get("holdout"):
        pinned = f"; {len(given)} pinned given" if given else ""
        return f"holdout: runs without learnings, as a baseline{pinned}"
    return f"{fmt.plural(len(given), 'learning')} given" if given else "no learning relevant"


def _learning(event: dict[str, Any]) -> Text:
    """'◆ learned 2 patterns, 1 improvement: prefer …' (the first item shown)."""
    counts, first = [], ""
    for key, word in LEARNED:
        items = [str(i) for i in event.get(key) or [] if str(i).strip()]
        if items:
            counts.append(fmt.plural(len(items), word))
            first = first or items[0]
    if not counts:
        body = event.get("message") or event.get("text") or "nothing new"
        return Text.from_markup(f"{fmt.paint('◆ learning', 'accent')} "
                                f"{fmt.escape(fmt.short(str(body), 160))}")
    learned = fmt.paint(f"◆ learned {', '.join(counts)}:", "accent")
    merged = int(event.get("merged") or 0)
    note = f" [dim]({merged} already known: merged)[/]" if merged else ""
    return Text.from_markup(f"{learned} "
                            f"{fmt.escape(fmt.short(first, 160))}{note}")


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
