"""One cost, one figure: a task's cost reads the same in History (the task's total) and on
Safety Controls (the sum of its usage rows), in the log and on the command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from cockpit.words import money
from tests.conftest import cli
from tests.fake_anthropic import FakeAnthropic


def _turn(tool_calls: list[dict], input_tokens: int, output_tokens: int) -> dict:
    # One cache-read token per call: 0.3 micro-dollars, less than the store's micro-dollar.
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens,
             "cache_read_input_tokens": 1, "cache_creation_input_tokens": 0}
    return {"text": "working", "tool_calls": tool_calls, "usage": usage}


# Six calls drop 1.8 micro-dollars when each is rounded alone: whatever the learnings
# call adds (at most half a micro-dollar either way), the rounded total is off by 1 or 2.
TURNS = [*(_turn([{"name": "read_file", "input": {"path": "app.py", "offset": n}}], 1000, 100)
           for n in range(1, 6)), _turn([], 1083, 0)]


async def _spent_by_task(data_dir: Path) -> dict[str, float]:
    """What Safety Controls lists as each task's spend: the sum of its usage rows."""
    from agent.config import load_config
    from agent.engine import Engine
    from agent.store import Store

    config = load_config(data_dir)
    store = await Store.open(config.store_path, readonly=True)
    try:
        rows = await Engine(config, store, role="cli").views.spend_by_task(0)
    finally:
        await store.close()
    return {r["task_id"]: r["cost_usd"] for r in rows}


def test_history_and_safety_show_the_same_cost(repo: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[engine]\nmodel_retries = 0\n")
    with FakeAnthropic(TURNS, learnings_reply="not json") as fake:
        ran = cli("--config", str(config), "run", "look at app.py", "--workspace", str(repo),
                  "--json", "--approve", "auto", "--no-apply", env=fake.env)
    assert ran.returncode == 0, ran.stderr
    events = [json.loads(line) for line in ran.stdout.splitlines()]
    task_id = events[-1]["task_id"]
    history = json.loads(cli("history", "--json").stdout)
    total = next(t["cost_usd"] for t in history if t["id"] == task_id)
    spent = asyncio.run(_spent_by_task(tmp_path / "data"))[task_id]
    assert round(spent, 6) == round(total, 6), (spent, total)
    assert money(spent) == money(total)
    shown = cli("history").stdout
    assert money(spent) in next(line for line in shown.splitlines() if task_id[:8] in line)


def test_money_rounds_half_up_whatever_the_float() -> None:
    # 0.01665 and 0.01675 are ties whose floats fall on either side of the tie.
    assert money(0.01665) == money(0.016649999999999998) == "$0.0167"
    assert money(0.01675) == money(0.0167499999999) == "$0.0168"
    assert money(None) == "$0.0000" and money(0.00855) == "$0.0086"
    assert money(1.005) == "$1.01" and money(12.344) == "$12.34"
