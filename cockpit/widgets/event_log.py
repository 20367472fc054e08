"""The live event stream of one task, bounded however long the task runs.

Rendered lines live in a RichLog capped at `max_lines`; the raw events behind them sit in
a deque of the same size so the view can be re-rendered (thinking folded or unfolded)
without asking the store again.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from rich.text import Text
from textual.widgets import RichLog

from .. import fmt

MAX_LINES = 2000


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
        return Text.from_markup(f"[cyan]🔎 analysis[/] {e(fmt.short(event.get('summary', ''), 200))}")
    if kind == "plan":
        steps = event.get("steps", [])
        marks = {"done": "✓", "in_progress": "▶"}
        items = "  ".join(f"{marks.get(s.get('status'), '·')} {e(s.get('title', ''))}" for s in steps)
        return Text.from_markup(f"[magenta]☰ plan[/] {items}")
    if kind == "step":
        target = event.get("target") or ""
        return Text.from_markup(
            f"[b cyan]→ {event.get('step', '')} {e(event.get('action', ''))}[/] {e(fmt.short(target, 120))}")
    if kind == "tool_result":
        out = fmt.short(event.get("output", ""), 160)
        style = "red" if event.get("is_error") else "dim"
        changed = event.get("changed") or []
        extra = f" [green]✎ {e(', '.join(changed))}[/]" if changed else ""
        return Text.from_markup(f"  [{style}]↳ {e(out)}[/]{extra}")
    if kind == "progress":
        return Text.from_markup(f"[magenta]◔ progress {event.get('completed')}/{event.get('total')}[/]")
    if kind == "approval_requested":
        return Text.from_markup(
            f"[b yellow]⚑ approval needed[/] ({e(event.get('kind', ''))}, risk "
            f"{fmt.risk(event.get('risk', ''))}) {e(event.get('summary', ''))}")
    if kind == "approval_decided":
        verdict = "[green]approved[/]" if event.get("approved") else "[red]denied[/]"
        return Text.from_markup(f"[yellow]⚑[/] {verdict} by {e(event.get('by', '?'))}")
    if kind == "verification":
        passed = event.get("passed")
        mark = "[green]✓ verified[/]" if passed else ("[dim]? unverified[/]" if passed is None
                                                       else "[red]✗ verification failed[/]")
        return Text.from_markup(f"{mark} {e(fmt.short(event.get('evidence', ''), 140))}")
    if kind == "usage":
        return Text.from_markup(
            f"[dim]$ {event.get('input_tokens', 0)} in / {event.get('output_tokens', 0)} out · "
            f"total {fmt.money(event.get('total_cost_usd'))}[/]")
    if kind == "status":
        reason = f" — {e(event.get('reason'))}" if event.get("reason") else ""
        return Text.from_markup(f"[b]● {fmt.state(event.get('state', ''))}[/]{reason}")
    if kind in ("warning", "error"):
        style = "yellow" if kind == "warning" else "bold red"
        return Text.from_markup(f"[{style}]! {e(event.get('message', ''))}[/]")
    if kind == "complete":
        mark = "[b green]✔ complete[/]" if event.get("success") else "[b red]✘ ended[/]"
        return Text.from_markup(f"{mark} {e(fmt.short(event.get('summary', ''), 200))}")
    if kind in ("learning", "rollback", "checkpoint"):
        body = event.get("message") or event.get("text") or event.get("label") or ""
        return Text.from_markup(f"[magenta]◆ {kind}[/] {e(fmt.short(str(body), 160))}")
    payload = {k: v for k, v in event.items() if k not in ("task_id", "seq", "ts", "type")}
    return Text.from_markup(f"[dim]{e(kind)} {e(fmt.short(json.dumps(payload, default=str), 160))}[/]")


class EventLog(RichLog):
    DEFAULT_CSS = """
    EventLog { height: 1fr; border: round $panel; background: $surface; }
    """

    def __init__(self, max_lines: int = MAX_LINES, **kwargs: Any) -> None:
        super().__init__(max_lines=max_lines, wrap=True, markup=False, **kwargs)
        self.events: deque[dict[str, Any]] = deque(maxlen=max_lines)
        self.show_thinking = False
        self.last_seq = 0

    def add(self, events: list[dict[str, Any]]) -> None:
        """Append events (duplicates by seq are skipped: replay and live may overlap)."""
        fresh = [ev for ev in events if ev.get("seq", 0) > self.last_seq]
        if not fresh:
            return
        self.last_seq = fresh[-1].get("seq", self.last_seq)
        self.events.extend(fresh)
        if self.max_lines:
            fresh = fresh[-self.max_lines :]
        lines = [line for line in (render(ev, self.show_thinking) for ev in fresh) if line is not None]
        if lines:  # one write per batch: one render, one trim, one scroll
            self.write(Text("\n").join(lines))

    def reset(self) -> None:
        self.clear()
        self.events.clear()
        self.last_seq = 0

    def toggle_thinking(self) -> None:
        self.show_thinking = not self.show_thinking
        kept = list(self.events)
        self.reset()
        self.add(kept)
