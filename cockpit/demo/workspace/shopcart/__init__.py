"""shopcart: prices, carts and pages of products."""

from .cart import Cart
from .pagination import paginate
from .pricing import parse_price

__all__ = ["Cart", "paginate", "parse_price"]
