"""The SQLite store: migrations, batched events, tailing across processes, clear errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agent.errors import StoreError
from agent.events import make_event
from agent.store import Store
from agent.store.schema import SCHEMA_VERSION
from tests.conftest import cli, until


async def test_events_round_trip_in_order_and_per_task(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.db")
    batch = [make_event("a", i, "step", action="read_file", target=f"f{i}") for i in range(1, 6)]
    batch += [make_event("b", 1, "status", state="queued")]
    await store.append_events(batch)
    events = await store.task_events("a", after_seq=2)
    assert [e["seq"] for e in events] == [3, 4, 5]
    assert events[0] == batch[2]
    cursor, tail = await store.tail_events(0)
    assert len(tail) == 6 and cursor == await store.last_event_id()
    await store.close()


async def test_a_second_process_tails_new_events(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await Store.open(path)
    code = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from agent.store import Store
        async def main():
            store = await Store.open({str(path)!r})
            cursor = await store.last_event_id()
            print("ready", flush=True)
            while True:
                cursor, events = await store.tail_events(cursor)
                if events:
                    print(events[0]["type"], events[0]["target"], flush=True)
                    return
                await asyncio.sleep(0.02)
        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout and proc.stdout.readline().strip() == "ready"
    await store.append_events([make_event("t", 1, "step", target="hello.py")])
    line = await asyncio.to_thread(proc.stdout.readline)
    assert line.strip() == "step hello.py"
    proc.wait(5)
    await store.close()


async def test_corrupt_store_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError) as err:
        await Store.open(path)
    assert "corrupt" in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes().startswith(b"this is not")  # nothing overwritten


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}").connection.close()
    with pytest.raises(StoreError, match="newer than this livhana-cockpit"):
        await Store.open(path)


async def test_locked_store_times_out_with_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agent.store.opening as store_module

    monkeypatch.setattr(store_module, "LOCK_TIMEOUT_S", 0.2)
    path = tmp_path / "s.db"
    store = await Store.open(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    with pytest.raises(StoreError, match="locked by another process"):
        await store.append_events([make_event("t", 1, "step")])
    holder.execute("ROLLBACK")
    await store.append_events([make_event("t", 1, "step")])  # usable once the lock is gone
    assert len(await store.task_events("t")) == 1
    await store.close()


def test_cli_reports_corrupt_store_without_traceback(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "livhana.db").write_bytes(b"garbage" * 1000)
    result = cli("--data-dir", str(data), "history")
    assert result.returncode == 3
    assert result.stderr.startswith("livhana-cockpit: store") and "Traceback" not in result.stderr


async def test_history_page_filters_by_state_and_text(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.db")
    for i in range(120):
        await store.create_task(
            {
                "id": f"t{i:03d}",
                "title": f"task {i} {'docs' if i % 3 else 'api'}",
                "workspace": "/w",
                "state": "succeeded" if i % 2 else "failed",
                "created_at": 1000.0 + i,
            }
        )
    page = await store.list_tasks(states=["failed"], text="api", limit=5)
    assert [t["id"] for t in page] == ["t114", "t108", "t102", "t096", "t090"]
    second = await store.list_tasks(states=["failed"], text="api", limit=5, offset=5)
    assert second[0]["id"] == "t084"
    await store.close()


async def test_task_ids_accept_a_unique_prefix(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.db")
    for task_id in ("abcd1111", "abcd2222"):
        await store.create_task({"id": task_id, "title": "x", "workspace": "/w", "state": "queued"})
    assert (await store.get_task("abcd1"))["id"] == "abcd1111"
    assert await store.get_task("abcd") is None  # ambiguous
    await store.close()


# -- issue 8: no lost event, no repeated number, any str -----------------------------------
def _events(path: Path, task_id: str) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [json.loads(r[0]) for r in db.execute(
            "SELECT data FROM events WHERE task_id = ? ORDER BY id", [task_id]
        )]  # fmt: skip


def _seqs(path: Path, task_id: str) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [r[0] for r in db.execute(
            "SELECT seq FROM events WHERE task_id = ? ORDER BY id", [task_id]
        )]  # fmt: skip


async def test_a_flush_refused_by_a_locked_store_keeps_its_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds the write lock past the timeout: the flush fails for real,
    and once the lock is gone every event is stored, in order, none lost."""
    import agent.store.opening as store_module
    from agent.bus import EventBus

    monkeypatch.setattr(store_module, "LOCK_TIMEOUT_S", 0.2)
    path = tmp_path / "s.db"
    store = await Store.open(path)
    bus = EventBus(store, lambda payload: payload)
    await bus.start()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held like a slow writer would
    for i in range(5):
        bus.emit("t", "step", n=i)
    with contextlib.suppress(AssertionError):  # (before issue 8 the flush hung here instead)
        await until(lambda: "event flush failed" in caplog.text, timeout=10)
    holder.execute("ROLLBACK")
    holder.close()
    for i in range(5, 8):
        bus.emit("t", "step", n=i)
    await until(lambda: 7 in [e["n"] for e in _events(path, "t")], timeout=10)
    assert [e["n"] for e in await store.task_events("t")] == list(range(8))
    assert _seqs(path, "t") == list(range(1, 9))
    await bus.close()
    await store.close()


