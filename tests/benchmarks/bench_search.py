"""search_codebase and analyze_logs on a large tree: wall time, and how long the engine's
event loop is held meanwhile (its worst lag). The tools run in a child process now (a
model's regex must be killable); this prints what that costs.

Run: python tests/benchmarks/bench_search.py [FILES]
To compare with another checkout, run it with that checkout first on PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.config import Config  # noqa: E402
from agent.procs import ProcessGroups  # noqa: E402
from agent.tools import analyze_logs, search_codebase  # noqa: E402
from agent.tools.base import ToolContext  # noqa: E402

FILES = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000


def build(root: Path) -> None:
    body = "".join(f"def function_{i}(x):\n    return x + {i}\n\n" for i in range(40))
    for i in range(FILES):
        folder = root / f"pkg{i % 50}" / f"mod{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{i}.py").write_text(body + ("# needle here\n" if i % 997 == 0 else ""))
    (root / "logs").mkdir()
    lines = [
        f"2024-05-01 10:{m:02d}:{s:02d} ERROR request {m * 60 + s} failed"
        for m in range(60)
        for s in range(60)
    ]
    (root / "logs" / "app.log").write_text("\n".join(lines * 20) + "\n")


def ctx_for(root: Path) -> ToolContext:
    async def emit(type_: str, **payload: Any) -> None:
        pass

    async def ask(kind: str, summary: str, detail: dict[str, Any]) -> bool:
        return True

    config = Config()
    config.data_dir = root.parent / "data"
    return ToolContext(
        root=root, task_id="b", config=config, emit=emit, procs=ProcessGroups(), ask=ask
    )


async def timed(tool: Any, args: dict[str, Any], ctx: ToolContext) -> tuple[float, float, str]:
    """(seconds, worst event-loop lag in seconds, first output line)."""
    lag = 0.0
    stop = False

    async def probe() -> None:
        nonlocal lag
        while not stop:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lag = max(lag, time.perf_counter() - t - 0.005)

    prober = asyncio.ensure_future(probe())
    start = time.perf_counter()
    result = await tool.run(args, ctx)
    took = time.perf_counter() - start
    stop = True
    await prober
    return took, lag, result.output.splitlines()[0][:70]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "wt"
        root.mkdir()
        build(root)
        ctx = ctx_for(root)
        print(f"tree: {FILES:,} files; code from {search_codebase.__file__}")
        cases = [
            (search_codebase.tool, {"pattern": "needle"}),
            (search_codebase.tool, {"pattern": r"function_\d+\(x\)", "path": "pkg1"}),
            (search_codebase.tool, {"pattern": "no-such-text", "glob": "*.py"}),
            (search_codebase.tool, {"pattern": "def", "path": "pkg3/mod3/file3.py"}),
            (analyze_logs.tool, {"path": "logs"}),
        ]
        for tool, args in cases:
            runs = [await timed(tool, args, ctx) for _ in range(3)]
            best = min(r[0] for r in runs)
            lag = max(r[1] for r in runs)
            print(f"{tool.name:16} {str(args)[:48]:48} best {best * 1000:8.1f} ms  "
                  f"worst loop lag {lag * 1000:7.1f} ms  | {runs[0][2]}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
