"""Reusable widgets: each carries its own DEFAULT_CSS."""

from .confirm import Confirm
from .event_log import EventLog
from .halt_banner import HaltBanner
from .keyed_table import KeyedTable

__all__ = ["Confirm", "EventLog", "HaltBanner", "KeyedTable"]
