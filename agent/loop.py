"""The agent loop: plan, act through tools, verify, learn. Small on purpose.

Everything the loop needs from the engine comes through `TaskRun` (agent/run.py): emitting
events, asking the policy, checkpointing, limits. Control flow leaves the loop only by
returning an Outcome or by raising TaskStopped (cancel, stop, a limit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import prompts
from .context import condense, estimate_tokens
from .errors import TaskStopped, ToolError
from .tools.base import ToolResult, truncate

if TYPE_CHECKING:
    from .run import TaskRun


@dataclass
class Outcome:
    summary: str
    verified: bool | None  # None: no test suite found
    learnings: dict[str, list[str]] = field(default_factory=dict)


async def run_agent(run: TaskRun) -> Outcome:
    messages: list[dict[str, Any]] = [{"role": "user", "content": await run.opening_prompt()}]
    retries = 0
    while True:
        response = await run.call_model(messages)
        messages.append({"role": "assistant", "content": response.content})
        calls = response.tool_uses
        if calls:
            results = [await _call_tool(run, call) for call in calls]
            messages.append({"role": "user", "content": results + run.notes()})
            used = (
                run.context_tokens + estimate_tokens(messages[-2:]) if run.context_tokens else None
            )
            condense(messages, run.model.context_window, used=used)
            continue
        if response.stop_reason == "max_tokens":
            messages.append({"role": "user", "content": "Your reply was cut off; continue."})
            continue
        verified, report = await run.verify()
        if verified is False and retries < run.limits.verify_retries:
            retries += 1
            await run.set_state("running", f"verification failed; retry {retries}")
            messages.append({"role": "user", "content": report})
            continue
        if verified is False:
            raise TaskStopped("failed", f"verification still failing after {retries} retries")
        learnings = await _learnings(run, messages, response.text)
        return Outcome(response.text.strip() or "Done.", verified, learnings)


async def _call_tool(run: TaskRun, call: dict[str, Any]) -> dict[str, Any]:
    name, args = call["name"], call.get("input") or {}
    tool = run.tools.get(name)
    step = await run.begin_step(name, args)
    if tool is None:
        result = ToolResult(f"unknown tool {name!r}", is_error=True)
    else:
        try:
            await run.authorize(tool, args)
            result = await tool.run(args, run.ctx)
        except ToolError as exc:
            result = ToolResult(str(exc), is_error=True)
        except TaskStopped:
            raise
        except (OSError, ValueError, TypeError, KeyError) as exc:
            # A tool bug or a bad argument must not kill the task: the model sees it.
            result = ToolResult(f"{name} failed: {type(exc).__name__}: {exc}", is_error=True)
    await run.end_step(step, tool, args, result)
    return {
        "type": "tool_result",
        "tool_use_id": call["id"],
        "content": truncate(result.output) or "(no output)",
        "is_error": result.is_error,
    }


async def _learnings(
    run: TaskRun, messages: list[dict[str, Any]], summary: str
) -> dict[str, list[str]]:
    """One question without tools. The record is a text digest: a conversation holding
    tool_use blocks cannot be sent without the tools that produced them."""
    digest = [f"Task: {run.title}", f"Final summary: {summary}", "Actions:"]
    for message in messages:
        if message["role"] == "assistant":
            for block in message["content"]:
                if block.get("type") == "tool_use":
                    digest.append(f"- {block['name']} {json.dumps(block.get('input'))[:200]}")
    prompt = prompts.LEARNINGS + "\n\n" + "\n".join(digest)
    try:
        response = await run.call_model([{"role": "user", "content": prompt}], tools=False)
    except TaskStopped:
        raise
    except Exception as exc:  # learnings are a bonus: never fail a finished task over them
        await run.emit("warning", message=f"could not collect learnings: {exc}")
        return {}
    return parse_learnings(response.text)


def parse_learnings(text: str) -> dict[str, list[str]]:
    start, end = text.find("{"), text.rfind("}")
    try:
        data = json.loads(text[start : end + 1]) if start >= 0 else {}
    except ValueError:
        data = {}
    out: dict[str, list[str]] = {}
    for key in ("patterns", "improvements", "nextSteps"):
        items = data.get(key, []) if isinstance(data, dict) else []
        out[key] = [str(i)[:500] for i in items if isinstance(i, str | int | float)][:5]
    return out
