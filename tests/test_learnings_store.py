"""The store keeps one row per distinct learning, however many tasks taught it."""

from __future__ import annotations

from pathlib import Path

from agent.store import Store


async def test_a_lesson_taught_by_three_tasks_is_one_row_with_their_uses_combined(
        tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.db")
    try:
        for task in ("t1", "t2", "t3"):
            await store.add_learnings(task, [("pattern", "run pytest -q before committing")])
        await store.add_learnings("t2", [("nextStep", "run pytest -q before committing")])
        await store.add_learnings("t3", [("improvement", "read the failing test first")])

        rows = await store.learnings()
        assert len(rows) == 3  # the same text in another category is another learning
        merged = next(r for r in rows if r["category"] == "pattern")
        assert merged["taught"] == 3 and merged["task_ids"] == ["t1", "t2", "t3"]
        assert merged["task_id"] == "t1"  # where it was first learned

        await store.mark_learnings_used([merged["id"]])
        await store.mark_learnings_used([merged["id"]])
        again = [r for r in await store.learnings("pytest") if r["category"] == "pattern"]
        assert [r["uses"] for r in again] == [2]
    finally:
        await store.close()


async def test_uses_recorded_on_duplicates_before_the_merge_are_added_up(tmp_path: Path) -> None:
    """Old stores hold a separate row per teaching, each with its own use count."""
    store = await Store.open(tmp_path / "s.db")
    try:
        await store.add_learnings("t1", [("pattern", "pages are 1-based")])
        await store.add_learnings("t2", [("pattern", "pages are 1-based")])
        await store.execute("UPDATE learnings SET uses = 2 WHERE task_id = 't1'")
        await store.execute("UPDATE learnings SET uses = 3 WHERE task_id = 't2'")
        (row,) = await store.learnings()
        assert row["uses"] == 5 and row["taught"] == 2
    finally:
        await store.close()
