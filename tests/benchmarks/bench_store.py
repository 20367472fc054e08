"""Store benchmark: batched appends, a history page over a big store, cross-process latency.

Goals (issue 2): >= 50,000 events/s appended in batches; one history page (50 rows,
filtered by status) with 1,000,000 events stored in <= 20 ms; a second process sees a
new event in <= 150 ms. Run: python tests/benchmarks/bench_store.py [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.bus import TAIL_INTERVAL_S  # noqa: E402
from agent.events import END_STATES, make_event  # noqa: E402
from agent.store import Store  # noqa: E402

WATCHER = """
import asyncio, sys, time
sys.path.insert(0, {root!r})
from agent.store import Store
async def main():
    store = await Store.open({path!r})
    cursor = await store.last_event_id()
    print("ready", flush=True)
    while True:
        cursor, events = await store.tail_events(cursor)
        for e in events:
            print(f"{{time.time() - e['ts']:.6f}}", flush=True)
            if e["type"] == "last":
                return
        await asyncio.sleep({interval})
asyncio.run(main())
"""


async def main(n_events: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    store = await Store.open(tmp / "bench.db")
    n_tasks = 5000
    for i in range(n_tasks):
        await store.create_task(
            {
                "id": f"t{i:06d}",
                "title": f"task {i}",
                "workspace": "/w",
                "state": END_STATES[i % len(END_STATES)] if i % 7 else "running",
                "created_at": time.time() - i,
            }
        )
    payload = {"action": "write_file", "target": "src/app.py", "input": {"path": "src/app.py"}}
    batch = 2000
    elapsed = 0.0
    for start in range(0, n_events, batch):
        # Events are made by the engine before they reach the store: time only the append.
        events = [
            make_event(f"t{(start + j) % n_tasks:06d}", start + j, "step", **payload)
            for j in range(min(batch, n_events - start))
        ]
        t0 = time.perf_counter()
        await store.append_events(events)
        elapsed += time.perf_counter() - t0
    print(
        f"append: {n_events:,} events in {elapsed:.2f} s = {n_events / elapsed:,.0f} events/s (goal >= 50,000)"
    )

    times = []
    for i in range(30):
        t0 = time.perf_counter()
        rows = await store.list_tasks(states=["succeeded", "failed"], limit=50, offset=(i % 5) * 50)
        times.append((time.perf_counter() - t0) * 1000)
        assert len(rows) == 50
    print(
        f"history page (50 rows by status, {n_events:,} events stored): "
        f"median {statistics.median(times):.2f} ms, max {max(times):.2f} ms (goal <= 20 ms)"
    )

    script = WATCHER.format(
        root=str(Path(__file__).resolve().parents[2]),
        path=str(tmp / "bench.db"),
        interval=TAIL_INTERVAL_S / 2,
    )
    watcher = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert watcher.stdout and watcher.stdout.readline().strip() == "ready"
    lags = []
    for i in range(20):
        await store.append_events([make_event("t000001", 10**9 + i, "step", **payload)])
        line = await asyncio.to_thread(watcher.stdout.readline)
        lags.append(float(line) * 1000)
        await asyncio.sleep(0.05)
    await store.append_events([make_event("t000001", 2 * 10**9, "last")])
    watcher.wait(10)
    print(
        f"cross-process visibility: median {statistics.median(lags):.1f} ms, "
        f"max {max(lags):.1f} ms (goal <= 150 ms)"
    )
    await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    asyncio.run(main(parser.parse_args().events))
