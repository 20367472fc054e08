def paginate(items: list, page: int, per_page: int = 10) -> list:
    """Items on `page` (1-based)."""
    start = page * per_page
    return items[start : start + per_page]
