"""Full garbage collections wait for a quiet moment (they paused key presses ~100 ms)."""

from __future__ import annotations

import gc

from cockpit.gc_pacing import MAX_GAP_S, MIN_GAP_S, NEVER, QUIET_S, GcPacer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_full_collections_wait_for_quiet_but_never_too_long() -> None:
    clock = Clock()
    pacer = GcPacer(clock)
    clock.now += MIN_GAP_S + 1
    pacer.touched()  # a key right now: not the moment
    assert not pacer.tick()
    clock.now += QUIET_S + 0.01
    assert pacer.tick() and pacer.full_runs == 1  # quiet and due
    clock.now += MIN_GAP_S / 2
    assert not pacer.tick()  # quiet, but one ran just now
    for _ in range(int(MAX_GAP_S)):  # an operator typing non-stop
        clock.now += 1
        pacer.touched()
        pacer.tick()
    assert pacer.full_runs == 2  # memory stays bounded all the same


def test_the_automatic_full_collection_is_off_only_while_the_cockpit_runs() -> None:
    before = gc.get_threshold()
    pacer = GcPacer()
    pacer.start()
    try:
        assert gc.get_threshold()[2] == NEVER and gc.get_threshold()[:2] == before[:2]
    finally:
        pacer.stop()
    assert gc.get_threshold() == before
