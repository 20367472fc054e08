"""Redact secrets from text and events before anything is written (store, logs, stream).

    r = Redactor({"ANTHROPIC_API_KEY": key, ...})   # or any iterable of values
    r.redact("token sk-ant-...")   -> "token [REDACTED:anthropic-key]"
    r.redact_obj(event)            -> a copy with every string redacted (dicts, lists, tuples)
    r.add(value, name)             # learn a new secret (e.g. `secrets set`)
    redact_logs(r)                 # every Python log record (message, traceback) too

Known values (>= 6 chars) become [REDACTED:<name>] when named, else [REDACTED:<sha256[:8]>]
(stable, so the operator can tell two secrets apart without seeing them). Their common
encodings are caught too (agent/redact_encodings.py): base64 (standard and URL-safe, inside
a longer blob, line-wrapped), hex, URL-encoded, JSON/backslash-escaped; those become
[REDACTED:<name> (<encoding>)]. Common token shapes
are caught even when unknown: Anthropic, OpenAI, GitHub, AWS access keys, Slack, Google API
keys, JWTs, PEM private keys, the values of password=/token:/api_key=/SECRET_KEY= style
assignments (also with a prefix: DB_PASSWORD=, MY_TOKEN=, aws_secret_access_key =), the
password of a user:password@ URL, and Authorization / Bearer headers. In dicts, a string under a key naming a secret is hidden whole.

Speed: a single alternation of all shapes measured ~66 us per 300-byte string in CPython's
`re` (no literal-prefix scan is possible across branches, and a leading \\b defeats it too).
So each shape is its own regex that starts with a literal (the word-boundary check is a
lookbehind placed after the literal), which `re` finds with a fast scan; the two
case-insensitive shapes run only when a cheap substring trigger is present. The key=value
shape matches on the key's last word only (password|secret|token|key), and the word before
it is judged in Python: a leading alternation of every key name, with no boundary to reject
positions early, measured 3x slower. Known values are one alternation. Typical event strings
then cost a few microseconds (bench: ~11 us per 330-byte event, ~20 us with a trigger word).
Their encodings (~6 per value) are a trie, run only when a sampled piece of the text is a
piece of some encoding (redact_encodings.gram_index): one flat alternation of them measured
4x the whole cost above, tried at every position; with the sampling, typical events cost
what they did, and a 4 KB base64 dump ~0.5 ms.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .redact_encodings import (
    WRAP_HINT,
    WRAPPED,
    encoded_forms,
    escaped_pattern,
    gram_index,
    literal_trie,
)

MIN_SECRET_LEN = 6
_CACHED_LEN, _CACHE_SIZE = 64, 4096
_W = "A-Za-z0-9_"


def _word(prefix: str, rest: str) -> str:
    """`prefix` + `rest`, with prefix not preceded by a word char (a \\b that keeps the scan)."""
    lit = re.escape(prefix)
    return f"{lit}(?<![{_W}]{lit}){rest}"


# (label, regex, triggers). Triggers: lowercased substrings one of which must be present
# (None: the regex starts with a literal and is fast on its own). Applied in this order.
PATTERNS: list[tuple[str, str, tuple[str, ...] | None]] = [
    ("private-key", r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?"
                    r"(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\Z)", None),
    ("anthropic-key", _word("sk-ant-", r"[A-Za-z0-9_-]{16,}"), None),
    ("openai-key", _word("sk-", r"(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"), None),
    ("github-token", _word("gh", r"[pousr]_[A-Za-z0-9]{30,}"), None),
    ("github-token", _word("github_pat_", r"[A-Za-z0-9_]{22,}"), None),
    ("aws-access-key", _word("A", r"(?:KIA|SIA)[0-9A-Z]{16}(?![0-9A-Z])"), None),
    ("slack-token", _word("xox", r"[abposr]-[A-Za-z0-9-]{10,}"), None),
    ("google-api-key", _word("AIza", r"[0-9A-Za-z_-]{35}"), None),
    ("jwt", _word("eyJ", r"[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), None),
    # key/header shapes keep the key so the text still reads; only group "v" is hidden.
    # user:password@ in a URL (postgres://, redis://, https://...): the password only.
    ("url-password", r"://(?P<u>[^/\s:@'\"]*):(?P<v>[^/\s@'\"]+)@", None),
    ("bearer-token",
     r"(?i)(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token|bot)\s+"
     r"(?P<v>[A-Za-z0-9._~+/=-]{6,})", ("authorization",)),
    ("bearer-token", r"(?i)(?<![A-Za-z0-9])bearer\s+(?P<v>[A-Za-z0-9._~+/=-]{16,})",
     ("bearer",)),
    # The key is matched by its last word (no word boundary: DB_PASSWORD=, MY_TOKEN=,
    # PGPASSWORD= are keys too); what precedes it is checked in _key_name (speed, below).
    ("", r"(?i)(?P<end>password|passwd|secret|token|key)"
         r"[\"']?\s*[:=]\s*[\"']?(?P<v>[^\s\"'&,;()\[\]{}<>$`]{3,})(?=$|[\s\"'&,;)\]}])",
     ("pass", "secret", "key", "token")),
]  # fmt: skip
_SECRET_KEY = re.compile(
    r"(?i)^(?:.*[_-])?(?:password|passwd|secret|token|api[_-]?key|apikey|authorization|"
    r"private[_-]?key|access[_-]?key|credentials?|cookie)$"
)
_PLACEHOLDERS = {"none", "null", "true", "false", "undefined", "redacted", "xxx", "xxxxxx"}
_Step = tuple[re.Pattern[str], Callable[[re.Match[str]], str], tuple[str, ...] | None]


def _replacer(label: str) -> Callable[[re.Match[str]], str]:
    def replace(m: re.Match[str]) -> str:
        if "v" not in m.re.groupindex:
            return f"[REDACTED:{label}]"
        value = m.group("v")
        if value.lower() in _PLACEHOLDERS or value.startswith("[REDACTED"):
            return m.group()
        name = label or _key_name(m)  # password=... -> [REDACTED:password]
        if not name:
            return m.group()
        start, end = m.span("v")
        return m.string[m.start() : start] + f"[REDACTED:{name}]" + m.string[end : m.end()]

    return replace


# The word before the key's last one: it makes a "key" a secret (api_key, SECRET_KEY,
# aws_secret_access_key) and names the label (access_token, client_secret).
_QUALIFIER = re.compile(
    r"(?i)(?:^|(?<=[^A-Za-z]))(api|secret|access|private|signing|encryption|master|session|"
    r"client|auth|refresh)([_-]?)$"
)
_KEY_QUALIFIERS = {"api", "secret", "access", "private", "signing", "encryption", "master",
                   "session"}  # fmt: skip


def _key_name(m: re.Match[str]) -> str:
    """The label for a key=value match, "" when the key is not a secret (monkey=, key=)."""
    end = m.group("end").lower()
    before = m.string[max(0, m.start() - 24) : m.start()]
    q = _QUALIFIER.search(before) if before[-1:].isalnum() or before[-1:] in "_-" else None
    if end == "key":
        if q is None or q.group(1).lower() not in _KEY_QUALIFIERS:
            return ""
    elif q is None or q.group(1).lower() in ("api", "signing", "encryption", "master"):
        return end
    return f"{q.group(1)}{q.group(2)}{end}".lower()


_STEPS: list[_Step] = [(re.compile(rx), _replacer(label), trig) for label, rx, trig in PATTERNS]


class Redactor:
    def __init__(self, values: Iterable[str] | Mapping[str, str] = ()) -> None:
        self._labels: dict[str, str] = {}  # value -> label
        self._forms: dict[str, str] = {}  # the value or a literal encoding -> shown label
        self._escaped: list[tuple[re.Pattern[str], str]] = []  # backslash-escaped forms
        self._known: re.Pattern[str] | None = None  # the values, plain or escaped
        self._encoded: re.Pattern[str] | None = None  # their literal encodings (a trie)
        self._grams: frozenset[str] = frozenset()  # a quick test for them, see gram_index
        self._gram_k = self._gram_step = 1
        items = values.items() if isinstance(values, Mapping) else ((None, v) for v in values)
        for name, value in items:
            self._remember(value, name)
        self._compile()

    def add(self, value: str, name: str | None = None) -> None:
        if self._remember(value, name):
            self._compile()

    def add_many(self, values: Iterable[str] | Mapping[str, str]) -> None:
        items = values.items() if isinstance(values, Mapping) else ((None, v) for v in values)
        # A list, not a generator: every value is remembered before any() looks.
        if any([self._remember(v, n) for n, v in items if v not in self._labels]):
            self._compile()

    def _remember(self, value: str, name: str | None) -> bool:
        if not isinstance(value, str) or len(value.strip()) < MIN_SECRET_LEN:
            return False  # too short: would redact ordinary words
        value = value.strip()
        self._labels[value] = name or hashlib.sha256(value.encode()).hexdigest()[:8]
        return True

    def _compile(self) -> None:
        forms: dict[str, str] = {}
        escaped: list[tuple[str, str]] = []
        for value, label in self._labels.items():
            for form, encoding in encoded_forms(value).items():
                forms.setdefault(form, f"{label} ({encoding})")
            if (pattern := escaped_pattern(value)) is not None:
                escaped.append((pattern, label))
        encoded = [f for f in forms if f not in self._labels]
        forms.update(self._labels)  # a value that is also another's encoding keeps its name
        self._forms = forms
        self._escaped = [(re.compile(p), label) for p, label in escaped]
        self._known = self._encoded = None
        if self._labels:
            # Longest first, so a secret that contains another is replaced whole; the escaped
            # patterns first, so a value is replaced whole with its escapes.
            plain = sorted(self._labels, key=len, reverse=True)
            self._known = re.compile("|".join([p for p, _ in escaped] + list(map(re.escape, plain))))
        if encoded:
            self._encoded = re.compile(literal_trie(encoded))
            self._grams, self._gram_k, self._gram_step = gram_index(encoded)
        self._cache: dict[str, str] = {}  # a new secret invalidates earlier answers

    def _known_label(self, m: re.Match[str]) -> str:
        label = self._forms.get(m.group())
        if label is None:  # one of the escaped patterns
            label = next((lb for rx, lb in self._escaped if rx.fullmatch(m.group())), "secret")
        return f"[REDACTED:{label}]"

    def _hits(self, text: str) -> list[re.Match[str]]:
        """Known values and their encodings in `text`, in order, without overlaps."""
        hits = list(self._known.finditer(text)) if self._known else []
        if self._encoded is not None and self._may_hold_encoded(text):
            hits += self._encoded.finditer(text)
        hits.sort(key=lambda h: (h.start(), -h.end()))
        kept: list[re.Match[str]] = []
        for hit in hits:
            if not kept or hit.start() >= kept[-1].end():
                kept.append(hit)
        return kept

    def _may_hold_encoded(self, text: str) -> bool:
        """False when no encoded form can be in `text` (gram_index): a few set lookups
        instead of the trie at every position."""
        k, grams = self._gram_k, self._grams
        return any(text[p : p + k] in grams for p in range(0, len(text) - k + 1, self._gram_step))

    def _unwrap(self, m: re.Match[str]) -> str:
        """A line-wrapped blob (base64, hex, `fold`): searched with its line breaks taken
        out; only what matches is replaced, the rest keeps its lines."""
        block = m.group()
        joined = block.replace("\r", "").replace("\n", "")
        hits = self._hits(joined)
        if not hits:
            return block
        keep = [i for i, c in enumerate(block) if c not in "\r\n"]  # joined -> block index
        out, last = [], 0
        for hit in hits:
            start, end = keep[hit.start()], keep[hit.end() - 1] + 1
            out += [block[last:start], self._known_label(hit)]
            last = end
        return "".join(out) + block[last:]

    def redact(self, text: str) -> str:
        if len(text) < MIN_SECRET_LEN:
            return text  # nothing this short can match
        if len(text) <= _CACHED_LEN:  # event types, tool names, ids, paths: the same few strings
            hit = self._cache.get(text)
            if hit is None:
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
                hit = self._cache[text] = self._redact(text)
            return hit
        return self._redact(text)

    def _redact(self, text: str) -> str:
        if self._known is not None:
            # The common case first, at C speed: no hit, no Python call.
            text = self._known.sub(self._known_label, text)
            if self._encoded is not None and self._may_hold_encoded(text):
                text = self._encoded.sub(self._known_label, text)
            if "\n" in text and WRAP_HINT.search(text):
                text = WRAPPED.sub(self._unwrap, text)
        low = None
        for rx, replace, triggers in _STEPS:
            if triggers is not None:
                low = text.lower() if low is None else low
                if not any(t in low for t in triggers):
                    continue
            text = rx.sub(replace, text)
        return text

    def redact_obj(self, obj: Any) -> Any:
        """A redacted copy: strings in dicts, lists and tuples. A string under a key that names
        a secret ("password", "api_key", "Authorization", ...) is hidden whole."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {
                k: f"[REDACTED:{k}]" if v and isinstance(v, str) and _secret_key(k)
                else self.redact_obj(v)
                for k, v in obj.items()
            }  # fmt: skip
        if isinstance(obj, list | tuple):
            return [self.redact_obj(v) for v in obj]
        return obj


