"""A learning's measured effect: success with it against success without it.

The confidence figure is Newcombe's hybrid score interval for the difference of two
proportions (method 10 of Newcombe 1998), built from each side's Wilson score interval:
it behaves at 0% and 100% and with small counts, where the plain normal approximation
claims certainty it does not have. No verdict at all is given before both sides have
`min_tasks` tasks with an outcome: three tasks prove nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054

HELPS, HURTS, UNCLEAR, TOO_FEW, NO_BASELINE, NOT_USED = (
    "helps", "hurts", "unclear", "too few tasks", "no baseline yet", "not used yet"
)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (0..1 each end)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k0: int, n0: int, z: float = Z95) -> tuple[float, float]:
    """The interval of p1 - p0 (p1 = k1/n1: with; p0 = k0/n0: without)."""
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson(k1, n1, z)
    l0, u0 = wilson(k0, n0, z)
    d = p1 - p0
    low = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return max(-1.0, low), min(1.0, high)


@dataclass
class Effect:
    succeeded_with: int
    tasks_with: int
    succeeded_without: int
    tasks_without: int
    min_tasks: int

    @property
    def rate_with(self) -> float | None:
        return self.succeeded_with / self.tasks_with if self.tasks_with else None

    @property
    def rate_without(self) -> float | None:
        return self.succeeded_without / self.tasks_without if self.tasks_without else None

    @property
    def enough(self) -> bool:
        return min(self.tasks_with, self.tasks_without) >= self.min_tasks

    @property
    def effect(self) -> float | None:
        """p_with - p_without, once both sides have enough tasks (else None: no claim)."""
        if not self.enough:
            return None
        return self.rate_with - self.rate_without  # type: ignore[operator]

    @property
    def interval(self) -> tuple[float, float] | None:
        if not self.enough:
            return None
        return newcombe(
            self.succeeded_with, self.tasks_with, self.succeeded_without, self.tasks_without
        )

    @property
    def verdict(self) -> str:
        if not self.tasks_with:
            return NOT_USED
        if not self.tasks_without:
            return NO_BASELINE
        interval = self.interval
        if interval is None:
            return TOO_FEW
        low, high = interval
        return HELPS if low > 0 else HURTS if high < 0 else UNCLEAR

    def describe(self) -> str:
        """One line: the rates, the difference and its interval (for reasons and views)."""
        text = (f"{_rate(self.succeeded_with, self.tasks_with)} with it vs "
                f"{_rate(self.succeeded_without, self.tasks_without)} without")
        interval = self.interval
        if interval is not None and self.effect is not None:
            low, high = interval
            text += (f": {self.effect * 100:+.0f} points "
                     f"(95% interval {low * 100:+.0f} to {high * 100:+.0f})")
        return text


def _rate(k: int, n: int) -> str:
    return f"{k}/{n} succeeded ({k / n:.0%})" if n else "no task"
