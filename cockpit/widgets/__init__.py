"""Reusable widgets: each carries its own DEFAULT_CSS."""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from textual.widgets import Static

from .confirm import Confirm
from .event_log import EventLog
from .halt_banner import HaltBanner
from .keyed_table import KeyedTable

__all__ = ["Confirm", "EventLog", "HaltBanner", "KeyedTable", "put"]

_shown: WeakKeyDictionary[Static, Any] = WeakKeyDictionary()  # what `put` gave each Static


def put(widget: Static, content: Any) -> None:
    """Update a Static only when its content changed; one of fixed height skips the
    relayout (under a stream of events, needless layouts were most of the UI's work)."""
    if _shown.get(widget) == content:
        return
    _shown[widget] = content
    height = widget.styles.height
    widget.update(content, layout=not (height is not None and height.is_cells))
