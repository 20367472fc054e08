"""Full garbage collections at quiet moments, not in the middle of a key press.

Why: the event logs keep up to 2,000 rendered lines each, and every line is a Textual
Strip with its own small caches, so a busy cockpit holds a few hundred thousand tracked
objects. Python's automatic full (generation 2) collection then pauses the event loop for
~100 ms, about every two seconds under a stream of events, and those pauses were the whole
p95 of key-to-repaint (bench_ui --load: 201 ms with them, ~40 ms without). Young
collections stay automatic (cheap, and they free most cycles); the full one runs from a
timer once the operator has not pressed a key for a moment, and at the latest every
MAX_GAP_S, so memory stays bounded.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

QUIET_S = 0.3  # no key for this long: the last key's repaint is done, the next is unlikely
MIN_GAP_S = 10.0  # at most one full collection this often when quiet
MAX_GAP_S = 60.0  # and at least this often, quiet or not
NEVER = 1_000_000  # a generation-2 threshold no run reaches


class GcPacer:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._now = clock
        self.last_input = self.last_full = clock()
        self.full_runs = 0
        self._saved: tuple[int, int, int] | None = None

    def start(self) -> None:
        """Take generation-2 collections off automatic (the young ones stay)."""
        if self._saved is None:
            self._saved = gc.get_threshold()
            young, middle, _ = self._saved
            gc.set_threshold(young, middle, NEVER)

    def stop(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def touched(self) -> None:
        """The operator pressed a key (or clicked)."""
        self.last_input = self._now()

    def tick(self) -> bool:
        """Called from a timer: run a full collection if now is a good moment."""
        now = self._now()
        since_full = now - self.last_full
        quiet = now - self.last_input >= QUIET_S
        if since_full >= MAX_GAP_S or (quiet and since_full >= MIN_GAP_S):
            gc.collect()
            self.last_full = self._now()
            self.full_runs += 1
            return True
        return False
