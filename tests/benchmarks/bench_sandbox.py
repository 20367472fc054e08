"""What the sandbox costs per command: building the bwrap argv, and starting `true` in it
against running `true` plainly (the difference is what every execute_bash/run_tests pays).

Run: .venv/bin/python tests/benchmarks/bench_sandbox.py [-n 200]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent import sandbox  # noqa: E402


def _argv(root: Path, data: Path) -> list[str]:
    try:  # the allowlist builder takes the data dir (to hide it)
        return sandbox.sandbox_argv("true", root, network=False, data_dir=data)  # type: ignore[call-arg]
    except TypeError:  # the builder before (/ read-only)
        return sandbox.sandbox_argv("true", root, network=False)


def _time(argv: list[str], n: int, cwd: Path) -> list[float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=200)
    n = parser.parse_args().n
    assert sandbox.bwrap_available(), sandbox.sandbox_status()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        data = Path(tmp) / "data"
        root = data / "worktrees" / "t1"
        root.mkdir(parents=True)
        _argv(root, data)  # warm caches (the /etc scan, the tool dirs)
        t = time.perf_counter()
        for _ in range(n):
            argv = _argv(root, data)
        build = (time.perf_counter() - t) / n
        mounts = sum(a.startswith("--") and a.endswith(("bind", "tmpfs")) for a in argv)
        plain = _time(["bash", "-c", "true"], n, root)
        boxed = _time(argv, n, root)
    med = statistics.median
    print(f"argv build: {build * 1e6:8.1f} us  ({len(argv)} args, {mounts} mounts)")
    print(f"plain bash -c true: median {med(plain) * 1e3:6.2f} ms")
    print(f"sandboxed true:     median {med(boxed) * 1e3:6.2f} ms  "
          f"(p90 {sorted(boxed)[int(n * 0.9)] * 1e3:.2f} ms, n={n})")  # fmt: skip
    print(f"sandbox start cost: {(med(boxed) - med(plain)) * 1e3:6.2f} ms per command")


if __name__ == "__main__":
    main()
