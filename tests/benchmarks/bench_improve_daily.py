"""Daily analysis benchmark: the `improve daily` analysis over a big store and big logs.

Goal (issue 10): 1,000,000 stored events plus 1 GB of logs analysed in <= 10 s with memory
<= 300 MB. The logs are streamed (agent/improve/logscan.py reads them in pieces in a child
process); the store part reads only the last day's events (a binary search on ids).

Memory is the peak of the whole process tree (this process, the log-reading child and its
workers), sampled every 20 ms from /proc, summed: what the machine gave the analysis.

Run: python tests/benchmarks/bench_improve_daily.py [--events N] [--log-mb MB] [--data DIR]
(--data keeps the generated store and logs there and reuses them on the next run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.config import load_config  # noqa: E402
from agent.engine import Engine  # noqa: E402
from agent.improve import daily  # noqa: E402
from agent.store import Store  # noqa: E402

DAY_S = 86_400
DAYS = 8  # the last day and its 7-day baseline
GOAL_S, GOAL_MB = 10.0, 300.0
TOOLS = ("read_file", "write_file", "execute_bash", "run_tests", "search_code")
STEADY = ("ERROR app.db: connection reset by peer", "ERROR app.cache: miss storm on key users")


# -- the data -------------------------------------------------------------------------------
async def make_store(path: Path, events: int, now: float) -> None:
    store = await Store.open(path)  # the schema, migrated
    await store.close()
    db = sqlite3.connect(path)
    per_task = 100
    tasks = max(1, events // per_task)
    start = now - DAYS * DAY_S
    span = DAYS * DAY_S
    rng = random.Random(7)
    task_rows, usage_rows = [], []
    batch: list[tuple[str, int, float, str, str]] = []
    for t in range(tasks):
        tid = f"bench{t:07d}"
        t0 = start + span * t / tasks
        state = "failed" if t % 9 == 0 else "succeeded"
        task_rows.append((tid, f"bench task {t}", "/w", state, t0, t0, t0 + 60, t0 + 60,
                          "tests fail: AssertionError in test_login" if state == "failed"
                          else None))  # fmt: skip
        usage_rows.append((tid, t0 + 30, "claude", 1000, 200, 0, 0, 0.01))
        for seq in range(1, per_task + 1):
            ts = t0 + seq * 0.5
            if seq % 2:
                kind, data = "step", {"n": seq}
            else:
                tool = TOOLS[seq % len(TOOLS)]
                err = rng.random() < 0.03
                kind = "tool_result"
                data = {"action": tool, "is_error": err,
                        "output": "Error: permission denied: /etc/shadow" if err else "ok"}
            batch.append((tid, seq, ts, kind, json.dumps(data)))
        if len(batch) >= 50_000:
            db.executemany("INSERT INTO events (task_id, seq, ts, type, data) "
                           "VALUES (?, ?, ?, ?, ?)", batch)
            batch.clear()
    if batch:
        db.executemany("INSERT INTO events (task_id, seq, ts, type, data) VALUES (?, ?, ?, ?, ?)",
                       batch)
    db.executemany("INSERT INTO tasks (id, title, workspace, state, created_at, started_at, "
                   "finished_at, updated_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   task_rows)
    db.executemany("INSERT INTO usage (task_id, ts, model, input_tokens, output_tokens, "
                   "cache_creation_input_tokens, cache_read_input_tokens, cost_usd) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", usage_rows)
    db.commit()
    db.close()


def make_logs(logs: Path, megabytes: int, now: float) -> None:
    """One file a day (Python logging format, local time), `megabytes` in all: info lines,
    two steady errors every day, and a JWT_SECRET error only on the last day."""
    logs.mkdir(parents=True, exist_ok=True)
    per_file = megabytes * (1 << 20) // DAYS
    for day in range(DAYS):
        t = now - (DAYS - day) * DAY_S + 1
        last = day == DAYS - 1
        with open(logs / f"app-{day}.log", "w", encoding="utf-8", buffering=1 << 20) as f:
            written, n = 0, 0
            while written < per_file:
                stamp = datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")
                lines = []
                for i in range(200):  # one second's lines share a stamp: fast to write
                    n += 1
                    if n % 500 == 0:
                        msg = STEADY[n // 500 % 2]
                    elif last and n % 700 == 0:
                        msg = "ERROR app.auth: JWT validation failed: JWT_SECRET not loaded"
                    else:
                        msg = (f"INFO app.http: GET /api/items/{n % 9973} 200 in {i % 97} ms "
                               f"user={n % 1000} request_id=r{n:012d}")
                    lines.append(f"{stamp},{i % 1000:03d} {msg}\n")
                block = "".join(lines)
                f.write(block)
                written += len(block)
                # Spread over the whole day, however big the file.
                t = min(t + DAY_S * len(block) / per_file, now - (DAYS - day - 1) * DAY_S - 1)


# -- memory -----------------------------------------------------------------------------------
def _tree_rss_kb(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/statm") as f:
                pages = int(f.read().split()[1])
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE") // 1024
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def _cpu_s() -> float:
    """User + system CPU seconds of this process and its waited-for descendants."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Peak:
    def __init__(self) -> None:
        self.kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.kb = max(self.kb, _tree_rss_kb(os.getpid()))
            self._stop.wait(0.02)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- the run ----------------------------------------------------------------------------------
