"""The agent loop: plan, act through tools, verify, learn. Small on purpose.

Everything the loop needs comes through `TaskRun` (agent/run.py), and everything the run
needs from outside through its small `RunHost`: emitting events, asking the policy and
the operator, usage, limits. Control flow leaves the loop only by
returning an Outcome or by raising TaskStopped (cancel, stop, a limit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import prompts
from .context import condense, estimate_tokens
from .errors import ContextTooLong, TaskStopped, ToolError
from .text import first_invalid, marked, marked_value
from .tools.base import ToolResult, truncate

if TYPE_CHECKING:
    from .models.base import ModelResponse
    from .run import TaskRun

MAX_CUT_OFFS = 3  # replies in a row that hit max_tokens before the task gives up


@dataclass
class Outcome:
    summary: str
    verified: bool | None  # None: no test suite found
    learnings: dict[str, list[str]] = field(default_factory=dict)
    # Why the task did not do all it set out to do (a call denied, a deploy that failed,
    # never made good: agent/outcome.py), or "". Not empty: the task is not `succeeded`.
    shortfall: str = ""


async def run_agent(run: TaskRun) -> Outcome:
    messages: list[dict[str, Any]] = [{"role": "user", "content": await run.opening_prompt()}]
    retries = cut_offs = 0
    while True:
        response = await _ask(run, messages)
        if response.stop_reason == "refusal":
            said = " ".join(response.text.split())[:300]
            reason = "the model refused to continue (stop_reason: refusal)"
            raise TaskStopped("failed", f"{reason}: {said}" if said else reason)
        messages.append({"role": "assistant", "content": response.content})
        cut_offs = cut_offs + 1 if response.stop_reason == "max_tokens" else 0
        if cut_offs > MAX_CUT_OFFS:
            raise TaskStopped("failed", f"{cut_offs} replies in a row were cut off by max_tokens")
        calls = response.tool_uses
        if calls:
            if response.stop_reason == "max_tokens":  # the last call's input is incomplete
                results = await _cut_off(run, calls)
            else:
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
        shortfall = await run.check_actions()  # what the engine saw, not what the model says
        learnings = await _learnings(run, messages, response.text)
        return Outcome(response.text.strip() or "Done.", verified, learnings, shortfall)


async def _ask(run: TaskRun, messages: list[dict[str, Any]]) -> ModelResponse:
    """One model call; when the API says the prompt is too long, condense hard and ask once
    more (a second refusal ends the task with the API's reason)."""
    try:
        return await run.call_model(messages)
    except ContextTooLong as exc:
        if not condense(messages, run.model.context_window, hard=True):
            raise
        await run.emit("warning", message=f"{exc}; older turns condensed, asking again")
        return await run.call_model(messages)


async def _cut_off(run: TaskRun, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every tool_use of a reply cut off by max_tokens gets an error result (the API wants
    one per call); none is run, since the last one's input is incomplete."""
    names = ", ".join(call["name"] for call in calls)
    await run.emit("warning", message=f"reply cut off by max_tokens during {names}; not run")
    return [
        {
            "type": "tool_result",
            "tool_use_id": call["id"],
            "content": prompts.CUT_OFF.format(name=call["name"]),
            "is_error": True,
        }
        for call in calls
    ]


async def _call_tool(run: TaskRun, call: dict[str, Any]) -> dict[str, Any]:
    name, args = call["name"], call.get("input") or {}
    tool = run.tools.get(name)
    # A lone surrogate (JSON "\ud800") is not text, and absurd nesting is no input: the
    # call is refused, and its step is recorded marked, so events and audit are still stored.
    invalid = first_invalid(args)
    step = await run.begin_step(marked(name), marked_value(args) if invalid else args)
    if invalid:
        result = ToolResult(f"not run: {invalid}", is_error=True)
    elif tool is None:
        result = ToolResult(f"unknown tool {marked(name)!r}", is_error=True)
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
    result.output = marked(result.output)  # file names on disk need not be UTF-8
    result.data = marked_value(result.data)
    await run.end_step(step, tool, marked_value(args) if invalid else args, result)
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
