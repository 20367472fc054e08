"""One event as one human-readable line (the CLI's plain output; the cockpit reuses it)."""

from __future__ import annotations

import json
from typing import Any


def describe(event: dict[str, Any]) -> str:
    t = event["type"]
    if t == "status":
        reason = f" — {event['reason']}" if event.get("reason") else ""
        return f"state: {event['state']}{reason}"
    if t == "analysis":
        chosen = event.get("learnings")
        note = ""
        if isinstance(chosen, dict):
            given = chosen.get("given") or []
            if chosen.get("holdout"):
                note = " [learnings: holdout, run without them as a baseline]"
            elif given:
                note = f" [learnings given: {', '.join(str(g.get('id')) for g in given)}]"
        return f"analysis: {event.get('summary', '')}{note}"
    if t == "thinking":
        return f"thinking: {_first(event.get('text', ''))}"
    if t == "text":
        return f"agent: {_first(event.get('text', ''), 300)}"
    if t == "plan":
        marks = {"done": "x", "in_progress": ">", "pending": " "}
        return "plan: " + "; ".join(
            f"[{marks.get(s['status'], ' ')}] {s['title']}" for s in event["steps"]
        )
    if t == "progress":
        return f"progress: {event['completed']}/{event['total']}"
    if t == "step":
        return f"step {event.get('step')}: {event['action']} {event.get('target', '')}".rstrip()
    if t == "tool_result":
        mark = "error" if event.get("is_error") else "ok"
        return f"  -> {mark}: {_first(event.get('output', ''))}"
    if t == "approval_requested":
        return f"approval #{event['approval_id']} needed ({event['risk']} risk): {event['summary']}"
    if t == "approval_decided":
        verdict = "approved" if event["approved"] else "denied"
        return f"approval #{event['approval_id']} {verdict} by {event['by']}"
    if t == "verification":
        verdict = {True: "passed", False: "FAILED", None: "skipped"}[event.get("passed")]
        return f"verification {verdict}: {event.get('evidence', '')}"
    if t == "usage":
        return f"usage: {event.get('input_tokens', 0)} in / {event.get('output_tokens', 0)} out, task total ${event.get('total_cost_usd', 0):.4f}"
    if t == "learning":
        n = sum(len(event.get(k, [])) for k in ("patterns", "improvements", "nextSteps"))
        merged = f" ({event['merged']} already known: merged)" if event.get("merged") else ""
        return f"learned {n} item(s){merged}"
    if t == "checkpoint":
        return f"checkpoint after step {event.get('step')}: {str(event.get('commit', ''))[:10]}"
    if t in ("warning", "error"):
        return f"{t}: {event.get('message', '')}"
    if t == "rollback":
        return f"rollback: {event.get('message', '')}"
    if t == "complete":
        verdict = "succeeded" if event["success"] else "did not succeed"
        files = ", ".join(event.get("changes", [])[:10])
        return f"task {verdict}: {_first(event.get('summary', ''), 300)}" + (
            f" [files: {files}]" if files else ""
        )
    payload = {k: v for k, v in event.items() if k not in ("task_id", "seq", "ts", "type")}
    return f"{t}: {json.dumps(payload, default=str)[:200]}"


def _first(text: str, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
