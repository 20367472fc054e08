"""One event as human-readable text: `run`'s plain output.

The first line says what happened; some events carry more lines (a tool's output with its
line breaks, the failing tests of a run, the items learned, the plan's steps), returned
indented so they read as belonging to that first line. Long lines are clipped at a word
boundary; names (failing tests, files) are never cut.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from agent.clip import clip
from agent.failing_tests import summary_lines

from . import fmt

OUTPUT_LINES = 8  # a tool result keeps its first lines, not one run-on line
MORE = " " * 11  # continuation lines start under the event's text ("[  12] " + 4)
LEARNED = (("patterns", "pattern"), ("improvements", "improvement"), ("nextSteps", "next step"))


def width() -> int:
    """Room for a line: the terminal's width, or 120 columns when not a terminal."""
    return max(60, shutil.get_terminal_size((120, 24)).columns)


def describe(event: dict[str, Any], columns: int | None = None) -> str:
    """The event as text: one line, or a first line and indented detail lines."""
    columns = columns or width()
    first, detail = _lines(event, columns)
    return "\n".join([first, *((MORE + line).rstrip() for line in detail)])


def _lines(event: dict[str, Any], columns: int) -> tuple[str, list[str]]:
    t = event["type"]
    room = columns - len(MORE) - 2  # the indent, and a tool result's 2 more
    if t == "status":
        reason = f" — {event['reason']}" if event.get("reason") else ""
        return f"state: {fmt.state_word(str(event['state']))}{reason}", []
    if t == "analysis":
        return f"analysis: {event.get('summary', '')}", []
    if t == "thinking":
        return f"thinking: {clip(str(event.get('text', '')), room)}", []
    if t == "text":
        lines = _text_lines(str(event.get("text", "")), room)
        return f"agent: {lines[0] if lines else ''}", lines[1:]
    if t == "plan":
        return "plan:", [plan_line(s) for s in event.get("steps") or []]
    if t == "progress":
        return f"progress: {event['completed']}/{event['total']}", []
    if t == "step":
        return f"step {event.get('step')}: {event['action']} {event.get('target', '')}".rstrip(), []
    if t == "tool_result":
        return _tool_result(event, room)
    if t == "approval_requested":
        return (f"approval #{event['approval_id']} needed ({event['risk']} risk): "
                f"{event['summary']}"), []  # fmt: skip
    if t == "approval_decided":
        verdict = "approved" if event["approved"] else "denied"
        return f"approval #{event['approval_id']} {verdict} by {event['by']}", []
    if t == "verification":
        verdict = {True: "passed", False: "FAILED", None: "skipped"}[event.get("passed")]
        failures = list(event.get("failures") or [])
        failed = (event.get("counts") or {}).get("failed")
        return (f"verification {verdict}: {event.get('evidence', '')}",
                summary_lines(failures, failed if isinstance(failed, int) else None))
    if t == "usage":
        return (f"usage: {fmt.usage_line(event)}, task total "
                f"{fmt.money(event.get('total_cost_usd'))}"), []  # fmt: skip
    if t == "learning":
        items = learned_items(event)
        if not items:
            return "learned nothing new", []
        return f"learned {fmt.plural(len(items), 'item')}:", [
            f"{word}: {clip(text, room - len(word) - 2)}" for word, text in items
        ]
    if t == "checkpoint":
        return f"checkpoint after step {event.get('step')}: {str(event.get('commit', ''))[:10]}", []
    if t in ("warning", "error"):
        return f"{t}: {event.get('message', '')}", []
    if t == "rollback":
        return f"rollback: {event.get('message', '')}", []
    if t in ("paused", "resumed"):
        return str(event.get("message") or t), []
    if t == "complete":
        verdict = "succeeded" if event["success"] else "did not succeed"
        files = ", ".join(event.get("changes", [])[:10])
        return f"task {verdict}: {clip(str(event.get('summary', '')), 300)}" + (
            f" [files: {files}]" if files else ""
        ), []
    payload = {k: v for k, v in event.items() if k not in ("task_id", "seq", "ts", "type")}
    return f"{t}: {clip(json.dumps(payload, default=str), 200)}", []


def plan_line(step: dict[str, Any]) -> str:
    marks = {"done": "x", "in_progress": ">", "pending": " "}
    return f"[{marks.get(step.get('status', ''), ' ')}] {step.get('title', '')}"


def learned_items(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(category word, text) of a learning event, in the cockpit's words."""
    return [(word, str(item)) for key, word in LEARNED
            for item in event.get(key) or [] if str(item).strip()]  # fmt: skip


def _text_lines(
    text: str, room: int, keep: int = OUTPUT_LINES, whole: frozenset[str] = frozenset()
) -> list[str]:
    """The text's first `keep` lines, breaks and indentation kept; a longer line is clipped
    at a word boundary, except the lines in `whole`."""
    lines = [line.rstrip() for line in text.expandtabs(4).splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    shown = [line if line in whole else _cut(line, room) for line in lines[:keep]]
    if len(lines) > keep:
        shown.append(f"… {fmt.plural(len(lines) - keep, 'more line')}")
    return shown


def _cut(line: str, room: int) -> str:
    """A line as it was (its indentation kept), clipped at a word boundary if too long."""
    if len(line) <= room:
        return line
    indent = line[: len(line) - len(line.lstrip())]
    return indent + clip(line.strip(), max(20, room - len(indent)))


def _tool_result(event: dict[str, Any], room: int) -> tuple[str, list[str]]:
    """The output's first lines, line breaks kept; a test run's failing tests in full
    (they come right after its verdict line), then its first lines of output."""
    mark = "error" if event.get("is_error") else "ok"
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    failed = data.get("failed")
    named = summary_lines(list(data.get("failures") or []), failed if isinstance(failed, int) else None)
    lines = _text_lines(str(event.get("output", "")), room, keep=1 + len(named) + OUTPUT_LINES,
                        whole=frozenset(named))  # fmt: skip
    if not lines:
        return f"  -> {mark}: (no output)", []
    return f"  -> {mark}: {lines[0]}", ["  " + line for line in lines[1:]]
