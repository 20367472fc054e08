"""Every use of Textual's private API, in one place.

Textual is pinned to the range tested (pyproject.toml), and each function here has a
guard in tests/test_private_apis.py that fails loudly, naming what changed, when a
Textual release moves the thing it relies on. Nothing else in cockpit/ touches a Textual
name that starts with `_`. Each function says why a public API does not do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from queue import Queue
from typing import Any

from textual import _ansi_sequences
from textual._context import active_app
from textual.app import App
from textual.binding import BindingsMap
from textual.dom import DOMNode
from textual.geometry import Size
from textual.screen import Screen
from textual.strip import Strip
from textual.widgets import DataTable, RichLog

__all__ = ["active_app", "all_screens", "bindings_with_keymap", "forget_escape_sequences",
           "no_update_delay", "relayout_columns", "richlog_append", "richlog_first_line",
           "richlog_size_known", "terminal_write", "writer_queue"]  # fmt: skip


def bindings_with_keymap(node: DOMNode) -> BindingsMap:
    """The node's own bindings with the app's keymap applied: what a key bar must show
    for a binding id. (Textual applies the keymap only inside its own binding lookup.)"""
    app = node.app if not isinstance(node, App) else node
    bindings = node._bindings.copy()
    if app._keymap:
        bindings.apply_keymap(app._keymap)
    return bindings


def forget_escape_sequences(sequences: list[str]) -> None:
    """Drop entries of Textual's escape-sequence table (so the parser reports those
    sequences as plain alt+key). There is no public way to change the table."""
    for sequence in sequences:
        _ansi_sequences.ANSI_SEQUENCES_KEYS.pop(sequence, None)  # type: ignore[attr-defined]


def all_screens(app: App[Any]) -> Iterator[Screen[Any]]:
    """Every screen on every mode's stack (`App.screen_stack` is the current mode's only)."""
    for stack in app._screen_stacks.values():
        yield from stack


@contextlib.contextmanager
def no_update_delay(app: App[Any]) -> Iterator[None]:
    """Within: the app's `delay_update` (which holds repaints back, e.g. 50 ms on a mode
    switch) does nothing. It is no documented API, so it has no public switch either."""
    delay = app.delay_update
    app.delay_update = lambda delay=0.0: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        app.delay_update = delay  # type: ignore[method-assign]


def writer_queue(app: App[Any]) -> Queue[Any] | None:
    """The queue of the app's terminal writer thread, if it has one. After a hang-up the
    thread dies on EIO and its full queue would block the event loop: cockpit/hangup.py
    drains it. Textual offers no handle on its writer."""
    writer = getattr(app._driver, "_writer_thread", None)
    return getattr(writer, "_queue", None)


def terminal_write(app: App[Any], sequence: str) -> None:
    """Raw bytes to the terminal (a desktop notification's OSC 9/777). Textual writes only
    what it renders; `App.bell` is its one public raw sequence."""
    driver = app._driver
    if driver is not None:
        driver.write(sequence)
        driver.flush()


def richlog_size_known(log: RichLog) -> bool:
    """The log has had its first size (RichLog defers writes until then)."""
    return bool(log._size_known)


def richlog_first_line(log: RichLog) -> int:
    """How many lines were trimmed off the top since the last clear: line n of
    `log.lines` is line n + this of all ever written. RichLog keys its line cache by it."""
    return int(log._start_line)


def richlog_append(log: RichLog, strips: list[Strip], width: int) -> int:
    """Append lines already wrapped at `width` (the event log wraps per event so it knows
    which lines are whose; `RichLog.write` hides that), trim to `max_lines` as `write`
    does, and return the new first line. Public `write` renders each item itself."""
    log.lines.extend(strips)
    if log.max_lines is not None and len(log.lines) > log.max_lines:
        excess = len(log.lines) - log.max_lines
        log._start_line += excess
        log.lines = log.lines[excess:]
        log._line_cache.clear()
    log._widest_line_width = width
    log.virtual_size = Size(width, len(log.lines))
    return int(log._start_line)


def relayout_columns(table: DataTable[Any]) -> None:
    """After a column's width changed: the table measures itself again and drops its
    rendered lines (the public `refresh` alone keeps the old widths)."""
    table._require_update_dimensions = True
    table._clear_caches()
