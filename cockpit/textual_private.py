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
from textual.screen import Screen
from textual.widgets import DataTable

__all__ = ["active_app", "all_screens", "bindings_with_keymap", "forget_escape_sequences",
           "no_update_delay", "relayout_columns", "writer_queue"]  # fmt: skip


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


def relayout_columns(table: DataTable[Any]) -> None:
    """After a column's width changed: the table measures itself again and drops its
    rendered lines (the public `refresh` alone keeps the old widths)."""
    table._require_update_dimensions = True
    table._clear_caches()
