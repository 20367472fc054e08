"""The plain words and numbers the cockpit and the command line both say: "rolled back",
"56%", "$0.0093", "1m27s", "13,001 in (13,000 cache read) / 50 out".

Nothing here imports rich or Textual: the headless `run` prints with these alone.
cockpit/fmt.py re-exports them for the panels.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any


def state_word(value: str) -> str:
    """A task state as words: "rolled back", "awaiting approval"."""
    return value.replace("_", " ")


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 pattern', '2 patterns', '0 next steps' (pass `many` for irregular words)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def duration(seconds: float | None, tenths: bool = False) -> str:
    """'42s', '1m27s', '3h05m', '2d04h'; with `tenths`, under a minute as '0.8s'."""
    if seconds is None or seconds < 0:
        return "—"
    if tenths and seconds < 59.95:
        return f"{seconds:.1f}s"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def percent(rate: float | None) -> str:
    """A 0..1 rate as "56%" ("—" when there is none)."""
    return "—" if rate is None else f"{rate * 100:.0f}%"


def money(value: float | None) -> str:
    """'$0.0167' under a dollar, '$12.35' above: the one way a cost is shown (panels, log,
    command line). Rounded half up from the micro-dollars the store keeps, so a task's
    total and the sum of its usage rows (the same micro-dollars, added in another order)
    read the same, and a float's binary noise (0.01675 held as 0.0167499999...) never tips
    the last digit."""
    usd = Decimal(repr(round(float(value or 0), 6)))
    places = Decimal("0.0001") if usd < 1 else Decimal("0.01")
    return f"${usd.quantize(places, rounding=ROUND_HALF_UP)}"


def tokens_in(usage: dict[str, Any]) -> str:
    """Input tokens of a model call as the API counted them: new input plus cache reads
    and cache writes (all three are input the model read), the cached part named."""
    read = int(usage.get("cache_read_input_tokens") or 0)
    wrote = int(usage.get("cache_creation_input_tokens") or 0)
    total = int(usage.get("input_tokens") or 0) + read + wrote
    cached = [f"{read:,} cache read" if read else "", f"{wrote:,} cache write" if wrote else ""]
    detail = ", ".join(c for c in cached if c)
    return f"{total:,} in" + (f" ({detail})" if detail else "")


def usage_line(usage: dict[str, Any]) -> str:
    """'13,001 in (13,000 cache read) / 50 out' for one model call."""
    return f"{tokens_in(usage)} / {int(usage.get('output_tokens') or 0):,} out"