async def bench(root: Path, events: int, log_mb: int) -> bool:
    data_dir, ws = root / "data", root / "ws"
    marker = root / "made.json"
    made = json.loads(marker.read_text()) if marker.exists() else {}
    if made.get("events") != events or made.get("log_mb") != log_mb:
        now = time.time()
        data_dir.mkdir(parents=True, exist_ok=True)
        store_path = load_config(data_dir).store_path
        for stale in data_dir.glob(store_path.name + "*"):
            stale.unlink()
        t = time.perf_counter()
        await make_store(store_path, events, now)
        make_logs(ws / "logs", log_mb, now)
        print(f"generated {events:,} events and {log_mb} MB of logs in "
              f"{time.perf_counter() - t:.1f} s")
        marker.write_text(json.dumps({"events": events, "log_mb": log_mb, "now": now}))
        made = json.loads(marker.read_text())
    now = made["now"]
    log_bytes = sum(p.stat().st_size for p in (ws / "logs").glob("*.log"))
    config = load_config(data_dir)
    engine = await Engine.open(config, role="cli")
    try:
        base_mb = _tree_rss_kb(os.getpid()) / 1024
        cpu0 = _cpu_s()
        with Peak() as peak:
            t = time.perf_counter()
            result = await daily.analyse(engine, ws, now=now)
            took = time.perf_counter() - t
        cpu = _cpu_s() - cpu0
    finally:
        await engine.close()
    stats = result["stats"]
    kinds = sorted({i["kind"] for i in result["insights"]})
    jwt = [i for i in result["insights"] if i["kind"] == "error_spike" and "JWT" in i["summary"]]
    steady = [i for i in result["insights"] if i["kind"] == "error_spike"
              and any(s.split(": ", 1)[1] in i["summary"] for s in STEADY)]  # fmt: skip
    peak_mb = peak.kb / 1024
    print(f"store events: {events:,} ({stats['events']:,} in the last day)")
    print(f"logs: {log_bytes / (1 << 20):,.0f} MB, {stats['logs']['lines']:,} lines, "
          f"{len(stats['logs']['files'])} files")
    print(f"insights: {len(result['insights'])} ({', '.join(kinds)}); "
          f"JWT spike found: {bool(jwt)}; steady errors reported as spikes: {len(steady)}")
    print(f"time: {took:.2f} s (goal <= {GOAL_S:g} s)")
    print(f"cpu: {cpu:.2f} s in all (this process and the log readers it waited for)")
    print(f"memory: peak {peak_mb:.0f} MB for the process tree, this process {base_mb:.0f} MB "
          f"before the run (goal <= {GOAL_MB:g} MB)")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    ok = took <= GOAL_S and peak_mb <= GOAL_MB and bool(jwt) and not steady
    print("PASS" if ok else "FAIL")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--log-mb", type=int, default=1024)
    parser.add_argument("--data", type=Path, help="keep (and reuse) the generated data here")
    args = parser.parse_args()
    if args.data:
        args.data.mkdir(parents=True, exist_ok=True)
        ok = asyncio.run(bench(args.data, args.events, args.log_mb))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            ok = asyncio.run(bench(Path(tmp), args.events, args.log_mb))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
