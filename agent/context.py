"""Keeping the conversation inside the model's window without breaking the cached prefix.

The system prompt and tool list never change, so their cache entry survives. When the
conversation nears the window, older turns are condensed in one go (not a little each
turn, which would miss the cache every call): tool outputs become a short note, the
`content` of write_file calls becomes "(N chars written; elided)" (the file is in the
worktree, the model can read it again), and thinking blocks are dropped from assistant
turns before the last one (the API needs only the current tool-use turn's thinking).
The newest turns stay whole; the last assistant turn is never touched.

`condense(..., hard=True)` is the answer to the API's "prompt is too long": everything
but the task prompt and the last exchange is condensed, whatever the size estimate says.
"""

from __future__ import annotations

import json
from typing import Any

KEEP_RECENT = 6  # messages at the end that are never condensed
KEEP_RECENT_HARD = 2  # after "prompt is too long": the last assistant turn and its results
ELIDED = "[output elided to keep the conversation within the context window]"
THINKING = ("thinking", "redacted_thinking")


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    # ~4 characters per token is close enough to decide when to condense.
    return len(json.dumps(messages, default=str)) // 4


def condense(
    messages: list[dict[str, Any]],
    window: int,
    threshold: float = 0.7,
    used: int | None = None,
    hard: bool = False,
) -> bool:
    """Condense older turns in place when over `threshold` of `window` (always when
    `hard`). True if anything changed.

    `used` is the size the model last reported (its input tokens) plus the newest turn;
    without it the whole conversation is measured, which costs O(length) every step.
    """
    if not hard:
        size = used if used is not None else estimate_tokens(messages)
        if size < window * threshold:
            return False
    keep = KEEP_RECENT_HARD if hard else KEEP_RECENT
    changed = False
    for message in messages[1:-keep]:  # the task prompt (first) stays whole
        if isinstance(message["content"], str):
            continue
        if message["role"] == "user":
            changed |= _elide_results(message["content"])
        else:
            changed |= _elide_assistant(message)
    return changed


def _elide_results(blocks: list[dict[str, Any]]) -> bool:
    changed = False
    for block in blocks:
        if block.get("type") == "tool_result" and block.get("content") != ELIDED:
            block["content"] = ELIDED
            changed = True
    return changed


def _elide_assistant(message: dict[str, Any]) -> bool:
    changed = False
    blocks = message["content"]
    kept = [b for b in blocks if b.get("type") not in THINKING]
    if kept and len(kept) != len(blocks):  # never leave a turn empty
        message["content"] = blocks = kept
        changed = True
    for i, block in enumerate(blocks):
        args = block.get("input")
        if (
            block.get("type") == "tool_use"
            and block.get("name") == "write_file"
            and isinstance(args, dict)
            and isinstance(args.get("content"), str)
            and not _is_note(args["content"])
        ):
            note = f"({len(args['content'])} chars written; elided)"
            # A new dict: the same input object may also sit in an event payload.
            blocks[i] = {**block, "input": {**args, "content": note}}
            changed = True
    return changed


def _is_note(text: str) -> bool:
    return text.startswith("(") and text.endswith(" chars written; elided)")
