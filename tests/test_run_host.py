"""The agent loop driven by a tiny host: `TaskRun` needs only the `RunHost` Protocol
(agent/run.py), not an engine. A plain folder, the real tools and the scripted model."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent.approvals import Decision
from agent.config import Config, load_config
from agent.loop import run_agent
from agent.models.scripted import ScriptedModel
from agent.run import RunHost, TaskRun, limits_for
from agent.tools import load_tools
from agent.workspace import TaskTree

# The script matches only when the host's lesson reached the opening prompt.
SCRIPT = [
    {
        "match": "lesson: keep notes short",
        "turns": [
            {"tool_calls": [{"name": "update_plan", "input": {"steps": [
                {"title": "write the note", "status": "in_progress"}]}}]},  # fmt: skip
            {"tool_calls": [{"name": "write_file",
                             "input": {"path": "note.txt", "content": "short\n"}}]},  # fmt: skip
            {"tool_calls": [{"name": "execute_bash",
                             "input": {"command": "cat note.txt > copy.txt"}}]},  # fmt: skip
            {"tool_calls": [{"name": "update_plan", "input": {"steps": [
                {"title": "write the note", "status": "done"}]}}]},  # fmt: skip
        ],
        "summary": "Wrote the note.",
    },
    {  # the learnings question (its prompt carries the task, not the lessons)
        "match": "Task: write a note",
        "learnings": {"patterns": ["notes stay short"], "improvements": [], "nextSteps": []},
    },
]


class TinyHost:
    """Everything a run asks of its host, kept in lists to look at afterwards."""

    def __init__(self, config: Config, answer: Decision) -> None:
        self.config = config
        self.answer = answer
        self.state = "planning"
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.states: list[str] = []
        self.asked: list[tuple[str, str]] = []
        self.audited: list[str] = []
        self.usage: list[dict[str, Any]] = []

    async def emit(self, task_id: str, type_: str, **payload: Any) -> None:
        self.events.append((type_, payload))

    def stream(self, task_id: str, kind: str, text: str) -> None:
        pass

    def end_stream(self, task_id: str) -> None:
        pass

    def state_of(self, task_id: str) -> str:
        return self.state

    async def transition(self, task_id: str, state: str, reason: str = "") -> None:
        self.state = state
        self.states.append(state)

    async def hold(self, task_id: str) -> bool:
        return False

    def policy(self, tool: str, args: dict[str, Any]) -> tuple[str, str]:
        return ("ask", "commands ask") if tool == "execute_bash" else ("allow", "reads and writes")

    async def ask(
        self, task_id: str, approve_mode: str, kind: str, summary: str, detail: dict[str, Any]
    ) -> Decision:
        self.asked.append((kind, summary))
        return self.answer

    async def audit(
        self, actor: str, action: str, task_id: str | None, detail: dict[str, Any]
    ) -> None:
        self.audited.append(action)

    async def record_usage(
        self, task_id: str, model: str, usage: dict[str, Any], counters: dict[str, Any]
    ) -> None:
        self.usage.append(counters)

    async def learnings_for(self, task_id: str, title: str) -> dict[str, Any]:
        return {"holdout": False, "given": [{"id": 1, "text": "lesson: keep notes short"}]}

    def worktree_lock(self, repo: str) -> asyncio.Lock:
        return asyncio.Lock()


def _run(tmp_path: Path, answer: Decision) -> tuple[TinyHost, TaskRun]:
    folder = tmp_path / "work"
    folder.mkdir()
    config = load_config(tmp_path / "data")
    host = TinyHost(config, answer)
    host_as_protocol: RunHost = host  # the type checker holds TinyHost to the Protocol
    task = {"id": "t1", "title": "write a note", "approve_mode": "ask", "workspace": str(folder)}
    tree = TaskTree(folder, None, None, False)
    run = TaskRun(host_as_protocol, task, ScriptedModel(SCRIPT), load_tools(), tree,
                  limits_for(config, {}))  # fmt: skip
    return host, run


async def test_a_tiny_host_drives_the_loop_from_prompt_to_outcome(tmp_path: Path) -> None:
    host, run = _run(tmp_path, Decision(True, "tester"))
    outcome = await run_agent(run)

    assert outcome.summary == "Wrote the note." and outcome.shortfall == ""
    assert outcome.learnings["patterns"] == ["notes stay short"]
    work = tmp_path / "work"
    assert (work / "note.txt").read_text() == "short\n"
    assert (work / "copy.txt").read_text() == "short\n"  # the approved command ran
    # Only the command asked, and the host's answer was what let it run.
    assert [kind for kind, _ in host.asked] == ["command"]
    types = [t for t, _ in host.events]
    assert types[0] == "analysis" and types.count("step") == 4
    assert [p["completed"] for t, p in host.events if t == "progress"] == [0, 1]
    assert host.states[:2] == ["running", "verifying"]
    assert [c["steps"] for c in host.usage] == [0, 1, 2, 3, 4, 4]  # every model call
    assert host.audited.count("tool_call") == 4
    # The per-run state tools share is typed: the plan's progress, who decided, the step.
    assert run.ctx.state.step == 4 and run.ctx.state.progress_at_step == 4
    assert run.ctx.state.decided_by == "tester" and run.ctx.state.grant is None  # taken


async def test_a_no_from_the_host_is_a_shortfall_and_the_command_never_runs(
    tmp_path: Path,
) -> None:
    host, run = _run(tmp_path, Decision(False, "nobody (stdin closed)"))
    outcome = await run_agent(run)

    assert not (tmp_path / "work" / "copy.txt").exists()
    results = [p for t, p in host.events if t == "tool_result" and p["action"] == "execute_bash"]
    assert results[0]["is_error"]
    assert "denied by nobody (stdin closed): not run" in results[0]["output"]
    assert "nobody (stdin closed)" in outcome.shortfall  # the outcome says it was not done
