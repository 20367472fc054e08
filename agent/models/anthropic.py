"""The Anthropic Messages API as a `Model`: streaming, extended thinking, prompt caching,
our own retry loop, and cost per call.

`anthropic` is imported only when the first request is made, so the cockpit paints its
first frame (and `import agent.models` stays cheap) without it.

Retries are ours alone (the SDK's are switched off): the SDK retries a 529 at connect but
not an `error` event inside a 200 stream, and two nested retry loops would make the
attempt count unpredictable. A retried attempt restarts the turn: `on_delta("restart", "")`
says so before the turn's thinking/text streams again from its start.
"""

from __future__ import annotations

import inspect
import logging
import os
import random
import time
import warnings
from typing import TYPE_CHECKING, Any

from .. import secrets
from ..config import DEFAULT_MODEL
from ..errors import ContextTooLong, MissingKeyError, ModelError
from .base import DeltaCallback, ModelResponse, Usage
from .pricing import cost_usd

if TYPE_CHECKING:
    import anthropic

log = logging.getLogger(__name__)

EPHEMERAL = {"type": "ephemeral"}
MIN_THINKING_BUDGET = 1024  # the API's floor for budget_tokens
MISSING_KEY = (
    "no Anthropic API key: run `livhana-cockpit secrets set anthropic_api_key` "
    "or set ANTHROPIC_API_KEY"
)
# Error types the API uses for transient trouble, in an HTTP status or a mid-stream event.
RETRYABLE_TYPES = {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
# Fields the API accepts back, per block type; anything else (citations=None,
# parsed_output, ...) would be rejected as "Extra inputs are not permitted".
SEND_BACK_FIELDS = {
    "thinking": ("type", "thinking", "signature"),
    "redacted_thinking": ("type", "data"),
    "text": ("type", "text", "citations"),
    "tool_use": ("type", "id", "name", "input", "caller"),
}


class _IncompleteStream(Exception):
    """The stream closed before message_stop: the turn is unusable, try again."""


class AnthropicModel:
    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        thinking_budget: int = 10_000,
        max_tokens: int = 16_000,
        max_retries: int = 4,
        context_window: int = 200_000,
        retry_base_s: float = 1.0,
        retry_max_s: float = 30.0,
        timeout_s: float = 600.0,
    ) -> None:
        self.name = model
        self.context_window = context_window
        self.max_retries = max(0, max_retries)  # retries after the first attempt
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.timeout_s = timeout_s
        # 0 turns thinking off; otherwise the API wants >= 1024 and max_tokens above it,
        # so a too-small config is lifted rather than failing every call with a 400.
        self.thinking_budget = max(MIN_THINKING_BUDGET, thinking_budget) if thinking_budget else 0
        self.max_tokens = max(
            max_tokens, self.thinking_budget + 4096 if self.thinking_budget else 1
        )
        self._api_key = api_key
        self._base_url = base_url
        self._client: anthropic.AsyncAnthropic | None = None
        # Remembered so a tools=None call can still define the tools its history used
        # (the API requires that) and keep hitting the cached tools+system prefix.
        self._last_tools: list[dict[str, Any]] | None = None
        self._warned = False

    # -- client ------------------------------------------------------------------------
    def _get_client(self) -> anthropic.AsyncAnthropic:
        if self._client is not None:
            return self._client
        key = self._api_key or secrets.anthropic_api_key()
        if not key and not os.environ.get("ANTHROPIC_AUTH_TOKEN"):
            raise MissingKeyError(MISSING_KEY)
        import anthropic  # lazy: heavy, and the UI must paint without it

        self._client = anthropic.AsyncAnthropic(
            api_key=key or None,  # None lets the SDK use ANTHROPIC_AUTH_TOKEN
            base_url=self._base_url,  # None lets the SDK honour ANTHROPIC_BASE_URL
            max_retries=0,
            timeout=self.timeout_s,
        )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def ping(self) -> float:
        """Seconds for a cheap authenticated request (System Health)."""
        client = self._get_client()
        started = time.perf_counter()
        try:
            await client.models.list(limit=1)
        except Exception as exc:
            raise _fatal(exc) or ModelError(f"model API unreachable: {_describe(exc)}") from None
        return time.perf_counter() - started

    # -- one turn ----------------------------------------------------------------------
    async def complete(
        self,
        *,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        on_delta: DeltaCallback | None = None,
    ) -> ModelResponse:
        import asyncio

        client = self._get_client()
        params = self._params(system, messages, tools)
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            if attempt > 1 and on_delta is not None:  # live text shown so far is void
                result = on_delta("restart", "")
                if inspect.isawaitable(result):
                    await result
            try:
                return await self._stream_once(client, params, on_delta)
            except Exception as exc:
                fatal = _fatal(exc)
                if fatal is not None:
                    raise fatal from None
                if not _retryable(exc):
                    raise
                if attempt == attempts:
                    raise ModelError(
                        f"model API unavailable after {attempts} attempts: {_describe(exc)}"
                    ) from None
                delay = self._delay(attempt, exc)
                log.warning(
                    "model call failed (%s); retry %d in %.2fs", _describe(exc), attempt, delay
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, exc: BaseException) -> float:
        """Exponential backoff with full jitter, or the server's retry-after when it says."""
        response = getattr(exc, "response", None)
        header = response.headers.get("retry-after") if response is not None else None
        try:
            if header is not None:
                return min(self.retry_max_s, max(0.0, float(header)))
        except ValueError:
            pass
        ceiling = min(self.retry_max_s, self.retry_base_s * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _open_stream(self, client: anthropic.AsyncAnthropic, params: dict[str, Any]) -> Any:
        # The SDK warns (DeprecationWarning) on every call to a model nearing end-of-life;
        # say it once in the log instead. No await happens inside, so the filter cannot
        # leak into other tasks.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            manager = client.messages.stream(**params)
        if caught and not self._warned:
            self._warned = True
            log.warning("%s", " ".join(str(caught[0].message).split()))
        return manager

    async def _stream_once(
        self,
        client: anthropic.AsyncAnthropic,
        params: dict[str, Any],
        on_delta: DeltaCallback | None,
    ) -> ModelResponse:
        finished = False
        async with self._open_stream(client, params) as stream:
            async for event in stream:
                if event.type == "message_stop":
                    finished = True
                if on_delta is None or event.type != "content_block_delta":
                    continue
                delta = event.delta
                if delta.type == "thinking_delta":
                    await _emit(on_delta, "thinking", delta.thinking)
                elif delta.type == "text_delta":
                    await _emit(on_delta, "text", delta.text)
            if not finished:  # the connection dropped without an error event
                raise _IncompleteStream("stream ended before message_stop")
            message = await stream.get_final_message()
        raw_usage = message.usage.model_dump()
        usage = Usage(
            input_tokens=message.usage.input_tokens or 0,
            output_tokens=message.usage.output_tokens or 0,
            cache_creation_input_tokens=message.usage.cache_creation_input_tokens or 0,
            cache_read_input_tokens=message.usage.cache_read_input_tokens or 0,
            cost_usd=cost_usd(self.name, raw_usage),
        )
        content = [_block_to_dict(block) for block in message.content]
        return ModelResponse(content, message.stop_reason, usage, message.model or self.name)

    # -- request shape -----------------------------------------------------------------
    def _params(
        self, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.name,
            "max_tokens": self.max_tokens,
            "messages": _with_breakpoints(messages),
        }
        if self.thinking_budget:
            params["thinking"] = {"type": "enabled", "budget_tokens": self.thinking_budget}
        if system:
            # Breakpoint 1: tools+system is the stable prefix every call of a task shares.
            params["system"] = [{"type": "text", "text": system, "cache_control": EPHEMERAL}]
        if tools:
            self._last_tools = tools
        elif _has_tool_blocks(messages):
            # No tools wanted (the learnings question), but the API rejects tool_use
            # history without tool definitions: define them and forbid their use.
            tools = self._last_tools or _stub_tools(messages)
            params["tool_choice"] = {"type": "none"}
        if tools:
            # Breakpoint 2: on the last tool, so the tools block is cached on its own too.
            params["tools"] = [*tools[:-1], {**tools[-1], "cache_control": EPHEMERAL}]
        return params


async def _emit(on_delta: DeltaCallback, kind: str, text: str) -> None:
    if text:
        result = on_delta(kind, text)
        if inspect.isawaitable(result):
            await result


def _with_breakpoints(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of `messages` with rolling cache breakpoints on the last block of the last
    two user turns (breakpoints 3 and 4: the newest one writes the cache, the previous one
    is where the last call wrote it, so the read survives long tool-result turns).
    Caller-set cache_control markers are dropped to stay within the API's limit of 4.
    The caller's list is never mutated: it is the stored conversation."""
    out = [{**m, "content": _strip_marks(m.get("content"))} for m in messages]
    marked = 0
    for msg in reversed(out):
        if marked == 2:
            break
        if msg.get("role") != "user":
            continue
        content = msg["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}] if content else []
        for i in range(len(content) - 1, -1, -1):
            block = content[i]
            if block.get("type") == "text" and not block.get("text"):
                continue  # empty text cannot carry a breakpoint
            content = [*content[:i], {**block, "cache_control": EPHEMERAL}, *content[i + 1 :]]
            msg["content"] = content
            marked += 1
            break
    return out


def _strip_marks(content: Any) -> Any:
    """`content` without cache_control markers (also inside tool_result content)."""
    if not isinstance(content, list):
        return content
    out = []
    for block in content:
        if isinstance(block, dict) and (
            "cache_control" in block or block.get("type") == "tool_result"
        ):
            block = {k: v for k, v in block.items() if k != "cache_control"}
            if block.get("type") == "tool_result":
                block["content"] = _strip_marks(block.get("content"))
                if block["content"] is None:
                    del block["content"]
        out.append(block)
    return out


def _has_tool_blocks(messages: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result")
        for m in messages
        if isinstance(m.get("content"), list)
        for b in m["content"]
    )


def _stub_tools(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {
        b["name"]
        for m in messages
        if isinstance(m.get("content"), list)
        for b in m["content"]
        if isinstance(b, dict) and b.get("type") == "tool_use"
    } or {"unavailable_tool"}
    return [
        {"name": n, "description": "not available now", "input_schema": {"type": "object"}}
        for n in sorted(names)
    ]


def _block_to_dict(block: Any) -> dict[str, Any]:
    """An SDK content block as the plain dict the API accepts back unchanged."""
    data = block.model_dump(mode="json", exclude_none=True)
    fields = SEND_BACK_FIELDS.get(data.get("type", ""))
    if fields is None:  # a block type we do not know: keep it, minus SDK-only extras
        data.pop("parsed_output", None)
        return data
    out = {k: data[k] for k in fields if k in data}
    if out.get("type") == "text" and not out.get("citations"):
        out.pop("citations", None)
    return out


def _describe(exc: BaseException) -> str:
    """One line: the API's own message when it sent one, else the exception's text."""
    status = getattr(exc, "status_code", None)
    kind = getattr(exc, "type", None) or _body_error_type(getattr(exc, "body", None))
    message = getattr(exc, "api_message", None) or getattr(exc, "message", None) or str(exc)
    text = " ".join(str(message).split()) or type(exc).__name__
    if len(text) > 240:
        text = text[:237] + "..."
    prefix = " ".join(str(p) for p in (status if status and status != 200 else None, kind) if p)
    return f"{prefix}: {text}" if prefix else text


def _fatal(exc: BaseException) -> ModelError | None:
    """A ModelError for API errors retrying cannot fix (bad request, bad key, unknown
    model); None for transient ones and for anything not from the SDK."""
    import anthropic

    if not isinstance(exc, anthropic.AnthropicError) or _retryable(exc):
        return None
    status = getattr(exc, "status_code", None)
    if status == 401:
        return ModelError(f"Anthropic API key was rejected (401): {_describe(exc)}")
    if status == 403:
        return ModelError(f"Anthropic API refused access (403): {_describe(exc)}")
    if status == 404:
        return ModelError(f"model API: not found, check the model id: {_describe(exc)}")
    if status == 413 or (status == 400 and "prompt is too long" in _describe(exc).lower()):
        return ContextTooLong(f"model API: the conversation is too long: {_describe(exc)}")
    return ModelError(f"model API rejected the request: {_describe(exc)}")


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Raw read errors can escape the SDK mid-stream; its HTTP library is httpx2 or httpx."""
    try:
        import httpx2

        return (httpx2.TransportError,)
    except ImportError:  # older SDKs
        import httpx

        return (httpx.TransportError,)


def _retryable(exc: BaseException) -> bool:
    import anthropic

    if isinstance(exc, (_IncompleteStream, anthropic.APIConnectionError, *_transport_errors())):
        return True
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        kind = getattr(exc, "type", None) or _body_error_type(exc.body)
        if kind in RETRYABLE_TYPES or status in (408, 409, 429) or status >= 500:
            return True
        # An `error` event inside a 200 stream is always the server's trouble.
        return status == 200
    return False


def _body_error_type(body: object) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else None
