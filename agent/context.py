"""Keeping the conversation inside the model's window without breaking the cached prefix.

The system prompt and tool list never change, so their cache entry survives. When the
conversation nears the window, the outputs of older tool results are replaced by a short
note in one go (not a little each turn, which would miss the cache every call).
"""

from __future__ import annotations

import json
from typing import Any

KEEP_RECENT = 6  # messages at the end that are never condensed
ELIDED = "[output elided to keep the conversation within the context window]"


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    # ~4 characters per token is close enough to decide when to condense.
    return len(json.dumps(messages, default=str)) // 4


def condense(
    messages: list[dict[str, Any]], window: int, threshold: float = 0.7, used: int | None = None
) -> bool:
    """Elide old tool outputs in place when over `threshold` of `window`. True if it did.

    `used` is the size the model last reported (its input tokens) plus the newest turn;
    without it the whole conversation is measured, which costs O(length) every step.
    """
    size = used if used is not None else estimate_tokens(messages)
    if size < window * threshold:
        return False
    changed = False
    for message in messages[1:-KEEP_RECENT]:  # the task prompt (first) stays whole
        if message["role"] != "user" or isinstance(message["content"], str):
            continue
        for block in message["content"]:
            if block.get("type") == "tool_result" and block.get("content") != ELIDED:
                block["content"] = ELIDED
                changed = True
    return changed