@functools.lru_cache(maxsize=4096)
def _secret_key(key: object) -> bool:
    return isinstance(key, str) and _SECRET_KEY.match(key) is not None


# -- logs ----------------------------------------------------------------------------------
_log_redactors: weakref.WeakSet[Redactor] = weakref.WeakSet()
_patterns_only = Redactor()
_factory_installed = False


def redact_logs(redactor: Redactor) -> None:
    """Pass every log record made in this process through `redactor` (and any other
    registered one): the message with its arguments, a traceback, a stack. A record factory
    rather than a handler filter, so it holds for handlers a front end adds later and for
    records of every logger (a filter on a logger misses its children's records)."""
    global _factory_installed
    _log_redactors.add(redactor)
    if _factory_installed:
        return
    _factory_installed = True
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        _scrub(record)
        return record

    logging.setLogRecordFactory(factory)


def redact_registered(text: str) -> str:
    """`text` through every redactor registered in this process (the engine's knows the
    keyring's secrets), or through the token patterns alone when there is none."""
    for redactor in list(_log_redactors) or [_patterns_only]:
        text = redactor.redact(text)
    return text


_for_logs = redact_registered


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it itself later
        return
    clean = _for_logs(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[0] is not None:
        # Formatters use exc_text when it is set: the traceback is rendered once, redacted.
        record.exc_text = _for_logs(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = _for_logs(record.stack_info)
