"""The SQLite store: migrations, batched events, tailing across processes, clear errors."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.errors import StoreError
from agent.events import make_event
from agent.store import Store
from agent.store.schema import SCHEMA_VERSION
from tests.conftest import cli


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