async def test_the_lock_message_states_the_real_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agent.store.opening as store_module

    monkeypatch.setattr(store_module, "LOCK_TIMEOUT_S", 0.4)
    path = tmp_path / "s.db"
    store = await Store.open(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreError) as err:
        await store.create_task({"id": "t1", "title": "x", "workspace": "/w", "state": "queued"})
    holder.execute("ROLLBACK")
    holder.close()
    waited = re.search(r"locked by another process \(waited (\d+\.\d)s\)", str(err.value))
    assert waited and float(waited.group(1)) >= 0.4, str(err.value)
    await store.close()


async def test_two_writers_of_one_task_never_repeat_a_number(tmp_path: Path) -> None:
    """The task's engine and another process (a rollback, an approval) both add events:
    the store numbers after what is stored, so no seq repeats and none is lost."""
    from agent.bus import EventBus

    path = tmp_path / "s.db"
    first, second = await Store.open(path), await Store.open(path)
    await first.create_task({"id": "t", "title": "x", "workspace": "/w", "state": "running"})
    one, two = EventBus(first, lambda p: p), EventBus(second, lambda p: p)
    await one.adopt("t")
    await two.adopt("t")  # both start numbering at 1
    for i in range(3):
        one.emit("t", "step", by="one", n=i)
        two.emit("t", "step", by="two", n=i)
    await asyncio.gather(one.flush(), two.flush())
    one.emit("t", "step", by="one", n=3)  # the first bus follows on after both
    await one.flush()
    stored = await first.task_events("t")
    assert [e["seq"] for e in stored] == list(range(1, 8))
    assert sorted((e["by"], e["n"]) for e in stored) == sorted(
        [("one", i) for i in range(4)] + [("two", i) for i in range(3)]
    )
    with pytest.raises(sqlite3.IntegrityError), contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("INSERT INTO events (task_id, seq, ts, type, data) VALUES ('t', 1, 0, 'x', '{}')")
    for store in (first, second):
        await store.close()


async def test_a_subscriber_gets_what_is_emitted_before_it_first_reads(tmp_path: Path) -> None:
    """`run --json` subscribes, reads the stored events, then follows live: an event
    emitted between the two (the worker runs meanwhile) reached nobody, and the printed
    stream had a hole."""
    from agent.bus import EventBus

    store = await Store.open(tmp_path / "s.db")
    bus = EventBus(store, lambda p: p)
    live = bus.subscribe("t")
    bus.emit("t", "step", n=1)  # before the first read of `live`
    bus.emit("other", "step", n=9)
    assert (await asyncio.wait_for(anext(live), 10))["n"] == 1
    await live.aclose()
    bus.emit("t", "step", n=2)  # closed: no longer queued for anyone
    assert bus._subscribers == []  # noqa: SLF001
    await bus.close()
    await store.close()


async def test_a_store_with_repeated_numbers_is_renumbered_on_upgrade(tmp_path: Path) -> None:
    """Stores written before numbers were unique may hold a task numbered twice over
    (a live engine taken for dead): opened, it is renumbered in stored order, nothing lost."""
    from agent.store.schema import MIGRATIONS

    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("PRAGMA user_version=1")
        rows = [("a", 1), ("a", 2), ("a", 2), ("a", 3), ("a", 3), ("b", 1), ("b", 2)]
        db.executemany(
            "INSERT INTO events (task_id, seq, ts, type, data) VALUES (?, ?, 0, 'step', ?)",
            [(t, s, json.dumps({"n": i})) for i, (t, s) in enumerate(rows)],
        )
        db.commit()
    store = await Store.open(path)
    assert [(e["seq"], e["n"]) for e in await store.task_events("a")] == [
        (1, 0), (2, 1), (3, 2), (4, 3), (5, 4)
    ]  # fmt: skip
    assert [e["seq"] for e in await store.task_events("b")] == [1, 2]
    await store.close()


async def test_any_python_str_is_stored_escaped_and_read_back(tmp_path: Path) -> None:
    """Lone surrogates (a file name decoded with surrogateescape, half an emoji) cannot be
    UTF-8: the store escapes them (`\\xNN` for an undecodable byte, `\\uXXXX` otherwise,
    as agent/text.py marks them at the edges), and the audit chain over such records
    still verifies."""
    from agent import audit

    odd = "caf\udce9 \ud800 \ud83d\ude00"
    shown = "caf\\xe9 \\ud800 \\ud83d\\ude00"
    store = await Store.open(tmp_path / "s.db")
    await store.create_task({"id": "t1", "title": odd, "workspace": "/w/" + odd,
                             "state": "running", "changes": [odd], "options": {odd: odd}})  # fmt: skip
    await store.update_task("t1", summary=odd, error=odd)
    await store.append_events([make_event("t1", 1, "tool_result", output=odd, **{odd: [odd]})])
    approval = await store.create_approval("t1", "apply", odd, {"diff": odd})
    await store.add_learnings("t1", [("pattern", odd)])
    await store.set_setting("note", odd)
    await audit.append(store, odd, "submit", "t1", {"title": odd, odd: 1})
    await audit.append(store, "operator", "cancel", "t1", {})

    task = await store.get_task("t1")
    assert task["title"] == task["summary"] == task["error"] == shown
    assert task["workspace"] == "/w/" + shown
    assert task["changes"] == [shown] and task["options"] == {shown: shown}
    (event,) = await store.task_events("t1")
    assert event["output"] == shown and event[shown] == [shown]
    assert (await store.get_approval(approval))["summary"] == shown
    assert (await store.learnings())[0]["text"] == shown
    assert await store.get_setting("note") == shown
    assert (await store.list_tasks(text=odd[:5]))[0]["id"] == "t1"  # a search with one too
    assert await audit.verify(store) == (True, "2 records verified")
    await store.close()
