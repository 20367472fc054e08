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


MAX_DEPTH = 64  # JSON nested deeper than this is no tool input (and would exhaust recursion)


def first_invalid(value: Any, where: str = "input", depth: int = 0) -> str | None:
    """What is wrong first in a JSON-like value ("input.content is not valid Unicode (a
    lone surrogate); ..."), or None when every string is valid and nesting is sane."""
    if depth > MAX_DEPTH:
        return f"{where} is nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, str):
        bad = _SURROGATE.search(value)
        return f"{where} is not valid Unicode (a lone surrogate); send UTF-8 text" if bad else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _SURROGATE.search(key):
                return f"{where} has a key that is not valid Unicode (a lone surrogate)"
            found = first_invalid(item, f"{where}.{marked(str(key))}", depth + 1)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = first_invalid(item, f"{where}[{i}]", depth + 1)
            if found:
                return found
    return None


def marked_value(value: Any, depth: int = 0) -> Any:
    """A JSON-like value with every string `marked` (keys too) and anything nested deeper
    than MAX_DEPTH cut to a note; other values as they are."""
    if depth > MAX_DEPTH:
        return f"[nested more than {MAX_DEPTH} levels deep]"
    if isinstance(value, str):
        return marked(value)
    if isinstance(value, dict):
        return {
            marked(k) if isinstance(k, str) else k: marked_value(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [marked_value(v, depth + 1) for v in value]
    return value
