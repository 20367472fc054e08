"""A job's Markdown report, written to the data dir's `reports/` (atomically: a reader never
sees half a report)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

TITLES = {
    "error_spike": "Error spikes", "failure_cluster": "Failure clusters",
    "slow_tool": "Slow tools", "cost": "Cost", "task_outcomes": "Tasks",
    "large_function": "Largest functions", "complex_function": "Most complex functions",
    "duplicate_block": "Duplicated blocks", "todo_density": "TODO/FIXME density",
    "untested_module": "Modules no test imports", "churn": "Files changed most often",
}  # fmt: skip


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "—"


def _fence(text: str) -> str:
    """Evidence shown verbatim: a fence longer than any backtick run inside it."""
    longest = 0
    count = 0
    for ch in text:
        count = count + 1 if ch == "`" else 0
        longest = max(longest, count)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def render(result: dict[str, Any]) -> str:
    job = result["job"]
    out = [f"# Liv Hana self-improvement: {job}", "",
           f"- started: {_when(result['started_at'])}",
           f"- workspace: `{result.get('workspace', '')}`"]
    if result.get("run_id"):
        out.append(f"- run: {result['run_id']} ({result.get('trigger', 'manual')})")
    for call in result.get("model_calls", []):
        out.append(f"- model call ({call['job']}): {call['model']}, ${call['cost_usd']:.4f}")
    insights = result.get("insights", [])
    proposals = result.get("proposals", [])
    out += ["", "## Summary", "",
            f"{len(insights)} insight(s), {len(proposals)} proposal(s)."]
    if result.get("summary"):
        out += ["", result["summary"]]
    for note in result.get("notes", []):
        out.append(f"- note: {note}")
    stats = result.get("stats", {})
    logs = stats.get("logs")
    if logs:
        bad = ", ".join(f"{n} {why}" for why, n in logs.get("unreadable", {}).items()) or "none"
        out += ["", "### Logs read", "",
                f"{len(logs['files'])} file(s), {logs['lines']:,} lines, {logs['bytes']:,} bytes; "
                f"{logs['errors_last_day']:,} error lines in the last day, "
                f"{logs['errors_baseline']:,} in the {logs['baseline_days']:g} day(s) before; "
                f"unreadable lines: {bad}."]
        out += [f"- `{f}`" for f in logs["files"][:20]]
        out += [f"- skipped `{s['path']}`: {s['why']}" for s in logs.get("skipped", [])[:20]]
    kinds: dict[str, list[dict[str, Any]]] = {}
    for item in insights:
        kinds.setdefault(item["kind"], []).append(item)
    for kind, items in kinds.items():
        out += ["", f"## {TITLES.get(kind, kind)}", ""]
        for item in items:
            out.append(f"### {item['summary']}")
            out.append(f"id `{item['id']}`")
            evidence = [str(e) for e in item.get("evidence", [])]
            if evidence:
                out += ["", _fence("\n".join(evidence))]
            out.append("")
    if proposals:
        out += ["", "## Proposals", "",
                "They wait for you: `livhana-cockpit proposals accept|reject ID`, the "
                "Approval Queue (3) or the Self-Improvement panel (7).", ""]
        for p in proposals:
            out += [f"### {p['title']}", "",
                    f"id `{p['id']}` · impact {p['impact']} · effort {p['effort']} · "
                    f"evidence {', '.join(p['evidence']) or 'none'}", "",
                    p["rationale"], "", "Task:", "", _fence(p["task"]), ""]
    if result.get("tasks"):
        out += ["", "## Tasks started", ""]
        out += [f"- `{t['id']}` {t.get('state', '')}: {t.get('title', '')}"
                for t in result["tasks"]]
    return "\n".join(out).rstrip() + "\n"


def write(reports_dir: Path, result: dict[str, Any]) -> Path:
    reports_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromtimestamp(result["started_at"]).strftime("%Y-%m-%d-%H%M%S")
    path = reports_dir / f"{stamp}-{result['job']}.md"
    n = 1
    while path.exists():
        n += 1
        path = reports_dir / f"{stamp}-{result['job']}-{n}.md"
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(render(result))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path
