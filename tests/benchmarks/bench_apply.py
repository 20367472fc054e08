"""What the journaled apply and rollback cost: a task branch that adds N files and edits
N/10 others, applied to and rolled back from a checkout, against the same change made by
the plain `git restore` the engine used before (no journal, no staging, no checks); and how
long a recovery takes after a kill mid-switch.

Run: .venv/bin/python tests/benchmarks/bench_apply.py [N ...]   (default 1000 5000)
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent import applyback  # noqa: E402
from agent.gitcmd import git_env  # noqa: E402
from agent.journal import orphans  # noqa: E402


def git(cwd: Path, *args: str) -> str:
    env = {**git_env(), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, env=env, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


def make(root: Path, n: int) -> str:
    root.mkdir()
    for i in range(max(1, n // 10)):
        (root / f"old{i}.txt").write_text(f"old {i}\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    base = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "-b", "livhana/t")
    for i in range(max(1, n // 10)):
        (root / f"old{i}.txt").write_text(f"changed {i}\n")
    for i in range(n):
        path = root / f"gen{i % 20}" / f"f{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"{i}\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "task")
    git(root, "checkout", "-q", "main")
    return base


async def journaled(root: Path, base: str, journals: Path) -> tuple[float, float]:
    t0 = time.perf_counter()
    record = await applyback.apply(root, "livhana/t", base, task_id="t", journal_dir=journals)
    t1 = time.perf_counter()
    await applyback.rollback_applied(root, record, journal_dir=journals)
    return t1 - t0, time.perf_counter() - t1


def unjournaled(root: Path, base: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    tip = git(root, "rev-parse", "livhana/t")
    git(root, "update-ref", "HEAD", tip, base)
    git(root, "restore", f"--source={tip}", "--staged", "--worktree", ".")
    t1 = time.perf_counter()
    git(root, "update-ref", "HEAD", base, tip)
    git(root, "restore", f"--source={base}", "--staged", "--worktree", ".")
    return t1 - t0, time.perf_counter() - t1


async def recovery(root: Path, base: str, journals: Path) -> float:
    """Apply in a child process stopped mid-switch and killed; time the recovery."""
    code = (
        "import asyncio, sys; from pathlib import Path; from agent import applyback; "
        f"asyncio.run(applyback.apply(Path({str(root)!r}), 'livhana/t', {base!r}, task_id='t', "
        f"journal_dir=Path({str(journals)!r})))"
    )
    env = {"LIVHANA_CRASHPOINT": "apply:switching", "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env,
                            cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    t0 = time.perf_counter()
    for journal in orphans(journals):
        await applyback.recover(journal)
        journal.close()
    return time.perf_counter() - t0


async def main(sizes: list[int]) -> None:
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="bench-apply-"))
        try:
            base = make(tmp / "repo", n)
            a, r = await journaled(tmp / "repo", base, tmp / "journal")
            ua, ur = unjournaled(tmp / "repo", base)
            rec = await recovery(tmp / "repo", base, tmp / "journal")
            print(f"{n:>6} new + {max(1, n // 10)} edited files: journaled apply {a:6.2f}s, "
                  f"rollback {r:6.2f}s | bare git restore {ua:6.2f}s / {ur:6.2f}s | "
                  f"recovery after a kill mid-switch {rec:5.2f}s")  # fmt: skip
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [1000, 5000]))
