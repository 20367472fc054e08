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
import itertools
import json
import multiprocessing
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 32  # keep-alive connections carrying the status load
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
    """In its own process: `rate` GET tasks/{id} a second for `seconds`, over WORKERS
    keep-alive connections. Each request has its time slot and is sent then (open loop);
    one sent late because every connection was busy says by how much. Plain asyncio
    streams, not httpx: its pool slows down badly once hundreds of requests wait on it,
    and the load must not be what we measure."""

    async def main() -> dict[str, Any]:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        request = (f"GET /api/autonomous/tasks/{task_id} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   f"Authorization: Bearer {token}\r\n\r\n").encode()  # fmt: skip
        latencies: list[float] = []
        late: list[float] = []
        errors = 0
        total = int(rate * seconds)
        slots = itertools.count()
        loop = asyncio.get_running_loop()
        ready = asyncio.Barrier(WORKERS + 1)
        go = asyncio.Event()  # set once `begin` is
        begin = 0.0

        async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if length is None:
                raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
            await reader.readexactly(int(length.group(1)))
            return int(head.split(b" ", 2)[1])

        async def worker() -> None:
            nonlocal errors
            reader, writer = await asyncio.open_connection(host, port)
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(5):  # warm: the connection, the server's caches
                await ask(reader, writer)
            await ready.wait()
            await go.wait()
            try:
                while (n := next(slots)) < total:
                    due = begin + n / rate
                    if (wait := due - loop.time()) > 0:
                        await asyncio.sleep(wait)
                    elif wait < -0.001:
                        late.append(-wait)
                    start = time.perf_counter()
                    status = await ask(reader, writer)
                    latencies.append(time.perf_counter() - start)
                    errors += status != 200
            finally:
                writer.close()

        workers = [asyncio.create_task(worker()) for _ in range(WORKERS)]
        await ready.wait()
        begin = loop.time()
        go.set()
        await asyncio.gather(*workers)
        return {"latencies": latencies, "late": late, "errors": errors, "sent": total,
                "wall": loop.time() - begin}  # fmt: skip

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
            result: dict[str, Any] | None = None
            while result is None and (load.is_alive() or parent.poll()):
                rss_peak = max(rss_peak, _rss_kb(daemon.proc.pid))
                if parent.poll():  # read as it comes: a big answer fills the pipe's buffer
                    result = parent.recv()
                await asyncio.sleep(0.2)
            load.join()
            if result is None:
                raise SystemExit(f"the status load process died (exit {load.exitcode}): see above")
            latencies, errors, sent = result["latencies"], result["errors"], result["sent"]
            late = result["late"]
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
          f"({len(latencies) / result['wall']:.0f}/s achieved over {WORKERS} connections), "
          f"{errors} not 200; {len(late)} sent late (all connections busy), "
          f"by at most {max(late, default=0) * 1000:.1f} ms")
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
