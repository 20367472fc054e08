"""Cockpit benchmarks. Run: python tests/benchmarks/bench_ui.py [--load] [--events N]

1. First full frame of `livhana-cockpit --demo` in a pseudo-terminal of 120x40, median of 7
   runs, side by side with a minimal Textual app (goal: <= 0.6 s). "Full frame" = the
   synchronized-output block that holds the nav bar's last panel and the footer's STOP key.
2. --load: the cockpit on a store that another process (like the daemon) fills with 20
   tasks x 50 events/s (or --rate); while it runs, panel keys are sent and the time until
   the new panel is on screen is measured (goal p95 <= 100 ms), and the cockpit's RSS is
   read once --events events have been written (goal <= 300 MB after 1,000,000).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
COLS, ROWS = 120, 40
SYNC_END = b"\x1b[?2026l"
MINIMAL = (
    "from textual.app import App\n"
    "from textual.widgets import Footer, Static\n"
    "class Minimal(App):\n"
    "    BINDINGS = [('ctrl+q', 'quit', 'Quit')]\n"
    "    def compose(self):\n"
    "        yield Static('Minimal app')\n"
    "        yield Footer()\n"
    "Minimal().run()\n"
)


class Term:
    """A child process on a pty of COLS x ROWS; output is collected as it arrives."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     cwd=ROOT, start_new_session=True, close_fds=True)
        os.close(slave)
        self.out = bytearray()

    def read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            self.out += os.read(self.master, 65536)
        except OSError:
            return False
        return True

    def wait_frame(self, markers: list[bytes], since: int = 0, timeout: float = 30) -> float:
        """Seconds from start until a synchronized update showing every marker ends."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            self.read(0.05)
            tail = bytes(self.out[since:])
            if all(m in tail for m in markers):
                last = max(tail.rfind(m) for m in markers)
                if SYNC_END in tail[last:] or not tail.count(b"\x1b[?2026h"):
                    return time.perf_counter() - self.started
        raise TimeoutError(f"no frame with {markers} within {timeout}s")

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        try:
            self.send(b"\x11")  # ctrl+q: quit cleanly (the demo removes its temp dir)
            deadline = time.perf_counter() + 10
            while self.proc.poll() is None and time.perf_counter() < deadline:
                self.read(0.1)
        except OSError:
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.close(self.master)

    def rss_mb(self) -> float:
        """RSS of the child and its own children (the app is the python process)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def cockpit_argv(*args: str) -> list[str]:
    exe = shutil.which("livhana-cockpit")
    return [exe, *args] if exe else [sys.executable, "-m", "cockpit", *args]


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", LIVHANA_DATA_DIR=str(tmp / "data"), TMPDIR=str(tmp),
               PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    return env


def first_frame(argv: list[str], markers: list[bytes], runs: int = 7) -> list[float]:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            term = Term(argv, base_env(Path(tmp)))
            try:
                times.append(term.wait_frame(markers))
            finally:
                term.close()
    return times


def bench_first_frame(runs: int) -> None:
    minimal = first_frame([sys.executable, "-c", MINIMAL], [b"Minimal app", b"Quit"], runs)
    cockpit = first_frame(cockpit_argv("--demo"), [b"Metrics", b"STOP"], runs)
    print(f"first full frame, 120x40 pty, median of {runs}:")
    print(f"  minimal Textual app      {statistics.median(minimal):.3f} s  "
          f"(min {min(minimal):.3f}, max {max(minimal):.3f})")
    print(f"  livhana-cockpit --demo   {statistics.median(cockpit):.3f} s  "
          f"(min {min(cockpit):.3f}, max {max(cockpit):.3f})  goal <= 0.600 s")


async def feed(store_path: Path, events: int, rate: float, tasks: int, done: list[int]) -> None:
    """Another process's engine at work: tasks and their events appended to the store."""
    from agent.events import make_event
    from agent.store import Store

    store = await Store.open(store_path)
    ids = [f"load{n:08d}" for n in range(tasks)]
    for task_id in ids:
        await store.create_task({"id": task_id, "title": f"load task {task_id}", "workspace": "/tmp",
                                 "state": "running", "engine_id": "bench-daemon"})
    kinds = ("text", "step", "tool_result", "usage", "progress")
    batch_every = 0.05
    per_batch = max(1, int(rate * batch_every))
    seq = dict.fromkeys(ids, 0)
    start = time.perf_counter()
    written = 0
    while written < events:
        batch = []
        for i in range(per_batch):
            task_id = ids[(written + i) % tasks]
            seq[task_id] += 1
            kind = kinds[seq[task_id] % len(kinds)]
            batch.append(make_event(task_id, seq[task_id], kind, text="working " * 8,
                                    action="read_file", target="shopcart/cart.py",
                                    output="ok " * 20, completed=seq[task_id] % 10, total=10,
                                    input_tokens=100, output_tokens=20, total_cost_usd=0.001))
        await store.append_events(batch)
        written += len(batch)
        done[0] = written
        lag = start + written / rate - time.perf_counter()
        await asyncio.sleep(max(0.0, lag))
    await store.close()


PANELS = [(b"2", [b"spent by live tasks"]), (b"1", [b"Recent tasks"])]


def bench_load(events: int, rate: float, tasks: int, panels: list[tuple[bytes, list[bytes]]] = PANELS
               ) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        term = Term(cockpit_argv(), base_env(tmp))
        term.wait_frame([b"Metrics", b"STOP"])
        time.sleep(1.5)  # the engine opens after the first frame
        done = [0]
        loop = asyncio.new_event_loop()
        import threading

        feeder = threading.Thread(target=loop.run_until_complete,
                                  args=(feed(tmp / "data" / "livhana.db", events, rate, tasks, done),))
        feeder.start()
        latencies: list[float] = []
        i = 0
        peak = 0.0
        while feeder.is_alive():
            key, markers = panels[i % 2]
            i += 1
            since = len(term.out)
            sent = time.perf_counter()
            term.send(key)
            try:
                term.wait_frame(markers, since=since, timeout=10)
                latencies.append(time.perf_counter() - sent)
            except TimeoutError:
                latencies.append(10.0)
            del term.out[: max(0, len(term.out) - 1_000_000)]  # keep the bench's own memory flat
            peak = max(peak, term.rss_mb())
            end = time.perf_counter() + 0.5
            while time.perf_counter() < end:
                term.read(0.05)
                del term.out[: max(0, len(term.out) - 1_000_000)]
        feeder.join()
        time.sleep(2)
        rss = term.rss_mb()
        term.close()
    lat = sorted(latencies)
    p95 = lat[int(0.95 * (len(lat) - 1))]
    print(f"under load: {tasks} tasks, {rate:.0f} events/s, {done[0]:,} events written")
    print(f"  key-to-repaint over {len(lat)} panel switches: median {statistics.median(lat) * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms (goal <= 100 ms)")
    print(f"  cockpit RSS after the run {rss:.0f} MB, peak seen {peak:.0f} MB (goal <= 300 MB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--load", action="store_true", help="also run the load benchmark")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--tasks", type=int, default=20)
    args = parser.parse_args()
    bench_first_frame(args.runs)
    if args.load:
        bench_load(args.events, args.rate, args.tasks)


if __name__ == "__main__":
    main()
