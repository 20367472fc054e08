"""What the safe git layer costs: `Git.stage_all` (two `ls-files` to leave nested
repositories out, then `add -A`) against a bare `git add -A`, and a task's end (commit_all +
diff) on a 5,000-file worktree with a 3-file change.

Run: .venv/bin/python tests/benchmarks/bench_git.py
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

from agent import workspace  # noqa: E402
from agent.gitcmd import Git, git_env  # noqa: E402

FILES = 5_000
ROUNDS = 15


def make_repo(root: Path) -> list[Path]:
    files = []
    for i in range(FILES):
        path = root / f"pkg{i % 50:02d}" / f"sub{i % 7}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# module {i}\n" + "x = 1\n" * (i % 40 + 5))
        files.append(path)
    env = {**git_env(), "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True, env=env)
    return files


def ms(xs: list[float]) -> str:
    return f"median {statistics.median(xs):6.1f} ms   p90 {sorted(xs)[int(len(xs) * 0.9)]:6.1f} ms"


async def bench(root: Path, data: Path, files: list[Path]) -> None:
    tree = await workspace.prepare(root, "bench", data / "worktrees")
    g = Git(tree.path, git_dir=tree.git_dir, work_tree=tree.path)
    raw, safe, end = [], [], []
    for r in range(ROUNDS):
        (tree.path / files[r].relative_to(root)).write_text(f"changed {r}\n")
        t = time.perf_counter()
        await g.run("add", "-A", "--", ".")
        raw.append((time.perf_counter() - t) * 1000)
        (tree.path / files[r + 100].relative_to(root)).write_text(f"changed {r}\n")
        t = time.perf_counter()
        await g.stage_all()
        safe.append((time.perf_counter() - t) * 1000)
        for k in range(3):
            (tree.path / files[(r * 37 + k * 1013) % FILES].relative_to(root)).write_text("x\n")
        t = time.perf_counter()
        await workspace.commit_all(tree, f"round {r}")
        await workspace.diff(tree)
        end.append((time.perf_counter() - t) * 1000)
    print(f"git add -A (bare)            {ms(raw)}   ({FILES} files)")
    print(f"Git.stage_all (safe)         {ms(safe)}")
    print(f"commit_all + diff, 3 files   {ms(end)}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        files = make_repo(root)
        asyncio.run(bench(root, Path(tmp) / "data", files))


if __name__ == "__main__":
    main()
