"""Any Python str made storable: SQLite takes UTF-8 only, and a lone surrogate (a file
name decoded with surrogateescape, a half emoji from a JSON producer) has no UTF-8 form.

Lone surrogates are ESCAPED, not dropped: one that stands for an undecodable byte
(U+DC80..U+DCFF, surrogateescape) becomes the text `\\xNN` (that byte, so the operator
can tell which one it was), any other becomes `\\uXXXX`. A high+low pair, which is one
character split in two, is joined back into that character. Valid text is untouched, and
the check is cheap for the common case (ASCII is known without a scan).
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
_PAIR_OR_LONE = re.compile("([\ud800-\udbff][\udc00-\udfff])|([\ud800-\udfff])")


def _escape(cp: int) -> str:
    return f"\\x{cp - 0xDC00:02x}" if 0xDC80 <= cp <= 0xDCFF else f"\\u{cp:04x}"


def _fix(match: re.Match[str], backslash: str) -> str:
    pair = match.group(1)
    if pair:
        return pair.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    return backslash + _escape(ord(match.group(2)))[1:]


def clean(text: str) -> str:
    """`text` with every lone surrogate escaped (see the module doc); the same object
    when there is none."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _PAIR_OR_LONE.sub(lambda m: _fix(m, "\\"), text)


def clean_json(text: str) -> str:
    """The same for JSON text made with ensure_ascii=False: a surrogate can only sit
    inside a JSON string there, where the escape's backslash must itself be escaped."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _PAIR_OR_LONE.sub(lambda m: _fix(m, "\\\\"), text)


def clean_value(value: Any) -> Any:
    """A JSON-like value (an event payload) with every string in it cleaned. Returns the
    same object when nothing needed it, so the common case allocates nothing."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        pairs = [(clean(k) if isinstance(k, str) else k, clean_value(v)) for k, v in value.items()]
        if all(a is k and b is v for (a, b), (k, v) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    if isinstance(value, list | tuple):
        items = [clean_value(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items if isinstance(value, list) else tuple(items)
    return value
