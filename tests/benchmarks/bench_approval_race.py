"""Approve/deny race: `approve ID & deny ID &` as two real command lines, ROUNDS times,
on tasks waiting for a deploy approval. Prints how many rounds had exactly one winner,
how many had two processes both reporting success (issue 8 item 4: 4 of 28 on main),
and how many losers named the winner. Run: python tests/benchmarks/bench_approval_race.py [N]
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.config import DeployTarget, load_config  # noqa: E402
from agent.engine import Engine  # noqa: E402


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


async def main(rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-race-"))
    os.environ["LIVHANA_DATA_DIR"] = str(tmp / "data")
    repo = tmp / "project"
    repo.mkdir()
    (repo / "README.md").write_text("# x\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "i")
    script = tmp / "s.json"
    turn = {"tool_calls": [{"name": "deploy_code", "input": {"target": "prod"}}]}
    script.write_text(json.dumps({"scripts": [{"match": ".", "turns": [turn]}]}))
    config = load_config(tmp / "data")
    config.deploy = {"prod": DeployTarget(command="echo shipped > deployed.txt")}
    engine = await Engine.open(config, role="bench")
    both = one = named = 0
    started = time.monotonic()
    try:
        for n in range(rounds):
            task_id = await engine.submit(f"deploy {n}", repo, model=f"scripted:{script}", apply=False)
            while not await engine.store.approvals("pending", task_id=task_id):
                await asyncio.sleep(0.01)
            procs = {
                verb: subprocess.Popen([sys.executable, "-m", "cockpit", verb, task_id], cwd=ROOT,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for verb in ("approve", "deny")
            }  # fmt: skip
            done = {v: await asyncio.to_thread(p.communicate) for v, p in procs.items()}
            codes = {v: p.returncode for v, p in procs.items()}
            winners = [v for v, c in codes.items() if c == 0]
            both += len(winners) == 2
            one += len(winners) == 1
            if len(winners) == 1:
                loser = "deny" if winners[0] == "approve" else "approve"
                named += f"(pid {procs[winners[0]].pid})" in done[loser][1]
            await engine.wait(task_id)
    finally:
        await engine.close()
    took = time.monotonic() - started
    print(f"{rounds} rounds in {took:.1f} s: exactly one winner {one}, both reported success "
          f"{both}, losers naming the winner {named}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
