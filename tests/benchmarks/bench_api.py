"""HTTP API benchmark (issue 11): 200 concurrent SSE subscribers on one busy task, plus 500
status requests a second, on loopback, against the real daemon (`--daemon`, scripted model).

Goals: p95 status latency <= 20 ms; every subscriber gets every event of the task exactly
once, in order (checked against the store); the daemon's RSS is printed.

The status requests come from a second process, paced open-loop (each at its own time,
whether or not the last one answered), so a slow answer cannot hide by slowing the load.
Run: python tests/benchmarks/bench_api.py [--subscribers 200] [--rate 500] [--turns 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.api_kit import Daemon  # noqa: E402


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _setup(base: Path, turns: int, delay: float) -> tuple[Path, Path]:
    repo = base / "project"
    repo.mkdir()
    for i in range(20):
        (repo / f"mod{i}.py").write_text(f"def f{i}():\n    return {i}\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "-c", "user.email=b@x", "-c", "user.name=b", "add", "-A")
    _git(repo, "-c", "user.email=b@x", "-c", "user.name=b", "commit", "-qm", "init")
    busy = [
        {"thinking": f"step {i}", "delay_s": delay,
         "tool_calls": [{"name": "read_file", "input": {"path": f"mod{i % 20}.py"}}]}
        for i in range(turns)
    ]  # fmt: skip
    script = base / "busy.json"
    script.write_text(json.dumps({"scripts": [{"match": ".", "turns": busy}]}))
    config = base / "config.toml"
    config.write_text(
        f'[engine]\nmodel = "scripted:{script}"\nmax_steps = {turns + 10}\n'
        f"stall_steps = {turns + 10}\n"
        "[api]\nrate_limit = 100000\nrate_burst = 100000\n"
    )
    return repo, config


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _subscriber(client: httpx.AsyncClient, task_id: str, out: list[int]) -> None:
    async with client.stream("GET", f"/api/autonomous/stream/{task_id}") as resp:
        assert resp.status_code == 200, resp.status_code
        async for line in resp.aiter_lines():
            if line.startswith("id:"):
                out.append(int(line[3:]))


def _status_load(url: str, token: str, task_id: str, rate: int, seconds: float, conn: Any) -> None:
    """In its own process: `rate` GET tasks/{id} a second for `seconds`; latencies back."""

    async def main() -> tuple[list[float], int, int]:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        headers = {"Authorization": f"Bearer {token}"}
        latencies: list[float] = []
        errors = 0
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                     timeout=30) as client:  # fmt: skip

            async def one() -> None:
                nonlocal errors
                start = time.perf_counter()
                resp = await client.get(f"/api/autonomous/tasks/{task_id}")
                latencies.append(time.perf_counter() - start)
                if resp.status_code != 200:
                    errors += 1

            for _ in range(50):  # warm the connection pool
                await one()
            latencies.clear()
            loop = asyncio.get_running_loop()
            begin = loop.time()
            total = int(rate * seconds)
            running = set()
            for n in range(total):
                delay = begin + n / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                job = asyncio.create_task(one())
                running.add(job)
                job.add_done_callback(running.discard)
            await asyncio.gather(*running)
            return latencies, errors, total

    conn.send(asyncio.run(main()))


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def run(args: argparse.Namespace) -> int:
    base = Path(tempfile.mkdtemp(prefix="bench-api-"))
    os.environ["LIVHANA_DATA_DIR"] = str(base / "data")
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    os.environ["XDG_DATA_HOME"] = str(base / "keyring")  # never the operator's keyring
    repo, config = _setup(base, args.turns, args.delay)
    daemon = Daemon(base / "data", "--workspace", str(repo), config=config)
    try:
        url = daemon.wait_ready()
        token = subprocess.run(
            [sys.executable, "-m", "cockpit", "--config", str(config), "token", "create"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        rss_idle = _rss_kb(daemon.proc.pid)
        limits = httpx.Limits(max_connections=args.subscribers + 10)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                     limits=limits, timeout=None) as client:  # fmt: skip
            answer = await client.post("/api/autonomous/execute",
                                       json={"task": "read every module", "approve": "auto"})
            task_id = answer.json()["taskId"]
            seqs: list[list[int]] = [[] for _ in range(args.subscribers)]
            subs = [asyncio.create_task(_subscriber(client, task_id, s)) for s in seqs]
            await asyncio.sleep(1.0)  # every subscriber connected and replaying
            cpu0, t0 = _cpu_s(daemon.proc.pid), time.monotonic()
            parent, child = multiprocessing.Pipe()
            load = multiprocessing.get_context("spawn").Process(
                target=_status_load, args=(url, token, task_id, args.rate, args.seconds, child)
            )
            load.start()
            rss_peak = 0
            while load.is_alive():
                rss_peak = max(rss_peak, _rss_kb(daemon.proc.pid))
                await asyncio.sleep(0.2)
            latencies, errors, sent = parent.recv()
            cpu = _cpu_s(daemon.proc.pid) - cpu0
            wall = time.monotonic() - t0
            await asyncio.wait_for(asyncio.gather(*subs), 600)
            rss_end = _rss_kb(daemon.proc.pid)
            state = (await client.get(f"/api/autonomous/tasks/{task_id}")).json()["state"]
    finally:
        daemon.stop()
    db = sqlite3.connect(base / "data" / "livhana.db")
    stored = [r[0] for r in db.execute(
        "SELECT seq FROM events WHERE task_id = ? ORDER BY seq", [task_id])]  # fmt: skip
    exact = sum(1 for s in seqs if s == stored)
    dropped = sum(len(set(stored) - set(s)) for s in seqs)
    duplicated = sum(len(s) - len(set(s)) for s in seqs)
    p95 = _pct(latencies, 95)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"task {task_id}: {state}, {len(stored)} events stored")
    print(f"subscribers: {args.subscribers}; exactly the stored events, in order: {exact}; "
          f"dropped {dropped}, duplicated {duplicated}")
    print(f"status: {len(latencies)} answered of {sent} sent at {args.rate}/s "
          f"({len(latencies) / args.seconds:.0f}/s achieved), {errors} not 200")
    print(f"status latency ms: p50 {_pct(latencies, 50):.1f}  p95 {p95:.1f}  "
          f"p99 {_pct(latencies, 99):.1f}  max {max(latencies) * 1000:.1f}")
    print(f"daemon RSS: idle {rss_idle / 1024:.1f} MB, peak {rss_peak / 1024:.1f} MB, "
          f"end {rss_end / 1024:.1f} MB; CPU {cpu:.1f} s over {wall:.1f} s of load")
    ok = exact == args.subscribers and not errors and p95 <= 20.0
    print("PASS" if ok else "FAIL: goals are p95 <= 20 ms and every event exactly once")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--rate", type=int, default=500, help="status requests per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the load runs")
    parser.add_argument("--turns", type=int, default=400, help="model turns of the busy task")
    parser.add_argument("--delay", type=float, default=0.03, help="seconds per model turn")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
