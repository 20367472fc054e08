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


async def test_a_store_from_before_lessons_keeps_every_learning_and_its_provenance(
        tmp_path: Path) -> None:
    """A schema-v2 store: its learnings become one lesson per distinct text and category,
    with the source task's workspace, each teaching kept and the old use counts summed."""
    import sqlite3

    from agent.store.opening import _split
    from agent.store.schema import MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        for statement in _split(script):
            db.execute(statement)
    db.execute("PRAGMA user_version=2")
    db.execute("INSERT INTO tasks (id, title, workspace, state, created_at, updated_at) "
               "VALUES ('t1', 'fix pages', '/p/shop', 'succeeded', 1, 1)")
    rows = [("t1", "pattern", "pages are 1-based", 10, 2), ("t2", "pattern", "pages are 1-based", 20, 3),
            ("t1", "nextStep", "tag a release", 10, 0)]
    db.executemany("INSERT INTO learnings (task_id, category, text, created_at, uses) "
                   "VALUES (?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()

    store = await Store.open(path)
    try:
        found = {r["text"]: r for r in await store.learnings()}
        assert set(found) == {"pages are 1-based", "tag a release"}
        pages = found["pages are 1-based"]
        assert pages["taught"] == 2 and pages["task_ids"] == ["t1", "t2"]
        assert pages["uses"] == 5 and pages["workspace"] == "/p/shop"
        assert pages["source_task"] == "t1" and pages["state"] == "active"
        assert (pages["created_at"], pages["last_taught_at"]) == (10, 20)
        # New teachings merge into the migrated lessons like into any other.
        (saved,) = await store.add_learnings("t1", [("pattern", "Pages are 1-based!")])
        assert saved["merged"] and saved["lesson_id"] == pages["id"]
        counts = await store.lesson_counts()
        assert (counts["lessons"], counts["merged"]) == (2, 2)
    finally:
        await store.close()
