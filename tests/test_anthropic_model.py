"""AnthropicModel through the real AsyncAnthropic client against tests/fake_anthropic.py,
plus tests of the fake's own validation so it cannot hide a bug."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from agent import secrets
from agent.config import DEFAULT_MODEL
from agent.errors import MissingKeyError, ModelError
from agent.models.anthropic import AnthropicModel
from agent.models.pricing import PRICES, Price, cost_usd, family_of, price_for
from tests.fake_anthropic import FakeAnthropic, Invalid

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = "You are a careful coding agent."
TOOLS = [
    {
        "name": "read_file",
        "description": "Read a file",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
    {
        "name": "write_file",
        "description": "Write a file",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
]
READ_TURN = {
    "thinking": "The bug is probably in app.py; read it first.",
    "text": "Let me look at app.py.",
    "tool_calls": [{"name": "read_file", "input": {"path": "src/app.py", "note": 'a "quoted" ü'}}],
}
FINAL_TURN = {"thinking": "The file looks fine now.", "text": "All done."}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def make(fake: FakeAnthropic, **kwargs: Any) -> AnthropicModel:
    opts: dict[str, Any] = {
        "api_key": "test-key",
        "base_url": fake.url,
        "thinking_budget": 2048,
        "max_tokens": 4096,
        "retry_base_s": 0.001,
    }
    return AnthropicModel("claude-sonnet-4-5", **{**opts, **kwargs})


def breakpoints(body: dict[str, Any]) -> int:
    blocks = [*body.get("tools", []), *(body.get("system") or [])]
    for msg in body["messages"]:
        if isinstance(msg["content"], list):
            blocks += msg["content"]
    return sum("cache_control" in b for b in blocks)


async def test_tool_turn_streams_and_round_trips_through_validation() -> None:
    with FakeAnthropic([READ_TURN, FINAL_TURN]) as fake:
        model = make(fake)
        deltas: list[tuple[str, str]] = []

        async def on_delta(kind: str, text: str) -> None:
            deltas.append((kind, text))

        first = await model.complete(
            system=SYSTEM, messages=[user("fix the bug")], tools=TOOLS, on_delta=on_delta
        )
        thinking = [t for k, t in deltas if k == "thinking"]
        assert len(thinking) > 1 and "".join(thinking) == READ_TURN["thinking"]
        assert "".join(t for k, t in deltas if k == "text") == READ_TURN["text"]

        assert first.stop_reason == "tool_use"
        assert [b["type"] for b in first.content] == ["thinking", "text", "tool_use"]
        assert first.content[0] == {
            "type": "thinking",
            "thinking": READ_TURN["thinking"],
            "signature": fake.sign(READ_TURN["thinking"]),
        }
        assert first.content[1] == {"type": "text", "text": READ_TURN["text"]}  # no citations
        call = first.tool_uses[0]
        assert set(call) == {"type", "id", "name", "input"}
        assert call["input"] == READ_TURN["tool_calls"][0]["input"]  # reassembled from chunks

        history = [
            user("fix the bug"),
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "x = 1"}],
            },
        ]
        snapshot = copy.deepcopy(history)
        seen: list[str] = []
        second = await model.complete(
            system=SYSTEM, messages=history, tools=TOOLS, on_delta=lambda k, t: seen.append(k)
        )
        await model.aclose()

    # The fake accepted the second request: thinking went back signed and unchanged.
    assert fake.outcomes == ["ok", "ok"]
    assert fake.requests[1]["messages"][1]["content"] == first.content
    assert second.text == "All done." and second.stop_reason == "end_turn"
    assert "thinking" in seen and "text" in seen  # sync callbacks work too
    assert history == snapshot  # the caller's stored conversation was not touched


async def test_prompt_caching_breakpoints_and_cached_usage() -> None:
    with FakeAnthropic([READ_TURN, FINAL_TURN]) as fake:
        model = make(fake)
        first = await model.complete(system=SYSTEM, messages=[user("fix it")], tools=TOOLS)
        history = [
            user("fix it"),
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": first.tool_uses[0]["id"],
                        "content": "ok",
                    }
                ],
            },
        ]
        second = await model.complete(system=SYSTEM, messages=history, tools=TOOLS)

    for body in fake.requests:
        assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
        assert "cache_control" not in body["tools"][0]
        assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
        assert breakpoints(body) <= 4
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
        assert body["max_tokens"] > 2048
    assert first.usage.cache_creation_input_tokens > 0 and first.usage.cache_read_input_tokens == 0
    # The second call re-reads everything the first one wrote (tools + system + first turn).
    assert second.usage.cache_read_input_tokens >= first.usage.cache_creation_input_tokens
    for r in (first, second):
        assert r.usage.cost_usd == pytest.approx(cost_usd("claude-sonnet-4-5", r.usage.as_dict()))
        assert r.usage.cost_usd > 0


async def test_long_conversation_keeps_at_most_four_breakpoints() -> None:
    with FakeAnthropic([FINAL_TURN]) as fake:
        messages = [user("start")]
        for n in range(4):
            thought = f"step {n}"
            messages.append(
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": thought, "signature": fake.sign(thought)},
                        {
                            "type": "tool_use",
                            "id": f"toolu_{n}",
                            "name": "read_file",
                            "input": {"path": f"f{n}"},
                        },
                    ],
                }
            )
            # Stale caller-set markers must not push the request over the API's limit.
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": f"toolu_{n}",
                            "content": "data",
                            "cache_control": {"type": "ephemeral"},
                        },
                    ],
                }
            )
        before = copy.deepcopy(messages)
        reply = await make(fake).complete(system=SYSTEM, messages=messages, tools=TOOLS)
    assert fake.outcomes == ["ok"] and reply.text == "All done."
    body = fake.requests[0]
    assert breakpoints(body) == 4
    marked = [i for i, m in enumerate(body["messages"]) if "cache_control" in m["content"][-1]]
    assert marked == [len(messages) - 3, len(messages) - 1]  # the last two user turns
    assert messages == before


async def test_usage_and_cost_include_cache_fields() -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 10000,
    }
    with FakeAnthropic([{"text": "hi", "usage": usage}]) as fake:
        reply = await make(fake).complete(system=SYSTEM, messages=[user("hi")], tools=TOOLS)
    assert reply.usage.input_tokens == 1000 and reply.usage.output_tokens == 500
    assert reply.usage.cache_creation_input_tokens == 2000
    assert reply.usage.cache_read_input_tokens == 10000
    # $3 in, $15 out, $3.75 cache write, $0.30 cache read per million tokens.
    assert reply.usage.cost_usd == pytest.approx((3000 + 7500 + 7500 + 3000) / 1e6)


async def test_overloaded_twice_then_success() -> None:
    with FakeAnthropic([READ_TURN], fail_status=[529, 529]) as fake:
        reply = await make(fake).complete(system=SYSTEM, messages=[user("go")], tools=TOOLS)
    assert fake.outcomes == ["529", "529", "ok"]
    assert reply.tool_uses[0]["name"] == "read_file"
    # Our loop did the retrying, not the SDK's hidden one.
    assert {h["x-stainless-retry-count"] for h in fake.headers} == {"0"}


async def test_midstream_overloaded_error_then_success() -> None:
    deltas: list[str] = []
    with FakeAnthropic([READ_TURN], midstream_errors=1) as fake:
        reply = await make(fake).complete(
            system=SYSTEM,
            messages=[user("go")],
            tools=TOOLS,
            on_delta=lambda k, t: deltas.append(t),
        )
    assert fake.outcomes == ["midstream_error", "ok"]
    assert deltas  # the failed attempt had already streamed something
    assert reply.content[0]["thinking"] == READ_TURN["thinking"]
    assert reply.tool_uses[0]["input"] == READ_TURN["tool_calls"][0]["input"]


async def test_stream_cut_without_error_event_is_retried() -> None:
    with FakeAnthropic([FINAL_TURN], midstream_drops=1) as fake:
        reply = await make(fake).complete(system=SYSTEM, messages=[user("go")], tools=TOOLS)
    assert fake.outcomes == ["midstream_drop", "ok"] and reply.text == "All done."


async def test_cancel_mid_stream_does_not_hang() -> None:
    import asyncio

    with FakeAnthropic([{**FINAL_TURN, "delay_s": 5}]) as fake:
        model = make(fake)
        task = asyncio.create_task(
            model.complete(system=SYSTEM, messages=[user("go")], tools=TOOLS)
        )
        while not fake.requests:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)
        await model.aclose()


async def test_redacted_thinking_round_trips() -> None:
    with FakeAnthropic([{**READ_TURN, "redacted_thinking": True}, FINAL_TURN]) as fake:
        model = make(fake)
        first = await model.complete(system=SYSTEM, messages=[user("go")], tools=TOOLS)
        assert [b["type"] for b in first.content][:2] == ["redacted_thinking", "thinking"]
        assert set(first.content[0]) == {"type", "data"}
        history = [
            user("go"),
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": first.tool_uses[0]["id"],
                        "content": [
                            {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
                        ],
                    }
                ],
            },
        ]
        await model.complete(system=SYSTEM, messages=history, tools=TOOLS)
    assert fake.outcomes == ["ok", "ok"]
    result = fake.requests[1]["messages"][2]["content"][0]
    assert "cache_control" not in result["content"][0]  # a nested stale marker was dropped


async def test_server_errors_500_are_retried_too() -> None:
    with FakeAnthropic([FINAL_TURN], fail_status=[500]) as fake:
        reply = await make(fake).complete(system=SYSTEM, messages=[user("go")], tools=TOOLS)
    assert fake.outcomes == ["500", "ok"] and reply.text == "All done."


async def test_always_failing_gives_one_line_error_after_configured_attempts() -> None:
    with FakeAnthropic(always_fail=True) as fake:
        model = make(fake, max_retries=2)
        with pytest.raises(ModelError) as info:
            await model.complete(system=SYSTEM, messages=[user("go")], tools=TOOLS)
    message = str(info.value)
    assert "\n" not in message
    assert "after 3 attempts" in message and "overloaded" in message.lower()
    assert len(fake.requests) == 3


async def test_invalid_conversation_is_not_retried() -> None:
    bad = [
        user("go"),
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "toolu_x", "name": "read_file", "input": {}},
            ],
        },
        user("no tool_result here"),
    ]
    with FakeAnthropic() as fake, pytest.raises(ModelError) as info:
        await make(fake).complete(system=SYSTEM, messages=bad, tools=TOOLS)
    assert fake.outcomes == ["400"]
    assert "\n" not in str(info.value) and "tool_result" in str(info.value)


async def test_rejected_key_is_a_clear_error() -> None:
    with FakeAnthropic(api_key="the-right-key") as fake, pytest.raises(ModelError) as info:
        await make(fake, api_key="wrong").complete(
            system=SYSTEM, messages=[user("go")], tools=TOOLS
        )
    assert fake.outcomes == ["401"]
    assert "key was rejected" in str(info.value) and "\n" not in str(info.value)


async def test_missing_key_says_how_to_set_it(monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with FakeAnthropic() as fake:
        model = AnthropicModel(base_url=fake.url)
        with pytest.raises(MissingKeyError) as info:
            await model.complete(system=SYSTEM, messages=[user("go")], tools=TOOLS)
    assert "secrets set" in str(info.value) and "ANTHROPIC_API_KEY" in str(info.value)
    assert fake.requests == []


async def test_missing_key_with_broken_keyring(broken_keyring, monkeypatch) -> None:
    with pytest.raises(MissingKeyError) as info:
        await AnthropicModel(base_url="http://127.0.0.1:9").complete(
            system=SYSTEM, messages=[user("go")], tools=TOOLS
        )
    assert "\n" not in str(info.value)


async def test_key_from_keyring() -> None:
    secrets.set_secret("anthropic_api_key", "sk-keyring")
    with FakeAnthropic([FINAL_TURN], api_key="sk-keyring") as fake:
        reply = await AnthropicModel(base_url=fake.url, retry_base_s=0.001).complete(
            system=SYSTEM, messages=[user("go")], tools=TOOLS
        )
    assert reply.text == "All done."


async def test_sdk_environment_variables_are_honoured(monkeypatch, caplog) -> None:
    with FakeAnthropic([FINAL_TURN], api_key="sk-env") as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-env")
        model = AnthropicModel()
        reply = await model.complete(system=SYSTEM, messages=[user("go")], tools=TOOLS)
        latency = await model.ping()
        await model.aclose()
    assert reply.text == "All done." and fake.requests[0]["model"] == DEFAULT_MODEL
    assert 0 <= latency < 5
    # The default is a current model: the SDK has nothing to warn about it.
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()]


def test_default_model_is_one_the_sdk_lists_and_does_not_retire() -> None:
    from typing import get_args

    from anthropic._data import DEPRECATED_MODELS
    from anthropic.types.model import Model

    listed = {m for part in get_args(Model) for m in get_args(part)}
    assert DEFAULT_MODEL in listed and DEFAULT_MODEL.startswith("claude-sonnet-")
    assert DEFAULT_MODEL not in DEPRECATED_MODELS


def test_every_opus_sonnet_haiku_the_sdk_lists_has_a_price() -> None:
    from typing import get_args

    from anthropic.types.model import Model

    listed = {m for part in get_args(Model) for m in get_args(part)}
    families = [m for m in listed if any(f in m for f in ("opus", "sonnet", "haiku"))]
    assert families and all(family_of(m) for m in families), [
        m for m in families if not family_of(m)
    ]
    assert price_for("claude-sonnet-4-6") == Price(3.0, 15.0)
    assert price_for("claude-opus-5-5").cache_read == pytest.approx(0.20)


def test_an_unknown_model_is_priced_at_the_dearest_tier_with_one_warning(caplog) -> None:
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    dearest = max(cost_usd(family, usage) for family in PRICES)
    assert cost_usd("claude-nova-9", usage) == pytest.approx(dearest)
    assert cost_usd("claude-nova-9", usage) > cost_usd("claude-sonnet-4-6", usage)
    warned = [r for r in caplog.records if "claude-nova-9" in r.getMessage()]
    assert len(warned) == 1 and "dearest" in warned[0].getMessage()


async def test_learnings_call_without_tools() -> None:
    learned = {"patterns": ["read first"], "improvements": [], "nextSteps": ["add tests"]}
    with FakeAnthropic([READ_TURN], learnings_reply=learned) as fake:
        model = make(fake)
        first = await model.complete(system=SYSTEM, messages=[user("go")], tools=TOOLS)
        history = [
            user("go"),
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": first.tool_uses[0]["id"],
                        "content": "ok",
                    },
                    {"type": "text", "text": "What did you learn? Answer as JSON."},
                ],
            },
        ]
        reply = await model.complete(system=SYSTEM, messages=history, tools=None)
        # A fresh instance (never saw the tools) still sends a valid request.
        fresh = await make(fake).complete(system=SYSTEM, messages=history, tools=None)
        plain = await make(fake).complete(system=SYSTEM, messages=[user("hi")], tools=None)
    assert json.loads(reply.text) == learned and json.loads(fresh.text) == learned
    assert fake.outcomes == ["ok", "learnings", "learnings", "learnings"]
    body = fake.requests[1]
    # History has tool blocks, so tools stay defined (same cached prefix) but unusable.
    assert body["tool_choice"] == {"type": "none"}
    assert [t["name"] for t in body["tools"]] == ["read_file", "write_file"]
    assert reply.usage.cache_read_input_tokens > 0
    assert [t["name"] for t in fake.requests[2]["tools"]] == ["read_file"]
    assert "tools" not in fake.requests[3] and "tool_choice" not in fake.requests[3]
    assert plain.stop_reason == "end_turn"


async def test_thinking_can_be_off_and_budget_is_kept_below_max_tokens() -> None:
    with FakeAnthropic([FINAL_TURN, FINAL_TURN]) as fake:
        off = await make(fake, thinking_budget=0).complete(
            system=SYSTEM, messages=[user("a")], tools=TOOLS
        )
        lifted = await make(fake, thinking_budget=10_000, max_tokens=8_000).complete(
            system=SYSTEM, messages=[user("b")], tools=TOOLS
        )
    assert "thinking" not in fake.requests[0]
    assert [b["type"] for b in off.content] == ["text"]
    assert fake.requests[1]["max_tokens"] > 10_000 and lifted.content[0]["type"] == "thinking"
    assert fake.outcomes == ["ok", "ok"]


def test_importing_models_does_not_import_anthropic() -> None:
    code = (
        "import sys, agent.models, agent.models.anthropic, agent.models.pricing, agent.secrets\n"
        "assert 'anthropic' not in sys.modules, 'anthropic imported'\n"
        "assert 'keyring' not in sys.modules, 'keyring imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_subprocess_uses_the_fake_through_env() -> None:
    code = (
        "import asyncio\n"
        "from agent.models import make_model\n"
        "m = make_model('claude-sonnet-4-5', retry_base_s=0.001)\n"
        "r = asyncio.run(m.complete(system='s', messages=[{'role': 'user', 'content': 'hi'}], tools=None))\n"
        "print(r.text)\n"
    )
    with FakeAnthropic(learnings_reply=None, turns=[FINAL_TURN], fail_status=[529]) as fake:
        env = {**os.environ, **fake.env}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "All done."
    assert fake.outcomes == ["529", "ok"]


# -- the fake's own wire format and validation ---------------------------------------------


def test_fake_streams_real_sse() -> None:
    with FakeAnthropic([READ_TURN]) as fake:
        body = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "stream": True,
            "tools": TOOLS,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "messages": [user("go")],
        }
        request = urllib.request.Request(
            fake.url + "/v1/messages",
            data=json.dumps(body).encode(),
            headers={"x-api-key": "k", "content-type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            assert response.headers["content-type"] == "text/event-stream"
            raw = response.read().decode()
    events = [
        (
            chunk.split("\n")[0].removeprefix("event: "),
            json.loads(chunk.split("\n")[1].removeprefix("data: ")),
        )
        for chunk in raw.strip().split("\n\n")
    ]
    names = [name for name, _ in events]
    assert names[0] == "message_start" and "ping" in names
    assert names[-2:] == ["message_delta", "message_stop"]
    start_usage = events[0][1]["message"]["usage"]
    assert {"cache_creation_input_tokens", "cache_read_input_tokens"} <= set(start_usage)
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    kinds = {d["type"] for d in deltas}
    assert {"thinking_delta", "signature_delta", "text_delta", "input_json_delta"} <= kinds
    pieces = [d["partial_json"] for d in deltas if d["type"] == "input_json_delta"]
    assert len(pieces) > 3 and json.loads("".join(pieces)) == READ_TURN["tool_calls"][0]["input"]
    with pytest.raises(ValueError):
        json.loads(pieces[1])  # really split mid-token
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"]["output_tokens"] > 0


def _valid_body(fake: FakeAnthropic) -> dict[str, Any]:
    thought = "read it"
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": copy.deepcopy(TOOLS),
        "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            user("go"),
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": thought, "signature": fake.sign(thought)},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "read_file",
                        "input": {"path": "a"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"},
                    {"type": "text", "text": "continue"},
                ],
            },
        ],
    }


def _drop_thinking(b: dict[str, Any]) -> None:
    b["messages"][1]["content"].pop(0)


def _tamper_thinking(b: dict[str, Any]) -> None:
    b["messages"][1]["content"][0]["thinking"] += " (edited)"


def _extra_field(b: dict[str, Any]) -> None:
    b["messages"][1]["content"][1]["parsed_output"] = None


def _orphan_result(b: dict[str, Any]) -> None:
    b["messages"][2]["content"][0]["tool_use_id"] = "toolu_other"


def _result_not_first(b: dict[str, Any]) -> None:
    b["messages"][2]["content"].reverse()


def _unanswered(b: dict[str, Any]) -> None:
    b["messages"][2] = user("forgot the result")


def _five_breakpoints(b: dict[str, Any]) -> None:
    for tool in b["tools"]:
        tool["cache_control"] = {"type": "ephemeral"}
    b["messages"][0]["content"][0]["cache_control"] = {"type": "ephemeral"}
    b["messages"][2]["content"][1]["cache_control"] = {"type": "ephemeral"}


def _small_budget(b: dict[str, Any]) -> None:
    b["thinking"]["budget_tokens"] = 1000


def _max_tokens_not_above_budget(b: dict[str, Any]) -> None:
    b["max_tokens"] = 2048


def _bad_tool_name(b: dict[str, Any]) -> None:
    b["tools"][0]["name"] = "read file!"


def _no_tools(b: dict[str, Any]) -> None:
    del b["tools"]


def _same_role_twice(b: dict[str, Any]) -> None:
    b["messages"].insert(1, user("again"))


def _starts_with_assistant(b: dict[str, Any]) -> None:
    b["messages"].insert(0, {"role": "assistant", "content": "hi"})


def _missing_max_tokens(b: dict[str, Any]) -> None:
    del b["max_tokens"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_drop_thinking, "must start with a thinking block"),
        (_tamper_thinking, "Invalid `signature`"),
        (_extra_field, "Extra inputs are not permitted"),
        (_orphan_result, "unexpected `tool_use_id`"),
        (_result_not_first, "at the beginning of this message"),
        (_unanswered, "without `tool_result` blocks immediately after"),
        (_five_breakpoints, "A maximum of 4 blocks with cache_control"),
        (_small_budget, "greater than or equal to 1024"),
        (_max_tokens_not_above_budget, "`max_tokens` must be greater"),
        (_bad_tool_name, "String should match pattern"),
        (_no_tools, "must define tools"),
        (_same_role_twice, "roles must alternate"),
        (_starts_with_assistant, 'first message must use the "user" role'),
        (_missing_max_tokens, "max_tokens: Field required"),
    ],
)
def test_fake_rejects_what_the_real_api_rejects(mutate: Any, expected: str) -> None:
    fake = FakeAnthropic()
    body = _valid_body(fake)
    assert fake.validate(copy.deepcopy(body)) is True  # the unmutated request is fine
    mutate(body)
    with pytest.raises(Invalid) as info:
        fake.validate(body)
    assert expected in str(info.value)


def test_fake_thinking_rule_last_allows_condensed_older_turns() -> None:
    fake = FakeAnthropic(thinking_rule="last")
    body = _valid_body(fake)
    older = copy.deepcopy(body["messages"][1:])
    older[0]["content"].pop(0)  # an older turn condensed without its thinking
    older[0]["content"][0]["id"] = older[1]["content"][0]["tool_use_id"] = "toolu_0"
    body["messages"][1:1] = older
    assert fake.validate(body) is True
    fake.thinking_rule = "every"
    with pytest.raises(Invalid, match="must start with a thinking block"):
        fake.validate(body)


async def test_fake_rejects_turn_without_thinking_over_the_wire() -> None:
    with FakeAnthropic() as fake:
        body = _valid_body(fake)
        _drop_thinking(body)
        with pytest.raises(ModelError) as info:
            await make(fake).complete(system=SYSTEM, messages=body["messages"], tools=TOOLS)
    assert fake.outcomes == ["400"] and "thinking" in str(info.value)
