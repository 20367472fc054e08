"""The agent loop through the real AsyncAnthropic client and the strict fake Messages API:
replies cut off by max_tokens, refusals, condensing and "prompt is too long", the per-task
token limit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from agent.bus import DELTA_RATE_S
from agent.context import ELIDED
from agent.models.anthropic import AnthropicModel
from agent.models.scripted import ScriptedModel
from tests.conftest import git
from tests.fake_anthropic import FakeAnthropic

BIG = "x = 1\n" * 2000  # 12,000 characters, ~3,000 tokens
READ_CALL = {"name": "read_file", "input": {"path": "app.py"}}


def model_factory(fake: FakeAnthropic, context_window: int = 200_000, retries: int = 0) -> Any:
    def make(spec: str) -> AnthropicModel:
        return AnthropicModel(
            "claude-sonnet-4-6",
            api_key="test-key",
            base_url=fake.url,
            thinking_budget=1024,
            max_tokens=8192,
            max_retries=retries,
            retry_base_s=0.001,
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


async def _follow(engine: Any, task_id_box: list[str], transient: bool) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async for event in engine.subscribe(transient=transient):
        seen.append(event)
        if event["type"] == "complete":
            return seen
    return seen


async def test_live_deltas_reach_opted_in_subscribers_only_and_are_never_stored(
    engine_factory: Any, repo: Path
) -> None:
    thought = "Reading app.py first, then I will add the helper it needs. " * 3
    turns = [{"thinking": thought, "text": "Looking at app.py.", "tool_calls": [READ_CALL]}]
    with FakeAnthropic(turns) as fake:
        engine = await engine_factory(model_factory(fake))
        live = asyncio.create_task(_follow(engine, [], transient=True))
        plain = asyncio.create_task(_follow(engine, [], transient=False))
        await asyncio.sleep(0)
        task = await engine.wait(await engine.submit("read app", repo, approve="auto"))
        live_seen, plain_seen = await asyncio.wait_for(asyncio.gather(live, plain), 10)
    assert task["state"] == "succeeded"
    assert all("seq" not in e for e in live_seen if e["type"] == "delta")
    assert not [e for e in plain_seen if e["type"] == "delta"]
    assert not [e for e in await engine.events(task["id"]) if e["type"] == "delta"]
    # The first turn: its deltas, then its stored events (unchanged by the deltas).
    stored = next(i for i, e in enumerate(live_seen) if e["type"] == "thinking")
    assert live_seen[stored]["text"] == thought
    deltas = [e for e in live_seen[:stored] if e["type"] == "delta"]
    assert "".join(d["text"] for d in deltas if d["kind"] == "thinking") == thought
    assert "".join(d["text"] for d in deltas if d["kind"] == "text") == "Looking at app.py."
    assert [d["final"] for d in deltas if d["kind"] == "thinking"][-1] is True
    # Coalesced: far fewer notifications than the stream's pieces (1..7 chars each).
    assert len(deltas) < len(thought) // 7


async def test_a_secret_split_across_live_deltas_is_never_shown(
    engine_factory: Any, repo: Path
) -> None:
    key = "sk-ant-api03-" + "A1b2C3d4E5f6G7h8J9k0" * 2
    pieces = ["The deploy key is ", key[:9], key[9:30], key[30:], " so I will not print it."]

    class Slow(ScriptedModel):
        async def complete(self, **kw: Any) -> Any:
            if kw.get("on_delta") and kw.get("tools"):
                for piece in pieces:  # each piece after the last one was notified
                    kw["on_delta"]("thinking", piece)
                    await asyncio.sleep(DELTA_RATE_S + 0.05)
            return await super().complete(**kw)

    turn = {"thinking": "".join(pieces), "tool_calls": [READ_CALL]}
    engine = await engine_factory(lambda spec: Slow([{"match": ".", "turns": [turn]}]))
    live = asyncio.create_task(_follow(engine, [], transient=True))
    await asyncio.sleep(0)
    task = await engine.wait(await engine.submit("read app", repo, approve="auto"))
    seen = await asyncio.wait_for(live, 10)
    assert task["state"] == "succeeded"
    deltas = [e for e in seen if e["type"] == "delta" and e["kind"] == "thinking"]
    assert len(deltas) >= 3  # notified piece by piece, not all at the end
    shown = "".join(d["text"] for d in deltas)
    assert all(p not in d["text"] for d in deltas for p in (key[:9], key[9:30], key[30:]))
    assert "sk-ant" not in shown and "[REDACTED" in shown
    assert shown.endswith(" so I will not print it.")


async def test_a_retried_turn_tells_live_subscribers_to_start_over(
    engine_factory: Any, repo: Path
) -> None:
    thought = "Reading app.py before changing anything in it."
    turns = [{"thinking": thought, "tool_calls": [READ_CALL]}]
    with FakeAnthropic(turns, midstream_errors=1) as fake:
        engine = await engine_factory(model_factory(fake, retries=2))
        live = asyncio.create_task(_follow(engine, [], transient=True))
        await asyncio.sleep(0)
        task = await engine.wait(await engine.submit("read app", repo, approve="auto"))
        seen = await asyncio.wait_for(live, 10)
    assert task["state"] == "succeeded" and fake.outcomes[:2] == ["midstream_error", "ok"]
    kinds = [e["kind"] for e in seen if e["type"] == "delta"]
    restart = kinds.index("restart")
    after = [e for e in seen if e["type"] == "delta"][restart + 1 :]
    first_turn = after[: [e["final"] for e in after].index(True) + 1]
    assert "".join(e["text"] for e in first_turn) == thought
