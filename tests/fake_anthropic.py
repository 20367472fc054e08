"""A fake Anthropic Messages API on 127.0.0.1 that streams real SSE and validates strictly.

It runs in a background thread, so the real `AsyncAnthropic` client in this process and
`livhana-cockpit` subprocesses (ANTHROPIC_BASE_URL=fake.url, ANTHROPIC_API_KEY=anything)
can both talk to it.

    with FakeAnthropic([{"thinking": "...", "tool_calls": [{"name": "read_file",
                          "input": {"path": "a.py"}}]},
                        {"text": "done"}]) as fake:
        ...  # fake.url, fake.requests, fake.headers, fake.outcomes

A turn is {"thinking", "text", "tool_calls": [{"name", "input", "id"?}], "stop_reason"?,
"usage"?: {...overrides}, "redacted_thinking"?: bool, "delay_s"?: float, "cut_off"?: bool}.
`cut_off` ends the turn like a reply that hit `max_tokens` in the middle of its last tool
call: the input JSON stops halfway through its last string value (the SDK's partial parse
then drops that key), `stop_reason` is "max_tokens" and output_tokens is max_tokens.
`"stop_reason": "refusal"` answers like a refusal. `turns` may also
be a callable `turns(request_body) -> turn`. The Nth successful tool-bearing request gets
turns[N]; past the end the reply is a plain "Done." end_turn. A request without tools (or
with tool_choice none) is the learnings question and gets `learnings_reply` as text.

Failures, in this order: `always_fail` answers every request 529; `fail_status=[529, 500]`
answers the next requests with those statuses; `midstream_errors=N` streams a few deltas
then an `error` event (overloaded_error) N times; `midstream_drops=N` just closes the stream
early N times. A request that fails validation gets its 400 before any of these; with
`context_window=N`, a prompt over N (estimated) tokens gets the API's 400 "prompt is too
long: X tokens > N maximum" right after validation.

Validation mirrors the real API (400 invalid_request_error, with its wording) so the fake
cannot hide a bug: required fields, thinking budget >= 1024 and < max_tokens, roles
alternating from "user", every tool_use answered first thing in the next user turn and no
orphan tool_result, tool blocks only with tools defined, thinking blocks sent back
unchanged (their signature is an HMAC of the text) and, with thinking on, the last
tool-using assistant turn (the current tool-use cycle) starting with one and carrying every
thinking block it was served with, in order; older turns may drop theirs, as the real API
allows (`thinking_rule="every"` demands it of every tool-using turn); no extra fields on
blocks; at most 4 cache_control breakpoints; tool names `^[a-zA-Z0-9_-]{1,64}$`.

Prompt caching is simulated: each breakpoint stores a hash of the prefix up to it, and a
later request reads the longest stored prefix found within 20 blocks before one of its
breakpoints (no minimum length, unlike the real API, so small tests see cache hits).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Turn = dict[str, Any]
Event = tuple[str, dict[str, Any]]

DEFAULT_LEARNINGS: dict[str, list[Any]] = {"patterns": [], "improvements": [], "nextSteps": []}
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}
BLOCK_KEYS = {
    "text": {"type", "text", "cache_control", "citations"},
    "image": {"type", "source", "cache_control"},
    "document": {"type", "source", "cache_control", "title", "context", "citations"},
    "thinking": {"type", "thinking", "signature"},
    "redacted_thinking": {"type", "data"},
    "tool_use": {"type", "id", "name", "input", "cache_control", "caller"},
    "tool_result": {"type", "tool_use_id", "content", "is_error", "cache_control"},
}
ROLE_BLOCKS = {
    "user": {"text", "image", "document", "tool_result"},
    "assistant": {"text", "thinking", "redacted_thinking", "tool_use"},
}
THINKING_FIRST = (
    "Expected `thinking` or `redacted_thinking`, but found `{found}`. When `thinking` is "
    "enabled, a final `assistant` message must start with a thinking block (preceeding the "
    "lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking "
    "blocks from previous turns."
)


class Invalid(Exception):
    """A request the real API would answer with 400 invalid_request_error."""


class FakeAnthropic:
    def __init__(
        self,
        turns: list[Turn] | Callable[[dict[str, Any]], Turn] | None = None,
        *,
        fail_status: list[int] | None = None,
        midstream_errors: int = 0,
        midstream_drops: int = 0,
        always_fail: bool = False,
        learnings_reply: dict[str, Any] | str | None = DEFAULT_LEARNINGS,
        api_key: str | None = None,
        thinking_rule: str = "last",
        context_window: int | None = None,
    ) -> None:
        self.turns = turns if turns is not None else []
        self.fail_status = list(fail_status or [])
        self.midstream_errors = midstream_errors
        self.midstream_drops = midstream_drops  # streams cut without an error event
        self.always_fail = always_fail
        self.learnings_reply = learnings_reply
        self.api_key = api_key  # when set, any other key gets 401
        # "last": only the current tool-use turn must keep its thinking (the real API);
        # "every": each tool-using assistant turn must (stricter than the API)
        self.thinking_rule = thinking_rule
        self.context_window = context_window  # prompt tokens above this get a 400
        # tool_use id -> the thinking blocks served in the same turn (echo check)
        self._served_thinking: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []  # every JSON body received, in order
        self.headers: list[dict[str, str]] = []  # lower-cased headers, same order
        # "ok", "learnings", "midstream_error", "midstream_drop", or the HTTP status
        self.outcomes: list[str] = []
        self.served_turns = 0
        self._secret = os.urandom(16)
        self._cache: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> FakeAnthropic:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should talk to this server."""
        return {"ANTHROPIC_BASE_URL": self.url, "ANTHROPIC_API_KEY": self.api_key or "test-key"}

    # -- signatures --------------------------------------------------------------------
    def sign(self, thinking: str) -> str:
        digest = hmac.new(self._secret, b"thinking:" + thinking.encode(), hashlib.sha256)
        return base64.b64encode(digest.digest()).decode()

    def _redacted(self) -> str:
        nonce = os.urandom(12)
        mac = hmac.new(self._secret, b"redacted:" + nonce, hashlib.sha256).digest()
        return base64.b64encode(nonce + mac).decode()

    def _redacted_ok(self, data: Any) -> bool:
        try:
            raw = base64.b64decode(str(data), validate=True)
        except ValueError:
            return False
        mac = hmac.new(self._secret, b"redacted:" + raw[:12], hashlib.sha256).digest()
        return hmac.compare_digest(mac, raw[12:])

    # -- one request -------------------------------------------------------------------
    def handle(self, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        """Decide the answer: (status, error dict) or (200, (kind, mode, payload, delay_s))."""
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            status, answer = self._decide(body, headers)
            self.outcomes.append(answer[0] if status == 200 else str(status))
            return status, answer

    def _decide(self, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        auth = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        if not auth or (self.api_key is not None and auth != self.api_key):
            return 401, _error(401, "invalid x-api-key")
        try:
            thinking_on = self.validate(body)
            if self.context_window is not None:
                size = _prompt_tokens(body)
                if size > self.context_window:
                    raise Invalid(
                        f"prompt is too long: {size} tokens > {self.context_window} maximum"
                    )
        except Invalid as exc:
            return 400, _error(400, str(exc))
        if self.always_fail or self.fail_status:
            status = 529 if self.always_fail else self.fail_status.pop(0)
            return status, _error(status, "Overloaded" if status == 529 else "Internal error")
        usage = self._cache_usage(body)
        learnings = self.learnings_reply is not None and (
            not body.get("tools") or (body.get("tool_choice") or {}).get("type") == "none"
        )
        if learnings:
            reply = self.learnings_reply
            turn: Turn = {"text": reply if isinstance(reply, str) else json.dumps(reply)}
        elif callable(self.turns):
            turn = self.turns(body)
        elif self.served_turns < len(self.turns):
            turn = self.turns[self.served_turns]
        else:
            turn = {"text": "Done."}
        midstream = ""
        if self.midstream_errors > 0:
            self.midstream_errors, midstream = self.midstream_errors - 1, "midstream_error"
        elif self.midstream_drops > 0:
            self.midstream_drops, midstream = self.midstream_drops - 1, "midstream_drop"
        elif not learnings:
            self.served_turns += 1
        message = self._message(body, turn, usage, thinking_on)
        kind = midstream or ("learnings" if learnings else "ok")
        if not body.get("stream"):
            if midstream:  # a non-streamed call cannot fail mid-way; it gets the 529 instead
                return 529, _error(529, "Overloaded")
            message.pop("_cut_json", None)
            return 200, (kind, "json", message, 0.0)
        return 200, (kind, "stream", _events(message, midstream), float(turn.get("delay_s", 0)))

    def _message(
        self, body: dict[str, Any], turn: Turn, usage: dict[str, int], thinking_on: bool
    ) -> dict[str, Any]:
        blocks: list[dict[str, Any]] = []
        if thinking_on:
            if turn.get("redacted_thinking"):
                blocks.append({"type": "redacted_thinking", "data": self._redacted()})
            thought = turn.get("thinking") or "Considering the request."
            blocks.append(
                {"type": "thinking", "thinking": thought, "signature": self.sign(thought)}
            )
        if turn.get("text"):
            blocks.append({"type": "text", "text": turn["text"]})
        calls = turn.get("tool_calls") or []
        cut_json = None
        for n, call in enumerate(calls):
            tool_id = call.get("id") or f"toolu_fake{next(self._ids):06d}"
            tool_input = call.get("input", {})
            if turn.get("cut_off") and n == len(calls) - 1:
                tool_input, cut_json = _cut_input(tool_input)
            blocks.append(
                {"type": "tool_use", "id": tool_id, "name": call["name"], "input": tool_input}
            )
            self._served_thinking[tool_id] = [
                b for b in blocks if b["type"] in ("thinking", "redacted_thinking")
            ]
        if not any(b["type"] in ("text", "tool_use") for b in blocks):
            blocks.append({"type": "text", "text": "Done."})
        produced = sum(len(json.dumps(b)) for b in blocks) // 4 + 1
        if turn.get("cut_off"):
            produced = body["max_tokens"]
        usage = {**usage, "output_tokens": produced, **(turn.get("usage") or {})}
        stop = turn.get("stop_reason") or ("tool_use" if calls else "end_turn")
        message = {
            "id": f"msg_fake{next(self._ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": blocks,
            "stop_reason": "max_tokens" if turn.get("cut_off") else stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if cut_json is not None:
            message["_cut_json"] = cut_json  # what the stream sends for the cut call
        return message

    # -- prompt caching ----------------------------------------------------------------
    def _cache_usage(self, body: dict[str, Any]) -> dict[str, int]:
        items: list[tuple[Any, bool]] = [(t, "cache_control" in t) for t in body.get("tools") or []]
        system = body.get("system")
        if isinstance(system, str) and system:
            items.append((system, False))
        elif isinstance(system, list):
            items += [(b, "cache_control" in b) for b in system]
        for msg in body["messages"]:
            content = msg["content"]
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            items += [((msg["role"], b), "cache_control" in b) for b in blocks]
        chain, cum, tokens = hashlib.sha256(body["model"].encode()), [], 0
        hashes: list[str] = []
        for item, _ in items:
            chain.update(json.dumps(_strip_cache(item), sort_keys=True).encode())
            hashes.append(chain.copy().hexdigest())
            tokens += max(1, len(json.dumps(item)) // 4)
            cum.append(tokens)
        marks = [i for i, (_, marked) in enumerate(items) if marked]
        hit = max(
            (j for bp in marks for j in range(max(0, bp - 20), bp + 1) if hashes[j] in self._cache),
            default=-1,
        )
        read = cum[hit] if hit >= 0 else 0
        last = max(marks, default=-1)
        created = cum[last] - read if last > hit else 0
        self._cache.update(hashes[i] for i in marks)
        return {
            "input_tokens": tokens - read - created,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
            "output_tokens": 1,
        }

    # -- validation --------------------------------------------------------------------
    def validate(self, body: Any) -> bool:
        """Raise Invalid like the real API would; return whether thinking is on."""
        if not isinstance(body, dict):
            raise Invalid("body: Input should be an object")
        for key in ("model", "max_tokens", "messages"):
            if key not in body:
                raise Invalid(f"{key}: Field required")
        max_tokens = body["max_tokens"]
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise Invalid("max_tokens: Input should be a positive integer")
        thinking_on = _check_thinking(body)
        tool_names = _check_tools(body, thinking_on)
        breakpoints = sum("cache_control" in t for t in body.get("tools") or [])
        system = body.get("system")
        if isinstance(system, list):
            for i, block in enumerate(system):
                _check_block(block, f"system.{i}", {"text"})
                breakpoints += "cache_control" in block
        elif system is not None and not isinstance(system, str):
            raise Invalid("system: Input should be a valid string or list of text blocks")
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            raise Invalid("messages: at least one message is required")
        pending: list[str] = []  # tool_use ids the next user turn must answer
        seen_ids: set[str] = set()
        uses_tools = False
        tool_turns = [
            i
            for i, m in enumerate(messages)
            if isinstance(m, dict)
            and m.get("role") == "assistant"
            and isinstance(m.get("content"), list)
            and any(isinstance(b, dict) and b.get("type") == "tool_use" for b in m["content"])
        ]
        for i, msg in enumerate(messages):
            where = f"messages.{i}"
            if not isinstance(msg, dict) or set(msg) - {"role", "content"}:
                raise Invalid(f"{where}: Input should be an object with role and content")
            role = msg.get("role")
            if role not in ROLE_BLOCKS:
                raise Invalid(f"{where}.role: Input should be 'user' or 'assistant'")
            if i == 0 and role != "user":
                raise Invalid('messages: first message must use the "user" role')
            if i > 0 and role == messages[i - 1].get("role"):
                raise Invalid(
                    f'messages: roles must alternate between "user" and "assistant", but found '
                    f'multiple "{role}" roles in a row'
                )
            content = msg.get("content")
            if isinstance(content, str):
                if not content and not (role == "assistant" and i == len(messages) - 1):
                    raise Invalid(f"{where}: text content blocks must be non-empty")
                blocks: list[dict[str, Any]] = []
            elif isinstance(content, list) and content:
                blocks = content
            else:
                raise Invalid(f"{where}.content: Input should be a string or non-empty list")
            for j, block in enumerate(blocks):
                _check_block(block, f"{where}.content.{j}", ROLE_BLOCKS[role])
                breakpoints += "cache_control" in block
                if block["type"] == "tool_result" and isinstance(block.get("content"), list):
                    for k, inner in enumerate(block["content"]):
                        _check_block(inner, f"{where}.content.{j}.content.{k}", {"text", "image"})
                        breakpoints += "cache_control" in inner
            if role == "user":
                results = [b.get("tool_use_id") for b in blocks if b["type"] == "tool_result"]
                uses_tools |= bool(results)
                for j, tool_use_id in enumerate(results):
                    if tool_use_id not in pending:
                        raise Invalid(
                            f"{where}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                            f"blocks: {tool_use_id}. Each `tool_result` block must have a "
                            "corresponding `tool_use` block in the previous message."
                        )
                if pending:
                    head = [b.get("tool_use_id") for b in blocks[: len(pending)]]
                    if not results:
                        raise _unanswered(i - 1, pending)
                    if any(b["type"] != "tool_result" for b in blocks[: len(pending)]):
                        raise Invalid(
                            f"{where}: Did not find {len(pending)} `tool_result` block(s) at the "
                            "beginning of this message. Messages following `tool_use` blocks "
                            "must begin with a matching number of `tool_result` blocks."
                        )
                    missing = [t for t in pending if t not in head]
                    if missing:
                        raise _unanswered(i - 1, missing)
                pending = []
                continue
            # assistant turn
            for j, block in enumerate(blocks):
                if block["type"] == "thinking" and not hmac.compare_digest(
                    str(block.get("signature", "")), self.sign(str(block.get("thinking", "")))
                ):
                    raise Invalid(f"{where}.content.{j}: Invalid `signature` in `thinking` block")
                if block["type"] == "redacted_thinking" and not self._redacted_ok(
                    block.get("data")
                ):
                    raise Invalid(
                        f"{where}.content.{j}: Invalid `data` in `redacted_thinking` block"
                    )
            ids = [b["id"] for b in blocks if b["type"] == "tool_use"]
            if seen_ids & set(ids) or len(set(ids)) != len(ids):
                raise Invalid(f"{where}: `tool_use` ids must be unique")
            seen_ids |= set(ids)
            uses_tools |= bool(ids)
            must_think = i in tool_turns and (self.thinking_rule == "every" or i == tool_turns[-1])
            if (
                thinking_on
                and must_think
                and blocks[0]["type"] not in ("thinking", "redacted_thinking")
            ):
                raise Invalid(
                    f"{where}.content.0.type: " + THINKING_FIRST.format(found=blocks[0]["type"])
                )
            if thinking_on and ids and i == tool_turns[-1]:
                _check_echo(blocks, self._served_thinking.get(ids[0]), where)
            pending = ids
        if pending:
            raise _unanswered(len(messages) - 1, pending)
        if uses_tools and not tool_names:
            raise Invalid(
                "Requests which include `tool_use` or `tool_result` blocks must define tools."
            )
        if breakpoints > 4:
            raise Invalid(
                f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
            )
        return thinking_on


def _check_echo(
    blocks: list[dict[str, Any]], served: list[dict[str, Any]] | None, where: str
) -> None:
    """The current tool-use turn must come back with all the thinking it was served with
    (the API answers a rebuilt turn, or one missing its redacted_thinking, with a 400)."""
    if served is None:  # a turn this fake did not serve (hand-made in a test)
        return
    sent = [
        {k: v for k, v in b.items() if k != "cache_control"}
        for b in blocks
        if b["type"] in ("thinking", "redacted_thinking")
    ]
    if sent != served:
        raise Invalid(
            f"{where}: the thinking blocks of the latest assistant turn must be passed back "
            "complete and unmodified, in their original order"
        )


def _cut_input(tool_input: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A tool input cut off halfway through its last string value: (what the SDK's partial
    JSON parse makes of it, the partial JSON the stream sent)."""
    keys = list(tool_input)
    last = next((k for k in reversed(keys) if isinstance(tool_input[k], str)), None)
    if last is None:  # nothing to cut inside a string: cut the JSON itself
        full = json.dumps(tool_input)
        return {}, full[: max(1, len(full) // 2)]
    kept = {k: v for k, v in tool_input.items() if k != last}
    head = json.dumps(kept)[:-1]  # without its closing brace
    value = tool_input[last]
    piece = json.dumps(value[: len(value) // 2])[:-1]  # an open string, no escape cut
    sep = ", " if kept else ""
    return kept, f"{head}{sep}{json.dumps(last)}: {piece}"


def _prompt_tokens(body: dict[str, Any]) -> int:
    """The fake's token estimate of a whole prompt (tools, system, messages)."""
    return len(json.dumps([body.get("tools"), body.get("system"), body["messages"]])) // 4


def _unanswered(index: int, ids: list[str]) -> Invalid:
    return Invalid(
        f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately "
        f"after: {', '.join(ids)}. Each `tool_use` block must have a corresponding `tool_result` "
        "block in the next message."
    )


def _check_thinking(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    if thinking is None:
        return False
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int):
            raise Invalid("thinking.enabled.budget_tokens: Field required")
        if budget < 1024:
            raise Invalid(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if body["max_tokens"] <= budget:
            raise Invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
    elif kind not in ("adaptive", "disabled"):
        raise Invalid("thinking: Input tag does not match 'enabled', 'adaptive' or 'disabled'")
    on = kind != "disabled"
    if on and body.get("temperature", 1) != 1:
        raise Invalid("`temperature` may only be set to 1 when thinking is enabled.")
    return on


def _check_tools(body: dict[str, Any], thinking_on: bool) -> set[str]:
    tools = body.get("tools")
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise Invalid("tools: Input should be a valid list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        name = tool.get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str) or not TOOL_NAME_RE.match(name):
            raise Invalid(
                f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )
        if name in names:
            raise Invalid("tools: Tool names must be unique.")
        names.add(name)
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise Invalid(f"tools.{i}.custom.input_schema.type: Input should be 'object'")
        if "cache_control" in tool:
            _check_cache_control(tool["cache_control"], f"tools.{i}")
    choice = body.get("tool_choice")
    if choice is not None:
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in ("auto", "any", "tool", "none"):
            raise Invalid("tool_choice: Input tag does not match 'auto', 'any', 'tool' or 'none'")
        if thinking_on and kind in ("any", "tool"):
            raise Invalid("Thinking may not be enabled when tool_choice forces tool use.")
    return names


def _check_block(block: Any, where: str, allowed: set[str]) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in allowed:
        raise Invalid(f"{where}.type: Input tag {kind!r} is not allowed here")
    extra = sorted(set(block) - BLOCK_KEYS[kind])
    if extra:
        raise Invalid(f"{where}.{kind}.{extra[0]}: Extra inputs are not permitted")
    if "cache_control" in block:
        _check_cache_control(block["cache_control"], where)
    if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
        raise Invalid(f"{where}: text content blocks must be non-empty")
    if kind == "thinking" and not (
        isinstance(block.get("thinking"), str) and isinstance(block.get("signature"), str)
    ):
        raise Invalid(f"{where}.thinking: `thinking` and `signature` are required strings")
    if kind == "tool_use" and not (
        isinstance(block.get("id"), str)
        and isinstance(block.get("name"), str)
        and isinstance(block.get("input"), dict)
    ):
        raise Invalid(f"{where}.tool_use: `id`, `name` and an object `input` are required")
    if kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise Invalid(f"{where}.tool_result.tool_use_id: Field required")
        if not isinstance(block.get("content", ""), str | list):
            raise Invalid(f"{where}.tool_result.content: Input should be a string or list")


def _check_cache_control(value: Any, where: str) -> None:
    if (
        not isinstance(value, dict)
        or value.get("type") != "ephemeral"
        or set(value) - {"type", "ttl"}
        or value.get("ttl", "5m") not in ("5m", "1h")
    ):
        raise Invalid(f"{where}.cache_control: Input should be {{'type': 'ephemeral'}}")


def _strip_cache(item: Any) -> Any:
    if isinstance(item, dict):
        return {k: _strip_cache(v) for k, v in item.items() if k != "cache_control"}
    if isinstance(item, list | tuple):
        return [_strip_cache(v) for v in item]
    return item


def _error(status: int, message: str) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def _chunks(text: str) -> Iterator[str]:
    """Uneven pieces (1..7 chars) so JSON and words get cut mid-token, like the API does."""
    sizes, pos = itertools.cycle((3, 1, 7, 2, 5)), 0
    while pos < len(text):
        size = next(sizes)
        yield text[pos : pos + size]
        pos += size


def _events(message: dict[str, Any], midstream: str) -> list[Event]:
    """The SSE sequence for `message`; cut short after a few deltas when `midstream` is
    "midstream_error" (then an overloaded_error event) or "midstream_drop" (just closed)."""
    message = {**message}
    cut_json = message.pop("_cut_json", None)
    start = {**message, "content": [], "stop_reason": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    events: list[Event] = [("message_start", {"type": "message_start", "message": start})]
    events.append(("ping", {"type": "ping"}))
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        first = {
            "thinking": {"type": "thinking", "thinking": "", "signature": ""},
            "text": {"type": "text", "text": ""},
            "tool_use": {**block, "input": {}},
        }.get(kind, block)
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": first},
            )
        )
        deltas: list[dict[str, Any]] = []
        if kind == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": c} for c in _chunks(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "text":
            deltas = [{"type": "text_delta", "text": c} for c in _chunks(block["text"])]
        elif kind == "tool_use":
            deltas = [{"type": "input_json_delta", "partial_json": ""}]  # the API opens with ""
            cut = cut_json if index == len(message["content"]) - 1 else None
            sent = cut if cut is not None else json.dumps(block["input"])
            deltas += [{"type": "input_json_delta", "partial_json": c} for c in _chunks(sent)]
        events += [
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        ]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    if midstream:
        # A few deltas get out, then the API reports overload inside the 200 stream.
        events = events[:5]
        if midstream == "midstream_error":
            events.append(("error", _error(529, "Overloaded")))
    return events


class _Handler(BaseHTTPRequestHandler):
    owner: FakeAnthropic
    protocol_version = "HTTP/1.0"  # one request per connection; the stream ends at close

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_fake_{id(payload)}")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        auth = self.headers.get("x-api-key") or (self.headers.get("authorization") or ""
                                                 ).removeprefix("Bearer ")  # fmt: skip
        key = self.owner.api_key
        if not auth or (key is not None and auth != key):  # the real API checks every route
            self._json(401, _error(401, "invalid x-api-key"))
            return
        if self.path.split("?")[0].rstrip("/") == "/v1/models":
            model = {
                "type": "model",
                "id": "claude-sonnet-4-6",
                "display_name": "Claude Sonnet 4.6",
                "created_at": "2026-02-17T00:00:00Z",
            }
            page = {
                "data": [model],
                "has_more": False,
                "first_id": model["id"],
                "last_id": model["id"],
            }
            self._json(200, page)
        else:
            self._json(404, _error(404, f"no route {self.path}"))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path.split("?")[0] != "/v1/messages":
            self._json(404, _error(404, f"no route {self.path}"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._json(400, _error(400, "request body is not valid JSON"))
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, answer = self.owner.handle(body, headers)
        if status != 200:
            self._json(status, answer)
            return
        _, mode, payload, delay_s = answer
        if mode == "json":
            self._json(200, payload)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", "req_fake_stream")
        self.end_headers()
        try:
            for i, (name, data) in enumerate(payload):
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
                if i == 0 and delay_s:
                    time.sleep(delay_s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (cancelled task); nothing to tell it
