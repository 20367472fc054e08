from decimal import Decimal

from .pricing import parse_price


class Cart:
    def __init__(self) -> None:
        self.lines: list[tuple[str, Decimal, int]] = []

    def add(self, name: str, price: str, qty: int = 1) -> None:
        self.lines.append((name, parse_price(price), qty))

    def total(self) -> Decimal:
        return sum((price * qty for _, price, qty in self.lines), Decimal("0"))
