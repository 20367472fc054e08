"""Small, pure formatting helpers shared by the panels and the command line (so both say
the same words: "rolled back", "56%", "$0.0093", "1m27s"; the words themselves are in
cockpit/words.py, which the headless `run` reads without rich).

`now()` is the UI's single clock: tests replace it to make snapshots deterministic.
Textual is imported only where a theme is needed: the command line uses the plain helpers
without paying for it.
"""

from __future__ import annotations

import functools
import re
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.markup import escape as rich_escape

# The plain words, re-exported: a panel says fmt.money(...) as the command line says it.
from . import words

duration, money, percent, plural = words.duration, words.money, words.percent, words.plural
state_word, tokens_in, usage_line = words.state_word, words.tokens_in, words.usage_line

if TYPE_CHECKING:
    from textual.theme import Theme

# Colours are roles, not colour names: each names a theme variable ("$text-success") and is
# resolved to the current theme's colour when a cell is formatted, so every theme in
# themes/ reads well (a fixed "yellow" is invisible on the light theme's white). The
# `text-*` variables are Textual's contrast-adjusted text colours for the theme's background.
TONE = {
    "ok": "$text-success",
    "warn": "$text-warning",
    "bad": "$text-error",
    "info": "$text-primary",
    "alt": "$text-secondary",
    "accent": "$text-accent",
    "muted": "dim",
}
STATE_STYLE = {
    "queued": "dim",
    "planning": "$text-primary",
    "running": "bold $text-primary",
    "verifying": "$text-primary",
    "awaiting_approval": "bold $text-warning",
    "applying": "$text-accent",
    "succeeded": "$text-success",
    "failed": "bold $text-error",
    "cancelled": "$text-secondary",
    "rolled_back": "italic $text-accent",
    "interrupted": "$text-error",
}
RISK_STYLE = {"low": "$text-success", "medium": "$text-warning", "high": "bold $text-error"}
_VARIABLE = re.compile(r"\$([a-z][a-z0-9-]*)")
_FALLBACK_THEME = "livhana-dark"


def now() -> float:
    return time.time()


_COLOURS: dict[tuple[str, int], dict[str, str]] = {}


def _colours(theme: Theme) -> dict[str, str]:
    key = (theme.name, id(theme))  # a Theme is not hashable; formatting runs per cell
    found = _COLOURS.get(key)
    if found is None:
        found = _COLOURS[key] = {**theme.to_color_system().generate(), **theme.variables}
    return found


def _current_theme() -> Theme | None:
    from .textual_private import active_app

    try:
        app = active_app.get()
    except LookupError:
        app = None
    return app.current_theme if app is not None else _fallback_theme()


@functools.cache
def _fallback_theme() -> Theme | None:
    """With no app running (a unit test, a script): the cockpit's default theme."""
    from .themes import load_themes

    return next((t for t in load_themes() if t.name == _FALLBACK_THEME), None)


def resolve(style: str, theme: Theme | None = None) -> str:
    """A style with theme variables ("bold $text-warning") as one Rich and Textual markup both
    read ("bold #F6D68A"), in the given theme or the running app's."""
    if "$" not in style:
        return style
    theme = theme or _current_theme()
    colours = _colours(theme) if theme is not None else {}

    def colour(match: re.Match[str]) -> str:
        value = colours.get(match.group(1), "")
        return value if value.startswith("#") else ""

    return " ".join(_VARIABLE.sub(colour, style).split()) or "none"


def paint(text: Any, style: str, theme: Theme | None = None) -> str:
    """Markup for `text` (escaped) in a style that may name theme variables or TONE roles."""
    style = TONE.get(style, style)
    resolved = resolve(style, theme)
    label = escape(text)
    return f"[{resolved}]{label}[/]" if resolved and resolved != "none" else label


def state(value: str, theme: Theme | None = None, paused: bool = False) -> str:
    """Markup for a task state, in the current theme's colours (marked when paused)."""
    style = STATE_STYLE.get(value, "")
    label = state_word(value)
    text = paint(label, style, theme) if style else escape(label)
    return f"{text} {paint('‖ paused', 'bold $text-warning', theme)}" if paused else text


def risk(value: str, theme: Theme | None = None) -> str:
    style = RISK_STYLE.get(value)
    return paint(value, style, theme) if style else escape(value)






def elapsed(task: dict[str, Any]) -> str:
    start = task.get("started_at") or task.get("created_at")
    if not start:
        return "—"
    end = task.get("finished_at") or now()
    return duration(end - start)


def ago(ts: float | None) -> str:
    if not ts:
        return "—"
    return duration(now() - ts) + " ago"


def clock(ts: float | None) -> str:
    """'14:05' for today, '11-23 14:05' for another day."""
    if not ts:
        return "—"
    when = datetime.fromtimestamp(ts)
    if when.date() == datetime.fromtimestamp(now()).date():
        return when.strftime("%H:%M")
    return when.strftime("%m-%d %H:%M")




def size(n: int | float | None) -> str:
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def short(text: str | None, width: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def tail(text: str | None, width: int = 40) -> str:
    """The end of a long text (a path: its file name matters most), cut at the front."""
    text = " ".join((text or "").split())
    return text if len(text) <= width else "…" + text[-(width - 1):]


def count(n: int | None) -> str:
    """A count that fits a narrow card: 987, 12,345, 1.2M."""
    n = int(n or 0)
    return f"{n:,}" if n < 1_000_000 else f"{n / 1_000_000:.1f}M"


def escape(text: Any) -> str:
    """Make arbitrary text safe inside Rich markup."""
    return rich_escape(str(text))


def cell(text: Any, width: int = 60) -> str:
    """Operator or model text for a table cell: one line, cut to width, markup-safe."""
    return escape(short(str(text or ""), width))
