"""How a cost is shown, the one way everywhere (panels, log, command line): '$0.0167'
under a dollar, '$12.35' above. Pure: the headless `run` prints with it without rich."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def money(value: float | None) -> str:
    """Rounded half up from the micro-dollars the store keeps, so a task's total and the
    sum of its usage rows (the same micro-dollars, added in another order) read the same,
    and a float's binary noise (0.01675 held as 0.0167499999...) never tips the last digit."""
    usd = Decimal(repr(round(float(value or 0), 6)))
    places = Decimal("0.0001") if usd < 1 else Decimal("0.01")
    return f"${usd.quantize(places, rounding=ROUND_HALF_UP)}"
