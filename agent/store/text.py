"""Any Python str made storable: SQLite takes UTF-8 only, and a lone surrogate (a file
name decoded with surrogateescape, half an emoji from a JSON producer) has no UTF-8 form.
The edges refuse or mark such text (agent/text.py); this is the store's own defence for
whatever gets past them, so a write never fails on a str.

Lone surrogates are ESCAPED, the way agent/text.py marks them: one that stands for an
undecodable byte (U+DC80..U+DCFF) becomes the text `\\xNN` (that byte), any other
`\\uXXXX`. Valid text is untouched, and costs next to nothing (ASCII needs no scan).
"""

from __future__ import annotations

import re
from typing import Any

from ..text import marked

_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_mark(m: re.Match[str]) -> str:
    return "\\" + marked(m.group())  # inside a JSON string the backslash is escaped too


def clean(text: str) -> str:
    """`text` with every lone surrogate escaped; the same object when there is none."""
    if text.isascii():
        return text
    return marked(text)


def clean_json(text: str) -> str:
    """The same for JSON text made with ensure_ascii=False, where a surrogate can only
    sit inside a string."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub(_json_mark, text)


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
