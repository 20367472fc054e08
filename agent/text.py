"""Text that is not valid Unicode, at the edges where it comes in.

Python lets a str hold lone surrogates: undecodable argv bytes and file names arrive as
U+DC80..U+DCFF (`surrogateescape`), and JSON's "\\ud800" decodes to one. Such a str cannot
be encoded to UTF-8, so it breaks whatever stores, prints or sends it later. At the edges
we either refuse it with a one-line message (paths, file content, commands) or mark it
(`marked`: a title, a name shown to someone) so that nothing is lost silently.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(text: str) -> str | None:
    """The first lone surrogate of `text` as `\\udXXX`, or None when `text` is valid."""
    m = _SURROGATE.search(text)
    return f"\\u{ord(m.group()):04x}" if m else None


def _mark(m: re.Match[str]) -> str:
    code = ord(m.group())
    # U+DC80..U+DCFF stand for one undecodable byte each: show the byte, as Python does.
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def marked(text: str) -> str:
    """`text` with every lone surrogate written out as an escape (`caf\\xe9`, `\\ud800`):
    valid UTF-8, and the original bytes can still be read off it."""
    return _SURROGATE.sub(_mark, text) if _SURROGATE.search(text) else text


def first_invalid(value: Any, where: str = "input") -> str | None:
    """Where in a JSON-like value the first invalid string is (`input.content`), or None."""
    if isinstance(value, str):
        return where if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = first_invalid(key, where) or first_invalid(item, f"{where}.{key}")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = first_invalid(item, f"{where}[{i}]")
            if found:
                return found
    return None


def marked_value(value: Any) -> Any:
    """A JSON-like value with every string `marked` (keys too); other values as they are."""
    if isinstance(value, str):
        return marked(value)
    if isinstance(value, dict):
        return {marked(k) if isinstance(k, str) else k: marked_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [marked_value(v) for v in value]
    return value
