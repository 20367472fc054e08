"""Near-duplicate learnings: the same advice in other words counts once.

Two texts are compared as sets of terms (agent/learnings/words.py: stems, synonyms,
negation as one term), each term weighted by its prior (generic words of advice weigh
little, words of code double), by weighted Jaccard: the sum of the smaller weight of each
term over the sum of the larger. A negation on one side only ("never X" against "X") is
never a duplicate, and neither are two that each name code the other does not ("app.py
holds the helpers" against "utils.py holds the helpers": about different code).

MERGE_AT was chosen on the labelled pairs in tests/test_learnings_merge.py: every
paraphrase there scores at or above it, every different piece of advice below it.
"""

from __future__ import annotations

from .words import CODE_WEIGHT, NOT, weights

MERGE_AT = 0.55


def similarity(a: str, b: str) -> float:
    """0..1: how much of the two texts' weighted terms they share."""
    wa, wb = weights(a), weights(b)
    if not wa or not wb:
        return 1.0 if a.strip().lower() == b.strip().lower() else 0.0
    if (NOT in wa) != (NOT in wb):
        return 0.0
    if _own_code(wa, wb) and _own_code(wb, wa):
        return 0.0
    low = sum(min(w, wb[t]) for t, w in wa.items() if t in wb)
    high = sum(max(w, wb.get(t, 0.0)) for t, w in wa.items())
    high += sum(w for t, w in wb.items() if t not in wa)
    return low / high if high else 0.0


def same_advice(a: str, b: str, at: float = MERGE_AT) -> bool:
    return similarity(a, b) >= at


def _own_code(mine: dict[str, float], other: dict[str, float]) -> bool:
    return any(w >= CODE_WEIGHT and t not in other for t, w in mine.items())
