"""Pause and resume: a paused task holds before its next model or tool call (a running
command finishes first), resumes where it was, and still ends at once when cancelled.
Cross-process, like cancel: another engine on the same store asks, the owner holds."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent import events as ev
from agent.errors import UsageError
from agent.models.scripted import ScriptedModel
from tests.conftest import ROOT, until

pytestmark = pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="needs bubblewrap")

READ = {"tool_calls": [{"name": "read_file", "input": {"path": "app.py"}}]}


class CountingModel(ScriptedModel):
    """The scripted model, counting the calls the task makes."""

    calls = 0

    async def complete(self, **kwargs: Any) -> Any:
        CountingModel.calls += 1
        return await super().complete(**kwargs)


def counting(*turns: dict[str, Any]) -> Any:
    CountingModel.calls = 0
    return lambda spec: CountingModel([{"match": ".", "turns": list(turns)}])


def bash(command: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "execute_bash", "input": {"command": command}}]}


async def types(engine: Any, task_id: str) -> list[str]:
    return [e["type"] for e in await engine.events(task_id)]


async def test_pause_lets_the_running_command_finish_then_holds_until_resumed(
    engine_factory: Any, repo: Path
) -> None:
    engine = await engine_factory(counting(bash("sleep 1; echo slept"), READ, READ))
    task_id = await engine.submit("sleep then read", repo, approve="auto", apply=False)
    await until(lambda: (engine.live(task_id) or None) and engine.live(task_id).process_groups)
    await engine.pause(task_id)

    # The command is not killed: its output arrives, and then nothing more happens.
    await until(lambda: _has_result(engine, task_id), 10)
    calls = CountingModel.calls
    await asyncio.sleep(1.0)
    assert CountingModel.calls == calls, "a paused task called the model"
    events = await engine.events(task_id)
    results = [e for e in events if e["type"] == ev.TOOL_RESULT]
    assert len(results) == 1 and "slept" in results[0]["output"]
    assert [e["step"] for e in events if e["type"] == ev.STEP] == [1]
    assert (await engine.get(task_id))["state"] == ev.RUNNING  # no new state
    assert ev.STATUS not in [e["type"] for e in events[[e["type"] for e in events].index("paused"):]]
    with pytest.raises(UsageError, match="already paused"):
        await engine.pause(task_id)
    assert (await engine.activity([task_id]))[task_id]["paused"]

    await engine.resume(task_id)
    task = await asyncio.wait_for(engine.wait(task_id), 20)
    assert task["state"] == ev.SUCCEEDED and task["steps"] == 3
    assert (await types(engine, task_id)).count("resumed") == 1
    with pytest.raises(UsageError, match="already ended"):
        await engine.resume(task_id)


def _has_result(engine: Any, task_id: str) -> Any:
    async def check() -> bool:
        return ev.TOOL_RESULT in await types(engine, task_id)

    return check()


async def test_cancel_ends_a_paused_task_at_once(engine_factory: Any, repo: Path) -> None:
    engine = await engine_factory(counting({**READ, "delay_s": 0.5}, READ, READ))
    task_id = await engine.submit("read slowly", repo, approve="auto", apply=False)
    await until(lambda: CountingModel.calls == 1)  # the first model call is under way
    await engine.pause(task_id)  # during the model call: it holds before the tool call
    await asyncio.sleep(1.0)
    assert CountingModel.calls == 1
    assert ev.STEP not in await types(engine, task_id)
    assert (await engine.get(task_id))["state"] == ev.RUNNING
    await engine.cancel(task_id, by="tester")
    task = await asyncio.wait_for(engine.wait(task_id), 2)
    assert task["state"] == ev.CANCELLED and "cancelled by tester" in task["error"]
    assert not engine.live(task_id).paused  # nothing held is left behind


async def test_the_emergency_stop_ends_a_paused_task(engine_factory: Any, repo: Path) -> None:
    engine = await engine_factory(counting(READ, READ))
    task_id = await engine.submit("read twice", repo, approve="auto", apply=False)
    await engine.pause(task_id)  # paused while still queued: it holds at its first call
    await until(lambda: engine.state_of(task_id) == ev.PLANNING)
    await asyncio.sleep(0.3)
    assert CountingModel.calls == 0
    await engine.emergency_stop(by="tester")
    task = await asyncio.wait_for(engine.wait(task_id), 2)
    assert task["state"] == ev.CANCELLED


PAUSE_FROM_ANOTHER_PROCESS = """
import asyncio, sys
from agent.config import load_config
from agent.engine import Engine

async def main(kind, task_id):
    engine = await Engine.open(load_config(), role="cli")
    try:
        await getattr(engine, kind)(task_id, by="cli")
        print(kind, "ok", (await engine.activity([task_id]))[task_id]["paused"])
    finally:
        await engine.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def other_process(kind: str, task_id: str) -> str:
    done = subprocess.run([sys.executable, "-c", PAUSE_FROM_ANOTHER_PROCESS, kind, task_id],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def test_pause_and_resume_from_another_process(engine_factory: Any, repo: Path) -> None:
    engine = await engine_factory(counting({**READ, "delay_s": 1.0}, READ, READ))
    task_id = await engine.submit("read slowly", repo, approve="auto", apply=False)
    await until(lambda: CountingModel.calls == 1)  # the first model call is under way
    assert await asyncio.to_thread(other_process, "pause", task_id) == "pause ok True"
    await until(lambda: engine.live(task_id).paused, 2)  # the owner picked the row up
    await asyncio.sleep(1.5)  # the model call (1 s) returns; its tool call is held
    assert CountingModel.calls == 1
    assert ev.STEP not in await types(engine, task_id)
    paused = [e for e in await engine.events(task_id) if e["type"] == "paused"]
    assert paused and paused[0]["by"] == "cli"

    assert await asyncio.to_thread(other_process, "resume", task_id) == "resume ok False"
    task = await asyncio.wait_for(engine.wait(task_id), 20)
    assert task["state"] == ev.SUCCEEDED
