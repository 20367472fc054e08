"""Text shortened to one line of a given width: cut at a word boundary and marked with an
ellipsis, so that nothing shown reads as if it were whole when it is not, and no word (a
test name, a file) is cut in the middle unless it alone is wider than the line."""

from __future__ import annotations


def clip(text: str, width: int) -> str:
    """One line of at most `width` characters (whitespace runs become one space)."""
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    cut = text[: width - 1]
    space = cut.rfind(" ")
    if space >= width // 2:  # a word boundary not too far back
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"
