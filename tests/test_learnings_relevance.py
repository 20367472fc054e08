"""Which learnings a task is given: relevance better than counting shared words.

The seed picked learnings by the number of words (longer than 3 letters) a title shared
with them, and always gave the top 8, relevant or not. The index (agent/learnings/index.py)
weighs rare words over common ones and meets word forms ("paginates" / "Pagination"),
and gives nothing when nothing is relevant."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from agent.config import LearningsConfig
from agent.learnings.book import LearningBook
from agent.learnings.index import Index
from agent.store import Store

LESSONS = {
    1: "Pagination in the orders endpoint is 1-based: request page 1 first",
    2: "Run the whole test suite with pytest -q before committing",
    3: "The config loader rejects unknown keys: add new keys to the schema first",
    4: "Database migrations must be appended, never edited",
    5: "Cache invalidation in the session store needs the user id as the key",
    6: "Logging uses structured JSON lines; never print to stdout",
    7: "When fixing a bug, write the failing test first, then the code",
    8: "Authentication tokens expire after 8 hours; refresh them before long jobs",
    9: "The build uses make; add new targets to the Makefile, with help text",
    10: "Keep functions small, with docstrings and type hints, and review them before merging",
}
TITLES = [
    ("Orders list paginates wrong on the last page", 1),
    ("tests are flaky when committing from the CLI", 2),
    ("Add a new setting for the retry delay in config", 3),
    ("Add a column to the users table with a migration", 4),
    ("Sessions are not invalidated after logout", 5),
    ("Replace print statements with proper logging", 6),
    ("Token refresh fails for jobs running longer than a few hours", 8),
    ("Add a lint target to the Makefile", 9),
]
UNRELATED = "The payment webhook returns 500 when the amount is missing"
MIN_RELEVANCE = 0.1  # the config's default


def word_overlap(title: str) -> list[int]:
    """The seed's ranking, for comparison."""
    words = {w for w in title.lower().split() if len(w) > 3}
    return sorted(LESSONS, key=lambda i: -len(words & set(LESSONS[i].lower().split())))


def test_the_index_finds_the_relevant_learning_where_word_overlap_does_not() -> None:
    index = Index.build([(i, text, None) for i, text in LESSONS.items()])
    hits = [index.search(title, 1, min_score=MIN_RELEVANCE) for title, _want in TITLES]
    found = sum(1 for (_t, want), hit in zip(TITLES, hits, strict=True) if hit and hit[0][0] == want)
    old = sum(1 for title, want in TITLES if word_overlap(title)[0] == want)
    assert found == len(TITLES)
    assert old <= len(TITLES) - 3  # the seed's pick missed at least three of them
    # Nothing relevant: nothing given (the seed gave its top 8 anyway).
    assert index.search(UNRELATED, 8, min_score=MIN_RELEVANCE) == []


def test_scores_are_cosines_and_updates_take_effect() -> None:
    index = Index.build([(i, text, None) for i, text in LESSONS.items()])
    ((best, score),) = index.search(LESSONS[4], 1)
    assert best == 4 and abs(score - 1.0) < 1e-6  # a learning against itself
    index.remove(4)
    assert all(i != 4 for i, _s in index.search("database migrations", 5))
    index.add(11, "Schema migrations go in db/migrations, one file each", None)
    assert index.search("add a migration for the users table", 1)[0][0] == 11


def test_a_learning_of_another_workspace_is_not_offered() -> None:
    index = Index.build([(1, LESSONS[1], "/p/shop"), (2, LESSONS[1], "/p/blog"),
                         (3, LESSONS[1], None)])
    hits = index.search("orders pagination", 5, groups=["/p/shop", None])
    assert sorted(i for i, _s in hits) == [1, 3]


async def test_the_engine_gives_relevant_learnings_by_its_index(
        engine_factory: Any, repo: Any) -> None:
    engine = await engine_factory()
    for i, text in LESSONS.items():
        await engine.store.add_learnings(f"t{i}", [("pattern", text)], workspace=str(repo))
    assert await engine.relevant_learnings(TITLES[4][0], limit=1) == [LESSONS[5]]
    assert await engine.relevant_learnings(UNRELATED) == []


def test_adding_a_batch_scores_as_adding_one_by_one() -> None:
    batch = Index.build([(i, text, None) for i, text in LESSONS.items()])
    single = Index.build([(i, text, None) for i, text in LESSONS.items()])
    later = [(11, "Schema migrations go in db/migrations, one file each", "/p"),
             (12, "Pagination links carry the page size", "/p")]
    batch.add_many(later)
    for doc in later:
        single.add(*doc)
    for title in [t for t, _want in TITLES] + ["add a migration", "page size of the list"]:
        assert batch.search(title, 12) == single.search(title, 12)
    # The same id twice in one batch: its last text, held once.
    batch.add_many([(13, LESSONS[2], None), (13, "Canary deploys first", None)])
    assert [i for i, _s in batch.search("canary deploys", 12)] == [13]
    assert all(i != 13 for i, _s in batch.search(LESSONS[2], 12))


async def test_lessons_stamped_at_one_instant_are_indexed_once_and_a_change_still_counts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of lessons shares one changed_at; each pick re-read and re-indexed all of
    them (with 100,000, a task's pick never finished). A change at that same instant is
    still taken."""
    store = await Store.open(tmp_path / "s.db")
    try:
        await store.add_learnings("t0", [("pattern", text) for text in LESSONS.values()],
                                  workspace="/p")
        book = LearningBook(store, LearningsConfig(holdout=0.0))
        taken: list[int] = []
        real_add_many = Index.add_many

        def counting(index: Index, docs: Any) -> None:
            docs = list(docs)
            taken.extend(doc_id for doc_id, _t, _g in docs)
            real_add_many(index, docs)

        monkeypatch.setattr(Index, "add_many", counting)
        first = await book.select("t1", TITLES[0][0], "/p")
        assert [g["text"] for g in first["given"]][:1] == [LESSONS[1]]
        taken.clear()
        await book.select("t2", TITLES[3][0], "/p")
        assert len(taken) <= 3, taken  # at most what the first pick recorded, not all ten
        # An edit stamped at the very instant the batch was: taken, and found.
        rows = await store.lessons_changed_since(0)
        stamp = max(float(r["changed_at"]) for r in rows)
        monkeypatch.setattr(time, "time", lambda: stamp)
        lesson = next(r["id"] for r in rows if r["text"] == LESSONS[9])
        await store.change_lesson(lesson, "edit", "operator", text="Deploys need a green canary")
        picked = await book.select("t3", "the canary deploy", "/p")
        assert [g["text"] for g in picked["given"]] == ["Deploys need a green canary"]
    finally:
        await store.close()
