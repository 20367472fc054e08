"""The agent engine: no UI imports here (checked by tests/test_layers.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config
    from .engine import Engine

__all__ = ["Config", "Engine"]


def __getattr__(name: str) -> object:
    # Lazy so `import agent` stays cheap for the UI's first frame.
    if name == "Engine":
        from .engine import Engine

        return Engine
    if name == "Config":
        from .config import Config

        return Config
    raise AttributeError(name)
