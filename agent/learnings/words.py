"""Text to terms, the one normalisation merge and relevance share.

A term is a Porter2 stem (snowballstemmer) of a word, with stop words dropped, identifiers
split (`run_tests`, `parseConfig`), a few coding synonyms folded onto one word, and every
negation ("don't", "never", "avoid", "without") kept as the single term `NOT`: "never run
the linter" must not read as "run the linter".

Each term also has a prior weight: generic words that appear in any advice ("always",
"make", "sure", "use", "run") count for little, and words of code (a file name such as
`app.py`, an identifier, a flag such as `-fdX`, a number) count double, so two lessons
agree only when what they are specifically about does.
"""

from __future__ import annotations

import re
from functools import lru_cache

import snowballstemmer

NOT = "NOT"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOP = _words("""
a an the and or but if then else so than that this these those there here of to in on at
by for from with into onto over under as is are was were be been being am it its it's
they them their we us our you your i me my he she his her him which who whom whose what
when where why how all any both each few more most other some such only own same too very
s t can will just should would could may might must shall do does did doing done has have
had having about above below up down out off again further once also via per etc e g ie eg
let lets let's one ones
""")

# Words that turn advice around: folded into one term so "never X" never merges with "X".
_NEGATIONS = _words("""
not no never dont don't doesnt doesn't didnt didn't isnt isn't arent aren't wont won't
cannot cant can't shouldnt shouldn't avoid avoids avoided avoiding without nor neither
""")

# Generic words of advice: present in most lessons whatever they are about.
_COMMON = _words("""
always usually often sometimes make makes made sure ensure use uses used using need needs
needed get gets got keep keeps kept try tries tried good better best first last new like
want way ways thing things work works worked working help helps instead rather really well
time times lot lots small big large quick quickly simple simply easy easier directly
run runs ran before after
""")
COMMON_WEIGHT = 0.3
CODE_WEIGHT = 2.0  # a word of a file name, identifier, flag or number: says most of all

# Coding synonyms, on the word before stemming.
_SYNONYMS = {
    "execute": "run", "executes": "run", "executed": "run", "executing": "run",
    "invoke": "run", "invokes": "run", "launch": "run", "launches": "run",
    "verify": "check", "verifies": "check", "verified": "check", "confirm": "check",
    "confirms": "check", "validate": "check", "validates": "check", "validated": "check",
    "modify": "change", "modifies": "change", "modified": "change", "edit": "change",
    "edits": "change", "edited": "change", "editing": "change", "alter": "change",
    "folder": "directory", "folders": "directory", "dir": "directory", "dirs": "directory",
    "method": "function", "methods": "function", "func": "function", "funcs": "function",
    "repo": "repository", "repos": "repository",
    "spec": "test", "specs": "test", "unittest": "test", "unittests": "test",
    "prior": "before", "beforehand": "before", "afterwards": "after",
}

_WORD = re.compile(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|\d+|[a-z]+")
_STEMMER = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65_536)
def _term(word: str) -> str:
    """One lower-case word as its term ("" for a stop word)."""
    if word in _NEGATIONS:
        return NOT
    if word in _STOP:
        return ""
    word = _SYNONYMS.get(word, word)
    return str(_STEMMER.stemWord(word))


_COMMON_STEMS = frozenset(str(_STEMMER.stemWord(w)) for w in _COMMON)


_CODE = re.compile(r"\w[./\\]\w|\w_\w|[a-z][A-Z]|\d|^-{1,2}\w")


def _scan(text: str) -> list[tuple[str, bool]]:
    """(term, is code) for each word of the text, in order."""
    out: list[tuple[str, bool]] = []
    # By whitespace-separated chunk: "don't" is one negation, "app.py" one piece of code.
    for chunk in text.split():
        low = chunk.lower().replace("’", "'").strip(".,;:!?()[]{}\"`")
        if low in _NEGATIONS:
            out.append((NOT, False))
            continue
        code = bool(_CODE.search(chunk.strip(".,;:!?()[]{}\"'`")))
        for word in _WORD.findall(chunk.replace("'", "").replace("’", "")):
            term = _term(word.lower())
            if term:
                out.append((term, code))
    return out


def terms(text: str) -> list[str]:
    """The text's terms in order, repeats kept (relevance counts them)."""
    return [term for term, _code in _scan(text)]


@lru_cache(maxsize=131_072)
def weights(text: str) -> dict[str, float]:
    """Each distinct term of the text with its prior weight (cached: lessons are compared
    many times). Treat the result as read-only."""
    out: dict[str, float] = {}
    for term, code in _scan(text):
        w = CODE_WEIGHT if code else prior(term)
        if w > out.get(term, 0.0):
            out[term] = w
    return out


def prior(term: str) -> float:
    """How much a word says about what a lesson is about, before any corpus statistics."""
    return COMMON_WEIGHT if term in _COMMON_STEMS else 1.0
