"""Checkpoint benchmark: a 5,000-file repo; snapshot after a 3-file change, and restore.

Run: /work/venv/bin/python tests/benchmarks/bench_checkpoint.py   (goal: <= 100 ms each)
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.checkpoints import Checkpoints  # noqa: E402

FILES = 5_000
ROUNDS = 20


def make_repo(root: Path) -> list[Path]:
    files = []
    for i in range(FILES):
        path = root / f"pkg{i % 50:02d}" / f"sub{i % 7}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# module {i}\n" + "x = 1\n" * (i % 40 + 5))
        files.append(path)
    (root / ".gitignore").write_text("*.pyc\n__pycache__/\n")
    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b", "PATH": "/usr/bin:/bin"}  # fmt: skip
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=root, check=True, env=env)
    return files


async def bench(root: Path, shadow: Path, files: list[Path]) -> tuple[list[float], list[float]]:
    cp = Checkpoints(root, shadow)
    t = time.perf_counter()
    first = await cp.snapshot("initial")
    print(f"first snapshot (hashes all {FILES} files): {(time.perf_counter() - t) * 1000:.0f} ms")
    assert first
    snaps, restores = [], []
    prev = first
    for r in range(ROUNDS):
        for k in range(3):  # 3 changed files per step, like a typical agent step
            files[(r * 37 + k * 1013) % FILES].write_text(f"changed {r} {k}\n")
        (root / f"new{r}.txt").write_text("new file\n")
        t = time.perf_counter()
        commit = await cp.snapshot(f"step {r}")
        snaps.append((time.perf_counter() - t) * 1000)
        assert commit
        t = time.perf_counter()
        await cp.restore(prev)  # undo the step...
        restores.append((time.perf_counter() - t) * 1000)
        await cp.restore(commit)  # ...and return to it, so the next step builds on it
        prev = commit
    return snaps, restores


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root, shadow = Path(tmp) / "repo", Path(tmp) / "shadow"
        root.mkdir()
        files = make_repo(root)
        snaps, restores = asyncio.run(bench(root, shadow, files))
    for name, xs in (("snapshot (3-file change)", snaps), ("restore", restores)):
        print(
            f"{name:26s} median {statistics.median(xs):6.1f} ms   "
            f"p90 {sorted(xs)[int(len(xs) * 0.9)]:6.1f} ms   (goal <= 100 ms, {FILES} files)"
        )


if __name__ == "__main__":
    main()
