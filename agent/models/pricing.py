"""Per-model prices (USD per million tokens) and the cost of one call.

Cache writes cost 1.25x the input price for the default 5-minute TTL (2x for the 1-hour
TTL); cache reads cost 0.1x. Dated ids ("claude-sonnet-4-5-20250929") and provider
prefixes ("anthropic.claude-...") map to their family by the longest matching prefix.
An unknown model is priced like Sonnet: a plausible number beats a crash or a zero that
would make the per-task cost limit useless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Price:
    input: float  # USD per million input tokens
    output: float  # USD per million output tokens

    @property
    def cache_write_5m(self) -> float:
        return self.input * 1.25

    @property
    def cache_write_1h(self) -> float:
        return self.input * 2.0

    @property
    def cache_read(self) -> float:
        return self.input * 0.1


PRICES: dict[str, Price] = {
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-3-5-sonnet": Price(3.0, 15.0),
    "claude-3-5-haiku": Price(0.8, 4.0),
    "claude-3-opus": Price(15.0, 75.0),
    "claude-3-haiku": Price(0.25, 1.25),
}
FALLBACK = PRICES["claude-sonnet-4-5"]


def price_for(model: str) -> Price:
    """The price of `model`: exact id, else the longest family prefix, else Sonnet's."""
    name = model.strip().lower()
    # Bedrock/Vertex spell ids as "anthropic.claude-..." or "claude-...@20250929".
    if "claude-" in name:
        name = name[name.index("claude-") :]
    # The next char must end the family ("claude-opus-4-1" must not claim "...-4-10").
    matches = [
        family
        for family in PRICES
        if name.startswith(family) and (len(name) == len(family) or name[len(family)] in "-@:")
    ]
    best = max(matches, key=len, default="")
    return PRICES[best] if best else FALLBACK


def _tokens(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key) or 0
    return int(value) if isinstance(value, int | float) else 0


def cost_usd(model: str, usage: Mapping[str, Any]) -> float:
    """Cost of one call from an API usage dict (missing or None counts are zero)."""
    price = price_for(model)
    write_5m = _tokens(usage, "cache_creation_input_tokens")
    write_1h = 0
    # The API's per-TTL breakdown, when present, lets 1-hour writes be priced at 2x.
    breakdown = usage.get("cache_creation")
    if isinstance(breakdown, Mapping):
        write_1h = _tokens(breakdown, "ephemeral_1h_input_tokens")
        write_5m = max(0, write_5m - write_1h)
    total = (
        _tokens(usage, "input_tokens") * price.input
        + _tokens(usage, "output_tokens") * price.output
        + write_5m * price.cache_write_5m
        + write_1h * price.cache_write_1h
        + _tokens(usage, "cache_read_input_tokens") * price.cache_read
    )
    return total / 1_000_000
