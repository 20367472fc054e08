"""Messages the app sends to the visible panel (Harlequin style: workers report back)."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class EngineReady(Message):
    """The engine is open: panels may query it now."""


class EngineEvents(Message):
    """A batch of live events (coalesced by the app, at most ~10 batches a second)."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        super().__init__()
        self.events = events


class StoreChanged(Message):
    """The store changed (this engine or another process wrote): panels refresh."""
