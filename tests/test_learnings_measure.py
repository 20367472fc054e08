"""The arithmetic behind a learning's effect: Wilson and Newcombe intervals, verdicts."""

from __future__ import annotations

import pytest

from agent.learnings.effect import (
    HELPS,
    HURTS,
    NO_BASELINE,
    NOT_USED,
    TOO_FEW,
    UNCLEAR,
    Effect,
    newcombe,
    wilson,
)


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II example (a): 56/70 vs 48/80.
    low, high = newcombe(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_wilson_stays_inside_0_and_1_at_the_edges() -> None:
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and 0.27 < wilson(0, 10)[1] < 0.28
    assert wilson(10, 10)[1] == pytest.approx(1.0) and 0.72 < wilson(10, 10)[0] < 0.73


@pytest.mark.parametrize(("counts", "verdict"), [
    ((0, 0, 5, 5), NOT_USED),
    ((3, 3, 0, 0), NO_BASELINE),
    ((0, 3, 3, 3), TOO_FEW),  # 0% against 100%, but from three tasks: no claim
    ((0, 6, 6, 6), HURTS),
    ((8, 8, 0, 8), HELPS),
    ((4, 5, 1, 5), UNCLEAR),
])
def test_no_effect_is_claimed_before_each_side_has_enough_tasks(
        counts: tuple[int, int, int, int], verdict: str) -> None:
    e = Effect(*counts, min_tasks=5)
    assert e.verdict == verdict
    if verdict in (NOT_USED, NO_BASELINE, TOO_FEW):
        assert e.effect is None and e.interval is None
