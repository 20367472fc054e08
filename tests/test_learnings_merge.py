"""Near-duplicates: the same advice in other words merges, different advice does not.

The labelled pairs below are where MERGE_AT (agent/learnings/similar.py) was chosen: every
paraphrase scores at or above it, every different piece of advice below, with a margin on
both sides. A pair that moves across is a change of behaviour, not noise."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.learnings.similar import MERGE_AT, same_advice, similarity
from agent.store import Store

SAME = [
    ("Run the test suite before committing", "Always run tests before you commit"),
    ("Pages are 1-based in the users API", "The users API numbers pages from 1 (1-based pages)"),
    ("Read the failing test before changing the code",
     "Before editing code, read the failing test first"),
    ("app.py holds the helper functions", "Helper functions live in app.py"),
    ("Use pytest -q to keep test output short", "Run pytest with -q so the test output stays short"),
    ("Clean build artifacts with git clean -fdX so ignored files go",
     "Use git clean -fdX to remove ignored build artifacts"),
    ("The config loader rejects unknown keys", "Unknown keys are rejected by the config loader"),
    ("Check the CHANGELOG when bumping the version", "When you bump the version, check the CHANGELOG"),
    ("Never commit secrets to the repository", "Don't commit secrets into the repo"),
    ("Paginate with page size 50 in the orders endpoint",
     "The orders endpoint paginates with a page size of 50"),
    ("Write small focused commits", "Make commits small and focused"),
    ("Migrations must be appended, never edited", "Never edit a migration; append a new one"),
]
DIFFERENT = [
    ("Run the tests before committing", "Run the linter before committing"),
    ("Never commit secrets to the repository", "Commit the lock file to the repository"),
    ("Run the tests before committing", "Don't run the tests before committing"),
    ("Pages are 1-based in the users API", "Pages are 0-based in the orders API"),
    ("app.py holds the helper functions", "utils.py holds the helper functions"),
    ("Use pytest -q to keep test output short", "Use pytest -x to stop at the first failure"),
    ("Read the failing test before changing the code",
     "Read the README before changing the build"),
    ("The config loader rejects unknown keys", "The config loader accepts environment overrides"),
    ("Write small focused commits", "Write docstrings for public functions"),
    ("Check the CHANGELOG when bumping the version", "Tag the release after bumping the version"),
    ("Clean build artifacts with git clean -fdX", "Rebuild the docs with make html"),
    ("The orders endpoint paginates with a page size of 50",
     "The orders endpoint requires an auth token"),
]
MARGIN = 0.05


@pytest.mark.parametrize(("a", "b"), SAME)
def test_the_same_advice_in_other_words_is_a_duplicate(a: str, b: str) -> None:
    assert similarity(a, b) >= MERGE_AT + MARGIN
    assert same_advice(a, b) and same_advice(b, a)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_advice_is_not_a_duplicate(a: str, b: str) -> None:
    assert similarity(a, b) <= MERGE_AT - MARGIN
    assert not same_advice(a, b) and not same_advice(b, a)


async def test_the_store_merges_duplicates_into_one_learning_and_keeps_each_teaching(
        tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.db")
    try:
        first = await store.add_learnings("t1", [("pattern", SAME[0][0]),
                                                 ("pattern", DIFFERENT[0][1])])
        second = await store.add_learnings("t2", [("pattern", SAME[0][1]),
                                                  ("improvement", SAME[0][1])])
        assert [i["merged"] for i in first] == [False, False]  # tests vs linter: two
        assert second[0]["merged"] and second[0]["lesson_id"] == first[0]["lesson_id"]
        assert not second[1]["merged"]  # another category is another learning
        rows = {r["id"]: r for r in await store.learnings()}
        merged = rows[first[0]["lesson_id"]]
        assert merged["taught"] == 2 and merged["task_ids"] == ["t1", "t2"]
        assert merged["text"] == SAME[0][0] and merged["said"] == list(SAME[0])
        counts = await store.lesson_counts()
        assert (counts["lessons"], counts["taught"], counts["merged"]) == (3, 4, 1)
    finally:
        await store.close()


async def test_learnings_of_another_workspace_are_not_merged(tmp_path: Path) -> None:
    """"app.py holds the helpers" in one project says nothing about another project."""
    store = await Store.open(tmp_path / "s.db")
    try:
        a = await store.add_learnings(None, [("pattern", SAME[3][0])], workspace="/p/one")
        b = await store.add_learnings(None, [("pattern", SAME[3][1])], workspace="/p/two")
        c = await store.add_learnings(None, [("pattern", SAME[3][1])], workspace="/p/one")
        assert not b[0]["merged"] and b[0]["lesson_id"] != a[0]["lesson_id"]
        assert c[0]["merged"] and c[0]["lesson_id"] == a[0]["lesson_id"]
    finally:
        await store.close()
