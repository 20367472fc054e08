"""The forms a known secret takes when a program prints it encoded, for agent/redact.py.

- base64, standard and URL-safe: a secret inside a longer blob encodes differently at each
  of the 3 byte alignments, so each alignment gives its own core (the characters that depend
  on the secret's bytes alone; the ones at either end mix in the neighbours' bits);
- hex, lower and upper case;
- URL-encoded (percent escapes in either case, `+` or `%20` for spaces, `/` kept or not);
- JSON / backslash-escaped (`\\"`, `\\\\`, `\\n`, `\\u00e9`, shell `\\$`), also escaped twice:
  a pattern, since any special character may carry backslashes.

A line-wrapped blob (`base64` wraps at 76 columns, `xxd -p` at 60) is joined before it is
searched: see `WRAPPED`.

This is a net for the usual accidents (a keyring file, an `.env` dumped as JSON, a URL). It
cannot stop a command that means to disguise a secret (`rev`, xor); keeping secrets out of
the sandbox is what does.
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus

# Lines made only of base64/hex characters, two or more in a row: maybe a wrapped blob.
WRAPPED = re.compile(r"(?:^[A-Za-z0-9+/_=-]{16,}\r?\n)+[A-Za-z0-9+/_=-]+$", re.M)
# A cheap test first (a leading character class is scanned fast; `^` with re.M is not).
WRAP_HINT = re.compile(r"[A-Za-z0-9+/_=-]{16}\r?\n[A-Za-z0-9+/_=-]")
_URLSAFE = str.maketrans("+/", "-_")
_PLAIN_PUNCT = set("-_.")  # no common escaper touches these
_CONTROL = {"\n": "n", "\t": "t", "\r": "r", "\b": "b", "\f": "f"}


def base64_cores(raw: bytes) -> set[str]:
    """The base64 text that `raw` yields wherever it sits in a longer blob."""
    cores = set()
    n = len(raw)
    for align in range(3):
        encoded = base64.b64encode(b"\0" * align + raw).decode()
        start, end = (8 * align + 5) // 6, 8 * (align + n) // 6
        core = encoded[start:end]
        cores |= {core, core.translate(_URLSAFE)}
    return cores


def url_forms(value: str) -> set[str]:
    forms = {quote(value, safe=""), quote(value, safe="/"), quote_plus(value, safe="")}
    return forms | {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), f) for f in forms}


def encoded_forms(value: str) -> dict[str, str]:
    """Literal encodings of `value` (other than itself) -> the encoding's name."""
    raw = value.encode("utf-8", "surrogatepass")
    forms: dict[str, str] = {}
    for form in base64_cores(raw):
        forms[form] = "base64"
    forms[raw.hex()] = forms[raw.hex().upper()] = "hex"
    for form in url_forms(value):
        forms.setdefault(form, "url")
    forms.pop(value, None)  # (JSON escapes are `escaped_pattern`'s)
    return forms


def literal_trie(words: list[str]) -> str:
    """One regex matching any of `words` (the longest at a position), built as a trie:
    `re` tries alternatives one by one, so 100 flat ones cost 100 checks per position and
    a trie a few."""
    trie: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in words:
        node = trie
        for c in word:
            node = node.setdefault(c, {})
        node[""] = {}

    def build(node: dict) -> str:  # type: ignore[type-arg]
        # A run of single-child nodes is walked, not recursed into: the depth is the number
        # of branches on a path, so a secret of thousands of characters (a service-account
        # key) cannot exhaust the recursion limit.
        chain = []
        while True:
            ends = "" in node
            kids = [(c, child) for c, child in sorted(node.items()) if c]
            if len(kids) != 1 or ends:
                break
            chain.append(re.escape(kids[0][0]))
            node = kids[0][1]
        if not kids:
            return "".join(chain)
        alts = [re.escape(c) + build(child) for c, child in kids]
        body = alts[0] if len(alts) == 1 and not ends else "(?:" + "|".join(alts) + ")"
        return "".join(chain) + (body + "?" if ends else body)  # greedy: the longer word wins

    return build(trie)


def escaped_pattern(value: str) -> str | None:
    """A regex for `value` with backslash escapes before its special characters (JSON,
    JSON inside JSON, shell quoting); None when it has none to escape."""
    if all(c.isascii() and (c.isalnum() or c in _PLAIN_PUNCT) for c in value):
        return None
    parts = []
    for c in value:
        if c.isascii() and (c.isalnum() or c in _PLAIN_PUNCT):
            parts.append(re.escape(c))
        elif c == "\\":
            parts.append(r"\\{1,8}")
        elif c in _CONTROL:
            parts.append(f"(?:{re.escape(c)}|\\\\{{1,7}}{_CONTROL[c]})")
        elif not c.isascii() or not c.isprintable():
            units = json.dumps(c)[1:-1].replace("\\", r"\\{1,7}")  # \uXXXX (pairs for astral)
            parts.append(f"(?:{re.escape(c)}|{units})")
        else:
            parts.append(r"\\{0,7}" + re.escape(c))
    return "".join(parts)


def gram_index(forms: list[str]) -> tuple[frozenset[str], int, int]:
    """(grams, k, step): every k-character piece of every form, and a step such that any
    occurrence of a form in a text holds a piece that starts at a multiple of `step`.

    A form of length >= L spans L consecutive positions, so one of them is a multiple of
    step = L - k + 1 with its piece inside the form. Testing len(text) / step pieces (4 KB:
    about 120 set lookups for 32-character secrets) rules out most texts, where the trie
    would have been tried at every position."""
    shortest = min(map(len, forms))
    k = min(8, shortest // 2 + 1)
    grams = frozenset(f[i : i + k] for f in forms for i in range(len(f) - k + 1))
    return grams, k, shortest - k + 1
