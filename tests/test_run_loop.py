"""The agent loop through the real AsyncAnthropic client and the strict fake Messages API:
replies cut off by max_tokens, refusals, condensing and "prompt is too long", the per-task
token limit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.context import ELIDED
from agent.models.anthropic import AnthropicModel
from tests.conftest import git
from tests.fake_anthropic import FakeAnthropic

BIG = "x = 1\n" * 2000  # 12,000 characters, ~3,000 tokens


def model_factory(fake: FakeAnthropic, context_window: int = 200_000) -> Any:
    def make(spec: str) -> AnthropicModel:
        return AnthropicModel(
            "claude-sonnet-4-6",
            api_key="test-key",
            base_url=fake.url,
            thinking_budget=1024,
            max_tokens=8192,
            max_retries=0,
            context_window=context_window,
        )

    return make


def write(path: str, content: str, thinking: str = "Write it.") -> dict[str, Any]:
    return {
        "thinking": thinking,
        "tool_calls": [{"name": "write_file", "input": {"path": path, "content": content}}],
    }


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        b
        for m in body["messages"]
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]


async def test_a_reply_cut_off_mid_tool_call_is_resent_not_run(
    engine_factory: Any, repo: Path
) -> None:
    turns = [
        {**write("big.py", BIG), "cut_off": True},
        write("big.py", "x = 1\n"),
        {"text": "Wrote big.py."},
    ]
    with FakeAnthropic(turns) as fake:
        engine = await engine_factory(model_factory(fake))
        task = await engine.wait(await engine.submit("write big.py", repo, approve="auto"))
    assert task["state"] == "succeeded", task
    # The truncated call was not run: its answer says why, and the model tried again.
    first = tool_results(fake.requests[1])[0]
    assert first["is_error"] is True
    assert "cut off" in first["content"] and "max_tokens" in first["content"]
    assert "content must be a string" not in first["content"]
    steps = [e for e in await engine.events(task["id"]) if e["type"] == "step"]
    assert len(steps) == 1 and steps[0]["action"] == "write_file"
    assert git(repo, "show", f"livhana/{task['id']}:big.py") == "x = 1\n"


async def test_a_refusal_fails_the_task_with_a_clear_reason(
    engine_factory: Any, repo: Path
) -> None:
    turns = [{"text": "I can't help with that.", "stop_reason": "refusal"}]
    with FakeAnthropic(turns) as fake:
        engine = await engine_factory(model_factory(fake))
        task = await engine.wait(await engine.submit("do something", repo, approve="auto"))
    assert task["state"] == "failed"
    assert "refused" in task["error"] and "can't help" in task["error"]
    events = await engine.events(task["id"])
    assert events[-1]["type"] == "complete" and events[-1]["success"] is False


async def test_condensing_elides_old_writes_and_thinking_within_a_small_window(
    engine_factory: Any, repo: Path
) -> None:
    turns = [write(f"m{i}.py", BIG, thinking=f"Module {i} next.") for i in range(8)]
    turns.append({"text": "Wrote eight modules."})
    with FakeAnthropic(turns) as fake:
        engine = await engine_factory(model_factory(fake, context_window=20_000))
        task = await engine.wait(await engine.submit("write modules", repo, approve="auto"))
    assert task["state"] == "succeeded", task
    last = fake.requests[len(turns) - 1]["messages"]
    writes = [
        b["input"]["content"]
        for m in last
        if m["role"] == "assistant"
        for b in m["content"]
        if b["type"] == "tool_use"
    ]
    assert writes[0] == f"({len(BIG)} chars written; elided)"
    assert writes[-1] == BIG  # recent turns stay whole
    thinking = [m["content"][0]["type"] == "thinking" for m in last if m["role"] == "assistant"]
    assert thinking[0] is False and thinking[-1] is True
    assert tool_results({"messages": last})[0]["content"] == ELIDED
    assert len(json.dumps(last)) // 4 < 20_000  # it stayed inside the window


async def test_prompt_too_long_condenses_harder_and_retries(
    engine_factory: Any, repo: Path
) -> None:
    turns = [write(f"m{i}.py", BIG) for i in range(4)] + [{"text": "Done writing."}]
    # The model believes in a large window, the server allows far less: only the API's
    # 400 "prompt is too long" can tell the loop to condense.
    with FakeAnthropic(turns, context_window=12_000) as fake:
        engine = await engine_factory(model_factory(fake, context_window=1_000_000))
        task = await engine.wait(await engine.submit("write modules", repo, approve="auto"))
    assert task["state"] == "succeeded", task
    assert "400" in fake.outcomes
    refused = fake.outcomes.index("400")
    assert fake.outcomes[refused + 1] == "ok"  # the condensed retry was accepted
    retry = fake.requests[refused + 1]
    assert any(
        b.get("type") == "tool_use" and b["input"].get("content", "").endswith("elided)")
        for m in retry["messages"]
        if m["role"] == "assistant"
        for b in m["content"]
    )
    warnings = [e["message"] for e in await engine.events(task["id"]) if e["type"] == "warning"]
    assert any("too long" in w for w in warnings)


async def test_prompt_too_long_even_condensed_fails_the_task(
    engine_factory: Any, repo: Path
) -> None:
    with FakeAnthropic([write("a.py", BIG)], context_window=50) as fake:
        engine = await engine_factory(model_factory(fake))
        task = await engine.wait(await engine.submit("write", repo, approve="auto"))
    assert task["state"] == "failed" and "too long" in task["error"]
    assert task["options"]["error_kind"] == "ContextTooLong"


async def test_the_per_task_token_limit_stops_the_task(
    engine_factory: Any, config: Any, repo: Path
) -> None:
    config.engine.max_tokens = 3_000
    turns = [write(f"m{i}.py", BIG) for i in range(5)]
    with FakeAnthropic(turns) as fake:
        engine = await engine_factory(model_factory(fake))
        task = await engine.wait(await engine.submit("write", repo, approve="auto"))
    assert task["state"] == "failed" and "token limit reached" in task["error"]
    assert task["tokens"] > 3_000
    assert len(fake.requests) < len(turns)  # stopped, not run to the end
