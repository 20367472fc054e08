from decimal import Decimal

from shopcart import Cart, parse_price
from shopcart.pricing import apply_discount


def test_parse_price() -> None:
    assert parse_price("$1,200.50") == Decimal("1200.50")


def test_discount() -> None:
    assert apply_discount(Decimal("10.00"), 15) == Decimal("8.50")


def test_cart_total() -> None:
    cart = Cart()
    cart.add("tea", "$3.20", 2)
    cart.add("cake", "4.10")
    assert cart.total() == Decimal("10.50")
