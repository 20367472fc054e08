"""Engine benchmark: 50 concurrent tasks x 40 steps, zero-latency model, no-op tool,
every event persisted. Goal (issue 2): engine overhead <= 1 ms per step and >= 1,000
steps/s aggregate on a 2-core machine. Run: python tests/benchmarks/bench_engine.py
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.config import load_config  # noqa: E402
from agent.engine import Engine  # noqa: E402
from agent.models.base import ModelResponse, Usage  # noqa: E402
from agent.tools.base import ToolContext, ToolResult  # noqa: E402

TASKS, STEPS = 50, 40


class Noop:
    name = "search_codebase"  # a tool the default policy allows, so no approval per step
    kind = "read"
    description = "does nothing"
    input_schema: dict[str, Any] = {"type": "object", "properties": {"i": {"type": "integer"}}}

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        return ToolResult("ok")


GO = asyncio.Event()  # set once every task is set up: the timed phase is steps only
READY: list[int] = []


class ZeroLatencyModel:
    name = "zero"
    context_window = 200_000

    async def complete(
        self,
        *,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        on_delta: Any = None,
    ) -> ModelResponse:
        if len(messages) == 1 and tools is not None:
            READY.append(1)
            await GO.wait()
        if tools is None:
            return ModelResponse([{"type": "text", "text": "{}"}], "end_turn", Usage(), self.name)
        done = sum(1 for m in messages if m["role"] == "assistant")
        if done >= STEPS:
            return ModelResponse([{"type": "text", "text": "done"}], "end_turn", Usage(), self.name)
        call = {
            "type": "tool_use",
            "id": f"t{done}",
            "name": "search_codebase",
            "input": {"i": done},
        }
        return ModelResponse([call], "tool_use", Usage(10, 5), self.name)

    async def aclose(self) -> None:
        return None


async def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    repo = tmp / "repo"
    repo.mkdir()
    (repo / "a.txt").write_text("a\n")
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "x"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True)
    config = load_config(tmp / "data")
    config.engine.max_concurrent = TASKS
    config.engine.stall_steps = 10_000
    config.engine.max_steps = STEPS + 5
    engine = await Engine.open(config, role="bench", model_factory=lambda spec: ZeroLatencyModel())
    engine.tools.clear()  # the worker and the views share this dict
    engine.tools["search_codebase"] = Noop()
    setup0 = time.perf_counter()
    ids = [
        await engine.submit(f"bench task {i}", repo, approve="auto", apply=False)
        for i in range(TASKS)
    ]
    while len(READY) < TASKS:  # worktrees made, analysis done, every model call waiting
        await asyncio.sleep(0.01)
    setup = time.perf_counter() - setup0
    last_step = [0.0, 0.0]  # wall, cpu at the latest tool result

    async def watch() -> None:
        async for event in engine.subscribe():
            if event["type"] == "tool_result":
                last_step[:] = [time.perf_counter(), time.process_time()]

    watcher = asyncio.create_task(watch())
    cpu0, wall0 = time.process_time(), time.perf_counter()
    GO.set()
    results = [await engine.wait(i) for i in ids]
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    watcher.cancel()
    step_wall, step_cpu = last_step[0] - wall0, last_step[1] - cpu0
    await engine.bus.flush()
    stored = (await engine.store.fetch("SELECT COUNT(*) AS n FROM events"))[0]["n"]
    steps = sum(r["steps"] for r in results)
    ok = sum(1 for r in results if r["state"] == "succeeded")
    print(
        f"{TASKS} tasks x {STEPS} steps: {ok}/{TASKS} succeeded, {steps} steps, {stored:,} events stored"
    )
    print(f"setup (worktrees, analysis) {setup:.2f} s, not timed below")
    print(
        f"steps phase: wall {wall:.2f} s, engine CPU {cpu:.2f} s "
        f"(includes finishing: commit, diff, worktree clean-up of 50 tasks)"
    )
    print(f"until the last step: wall {step_wall:.2f} s, engine CPU {step_cpu:.2f} s")
    print(
        f"engine overhead: {step_cpu / steps * 1000:.3f} ms CPU per step "
        f"({cpu / steps * 1000:.3f} ms counting the finish) (goal <= 1 ms)"
    )
    print(
        f"aggregate: {steps / step_wall:,.0f} steps/s to the last step, "
        f"{steps / wall:,.0f} steps/s counting the finish (goal >= 1,000)"
    )
    await engine.close()


if __name__ == "__main__":
    asyncio.run(main())
