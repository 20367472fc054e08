"""Small, pure formatting helpers shared by the panels.

`now()` is the UI's single clock: tests replace it to make snapshots deterministic.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from rich.markup import escape as rich_escape

STATE_STYLE = {
    "queued": "dim",
    "planning": "cyan",
    "running": "bold cyan",
    "verifying": "cyan",
    "awaiting_approval": "bold yellow",
    "applying": "magenta",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "rolled_back": "magenta",
    "interrupted": "red",
}
RISK_STYLE = {"low": "green", "medium": "yellow", "high": "bold red"}


def now() -> float:
    return time.time()


def state(value: str) -> str:
    """Rich markup for a task state."""
    style = STATE_STYLE.get(value, "")
    label = escape(value.replace("_", " "))
    return f"[{style}]{label}[/]" if style else label


def risk(value: str) -> str:
    style = RISK_STYLE.get(value)
    return f"[{style}]{value}[/]" if style else escape(value)


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


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


def money(value: float | None) -> str:
    return f"${value or 0:.4f}" if (value or 0) < 1 else f"${value:.2f}"


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


def escape(text: Any) -> str:
    """Make arbitrary text safe inside Rich markup."""
    return rich_escape(str(text))


def cell(text: Any, width: int = 60) -> str:
    """Operator or model text for a table cell: one line, cut to width, markup-safe."""
    return escape(short(str(text or ""), width))
