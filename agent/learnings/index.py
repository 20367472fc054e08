"""The relevance index: which learnings a task's title is about, fast among many.

Each learning is a TF-IDF vector over its terms (agent/learnings/words.py: stems, so
"paginate" meets "pagination"; stop words out; generic words of advice weigh little,
words of code double), normalised, so a score is the cosine between the title and the
learning: 0 (nothing in common) to 1 (the same terms in the same proportions). Unlike
counting shared words, a rare word ("pagination") outweighs a common one ("tests"), and
a long learning does not win just by having more words.

The scores are exact: every posting of every query term is added up, as numpy arrays
(a term's postings are one array of slots and one of weights), so a common term costs
microseconds, not a Python loop. Adds and removals are incremental (a removed doc's slot
is masked out); the IDF is that of the last full build, redone when the collection has
grown by a quarter since.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .words import weights


class Index:
    def __init__(self) -> None:
        self._texts: dict[int, tuple[str, str | None]] = {}  # doc id -> (text, group)
        self._slot: dict[int, int] = {}  # doc id -> its slot in the arrays
        self._ids = np.zeros(0, dtype=np.int64)  # slot -> doc id
        self._alive = np.zeros(0, dtype=bool)
        self._group = np.zeros(0, dtype=np.int32)  # slot -> group code
        self._codes: dict[str | None, int] = {}
        self._used = 0  # slots handed out
        # term -> (slots, weights): one pair of arrays per term, made at build time
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._df: dict[str, int] = {}
        self._idf_n = 0
        self._idf: dict[str, float] = {}

    @classmethod
    def build(cls, docs: Iterable[tuple[int, str, str | None]]) -> Index:
        index = cls()
        index.rebuild(list(docs))
        return index

    def __len__(self) -> int:
        return len(self._texts)

    def __contains__(self, doc_id: int) -> bool:
        return doc_id in self._texts

    # -- building --------------------------------------------------------------------------
    def rebuild(self, docs: list[tuple[int, str, str | None]] | None = None) -> None:
        """Everything again from the texts (`docs`, or the ones held): a fresh IDF."""
        texts = dict(self._texts) if docs is None else {i: (t, g) for i, t, g in docs}
        self.__init__()  # type: ignore[misc]
        self._texts = texts
        for text, _group in texts.values():
            for term in weights(text):
                self._df[term] = self._df.get(term, 0) + 1
        self._idf_n = len(texts)
        self._grow(len(texts))
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for doc_id, (text, group) in texts.items():
            slot = self._place(doc_id, group)
            for term, w in self._vector(text).items():
                slots, ws = postings.setdefault(term, ([], []))
                slots.append(slot)
                ws.append(w)
        self._arrays = {
            term: (np.array(slots, dtype=np.int64), np.array(ws, dtype=np.float64))
            for term, (slots, ws) in postings.items()
        }

    def add(self, doc_id: int, text: str, group: str | None) -> None:
        self.add_many([(doc_id, text, group)])

    def add_many(self, docs: Iterable[tuple[int, str, str | None]]) -> None:
        """Add (or replace) docs; each touched term's arrays are grown once for all of
        them (appending doc by doc copied a common term's postings once per doc)."""
        docs = list({doc[0]: doc for doc in docs}.values())  # an id once: its last text
        for doc_id, text, group in docs:
            self.remove(doc_id)
            self._texts[doc_id] = (text, group)
        if len(self._texts) > max(8, self._idf_n * 1.25):  # the IDF has drifted: redo it
            self.rebuild()
            return
        self._grow(self._used + len(docs))
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for doc_id, text, group in docs:
            for term in weights(text):
                self._df[term] = self._df.get(term, 0) + 1
            slot = self._place(doc_id, group)
            for term, w in self._vector(text).items():
                slots, ws = postings.setdefault(term, ([], []))
                slots.append(slot)
                ws.append(w)
        for term, (slots, ws) in postings.items():
            new = np.array(slots, dtype=np.int64), np.array(ws, dtype=np.float64)
            old = self._arrays.get(term)
            self._arrays[term] = new if old is None else (
                np.concatenate((old[0], new[0])), np.concatenate((old[1], new[1])))

    def remove(self, doc_id: int) -> None:
        entry = self._texts.pop(doc_id, None)
        if entry is None:
            return
        self._alive[self._slot.pop(doc_id)] = False  # its postings stay, masked out
        for term in weights(entry[0]):
            self._df[term] = max(0, self._df.get(term, 1) - 1)

    def _grow(self, slots: int) -> None:
        if slots <= len(self._ids):
            return
        size = max(slots, 2 * len(self._ids), 64)
        for name, dtype in (("_ids", np.int64), ("_alive", bool), ("_group", np.int32)):
            old = getattr(self, name)
            new = np.zeros(size, dtype=dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _place(self, doc_id: int, group: str | None) -> int:
        slot = self._used
        self._used += 1
        self._slot[doc_id] = slot
        self._ids[slot] = doc_id
        self._alive[slot] = True
        self._group[slot] = self._codes.setdefault(group, len(self._codes))
        return slot

    # -- weights ---------------------------------------------------------------------------
    def idf(self, term: str) -> float:
        idf = self._idf.get(term)
        if idf is None:
            # Smoothed; a term no learning has gets the highest weight a new word can.
            idf = math.log(1 + (self._idf_n + 1) / (self._df.get(term, 0) + 0.5))
            self._idf[term] = idf
        return idf

    def _vector(self, text: str) -> dict[str, float]:
        raw = {t: prior * self.idf(t) for t, prior in weights(text).items()}
        norm = math.sqrt(sum(w * w for w in raw.values())) or 1.0
        return {t: w / norm for t, w in raw.items()}

    # -- querying --------------------------------------------------------------------------
    def search(
        self, text: str, k: int = 10, groups: Iterable[str | None] | None = None,
        min_score: float = 0.0,
    ) -> list[tuple[int, float]]:
        """The `k` best (doc id, cosine) for `text`, best first,
        among the docs of `groups` (None: all), each above 0 and at least `min_score`."""
        if not self._texts or k <= 0:
            return []
        scores = np.zeros(self._used, dtype=np.float64)
        for term, wq in self._vector(text).items():
            postings = self._arrays.get(term)
            if postings is not None:
                slots, ws = postings
                scores[slots] += wq * ws  # a term's slots are distinct: no np.add.at needed
        keep = self._alive[: self._used]
        if groups is not None:
            allowed = np.zeros(len(self._codes), dtype=bool)
            allowed[[self._codes[g] for g in set(groups) if g in self._codes]] = True
            keep = keep & allowed[self._group[: self._used]]
        candidates = np.flatnonzero(keep & (scores >= max(min_score, 1e-12)))
        if len(candidates) > k:
            candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        best = sorted(((float(scores[s]), int(self._ids[s])) for s in candidates),
                      key=lambda item: (-item[0], item[1]))
        return [(doc_id, round(score, 6)) for score, doc_id in best]

    def text(self, doc_id: int) -> str:
        return self._texts[doc_id][0]

    def score(self, text: str, doc_id: int) -> float:
        """The cosine of `text` and one doc (0 if it is not held)."""
        entry = self._texts.get(doc_id)
        if entry is None:
            return 0.0
        query, doc = self._vector(text), self._vector(entry[0])
        return sum(w * doc.get(t, 0.0) for t, w in query.items())
