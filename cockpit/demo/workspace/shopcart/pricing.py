from decimal import Decimal


def parse_price(text: str) -> Decimal:
    """'$12.50' -> Decimal('12.50')."""
    return Decimal(text.strip().lstrip("$").replace(",", ""))


def apply_discount(price: Decimal, percent: int) -> Decimal:
    return (price * (100 - percent) / 100).quantize(Decimal("0.01"))
