"""Per-model prices (USD per million tokens) and the cost of one call.

Cache writes cost 1.25x the input price for the default 5-minute TTL (2x for the 1-hour
TTL); cache reads cost 0.1x unless a model's entry says otherwise (the 5.x line reads
cheaper). Dated ids ("claude-sonnet-4-5-20250929") and provider prefixes
("anthropic.claude-...") map to their family by the longest matching prefix.
An unknown model is priced at the most expensive tier we know, with one warning: an
overestimate makes the per-task cost limit stop early, an underestimate would let it
overspend. Source: platform.claude.com/docs/en/about-claude/pricing (2026-12).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Price:
    input: float  # USD per million input tokens
    output: float  # USD per million output tokens
    read: float | None = None  # cache hits, when not the usual 0.1x of input

    @property
    def cache_write_5m(self) -> float:
        return self.input * 1.25

    @property
    def cache_write_1h(self) -> float:
        return self.input * 2.0

    @property
    def cache_read(self) -> float:
        return self.read if self.read is not None else self.input * 0.1


PRICES: dict[str, Price] = {
    # Every Opus/Sonnet/Haiku id the installed SDK (anthropic 2.14) lists, plus older ones.
    "claude-fable-5-1": Price(10.0, 50.0, read=0.25),
    "claude-fable-5": Price(10.0, 50.0, read=1.0),
    "claude-mythos-5-1": Price(10.0, 50.0, read=0.25),
    "claude-mythos-5": Price(10.0, 50.0, read=1.0),
    "claude-opus-5-5": Price(4.0, 20.0, read=0.20),
    "claude-opus-5": Price(5.0, 25.0),
    "claude-opus-4-8": Price(5.0, 25.0),
    "claude-opus-4-7": Price(5.0, 25.0),
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-sonnet-5-5": Price(2.0, 10.0, read=0.20),
    "claude-sonnet-5": Price(2.0, 10.0),
    "claude-sonnet-4-6": Price(3.0, 15.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    # Haiku 5.5 is tiered by prompt size ($0.10/$0.50 up to 100k); the upper tier errs safe.
    "claude-haiku-5-5": Price(0.50, 2.50),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-3-5-sonnet": Price(3.0, 15.0),
    "claude-3-5-haiku": Price(0.8, 4.0),
    "claude-3-opus": Price(15.0, 75.0),
    "claude-3-haiku": Price(0.25, 1.25),
}
# For ids not in the table: the dearest input, output and cache-read rates we know.
FALLBACK = Price(
    max(p.input for p in PRICES.values()),
    max(p.output for p in PRICES.values()),
    read=max(p.cache_read for p in PRICES.values()),
)
_warned: set[str] = set()


def family_of(model: str) -> str:
    """The price table's family for `model`, or "" when it has none."""
    name = model.strip().lower()
    # Bedrock/Vertex spell ids as "anthropic.claude-..." or "claude-...@20250929".
    if "claude-" in name:
        name = name[name.index("claude-") :]
    # The next char must end the family ("claude-opus-4-1" must not claim "...-4-10").
    matches = [
        family
        for family in PRICES
        if name.startswith(family) and (len(name) == len(family) or name[len(family)] in "-@:[")
    ]
    return max(matches, key=len, default="")


def price_for(model: str) -> Price:
    """The price of `model`: exact id, else the longest family prefix, else the dearest."""
    family = family_of(model)
    if family:
        return PRICES[family]
    if model not in _warned:
        _warned.add(model)
        log.warning(
            "no price known for model %r: costs are counted at the dearest known rate "
            "($%.2f in / $%.2f out per million tokens), so --max-cost stops early rather "
            "than late",
            model,
            FALLBACK.input,
            FALLBACK.output,
        )
    return FALLBACK


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
