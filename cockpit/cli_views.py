"""The command line's listings (tasks, history, metrics, capabilities, approvals; learnings
live in cockpit/learnings_command.py) as text tables with headers, in the cockpit's words
and formats (cockpit/fmt.py): "rolled back", "56%", "$0.0093", "1m27s". `--json` prints
the data as it is, untouched.

An empty listing says what there is instead ("no live tasks (3 in history)"), so an
operator is never told "nothing" while something exists elsewhere.
"""

from __future__ import annotations

import json
from typing import Any

from agent import events as ev
from agent.clip import clip

from . import fmt
from .text_table import table

TASK_CHARS = 40  # the task column when another free-text column follows it
# metrics totals, in the order and words of the Charts panel's totals box
TOTALS = (
    ("tasks", "tasks"),
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("cancelled", "cancelled"),
    ("rolled_back", "rolled back"),
    ("interrupted", "interrupted"),
    ("live", "still running"),
    ("success_rate", "success"),
    ("cost_usd", "cost"),
    ("learnings", "learnings"),
    ("learnings_active", "learnings active"),
    ("learnings_retired", "learnings retired"),
    ("learnings_merged", "merged near-duplicates"),
    ("working_s", "working"),
    ("waiting_s", "waiting for you"),
)
CATEGORY = {"pattern": "pattern", "improvement": "improvement", "nextStep": "next step"}


async def show(engine: Any, command: str, args: Any) -> int:
    data, lines = await VIEWS[command](engine, args)
    if args.json:
        print(json.dumps(data, default=str, indent=None))
    else:
        print("\n".join(lines))
    return 0


async def _count(engine: Any, sql: str, params: list[Any]) -> int:
    return int((await engine.store.fetch(sql, params))[0]["n"] or 0)


def _marks(n: int) -> str:
    return ", ".join("?" for _ in range(n))


async def tasks(engine: Any, args: Any) -> tuple[Any, list[str]]:
    data = await engine.list(states=ev.LIVE_STATES, limit=args.limit)
    alive = {e["id"] for e in await engine.store.engines() if engine.store.engine_alive(e)}
    for t in data:  # a dead engine's task is interrupted when the next engine starts
        t["engine_alive"] = t["engine_id"] in alive
    if not data:
        ended = await _count(engine, f"SELECT COUNT(*) AS n FROM tasks WHERE state IN "
                                     f"({_marks(len(ev.END_STATES))})", list(ev.END_STATES))  # fmt: skip
        return data, [f"no live tasks ({ended} in history: `livhana-cockpit history`)"]
    rows = [(t["id"], _state(t), t["steps"], fmt.elapsed(t), fmt.money(t["cost_usd"]), t["title"])
            for t in data]  # fmt: skip
    return data, table(("ID", "State", "Step", "Elapsed", "Cost", "Task"), rows)


def _state(task: dict[str, Any]) -> str:
    word = fmt.state_word(task["state"])
    return word if task.get("engine_alive", True) else f"{word} (its process is gone)"


async def history(engine: Any, args: Any) -> tuple[Any, list[str]]:
    data = await engine.list(states=ev.END_STATES, limit=args.limit)
    if not data:
        live = await _count(engine, f"SELECT COUNT(*) AS n FROM tasks WHERE state IN "
                                    f"({_marks(len(ev.LIVE_STATES))})", list(ev.LIVE_STATES))  # fmt: skip
        return data, [f"no finished tasks yet ({live} live: `livhana-cockpit tasks`)"
                      if live else "no tasks yet"]  # fmt: skip
    spans = await engine.views.timings([t["id"] for t in data])
    rows = []
    for t in data:
        span = spans[t["id"]]
        started = span.started_at is not None
        rows.append((
            t["id"], fmt.clock(span.ended_at or t.get("finished_at")), fmt.state_word(t["state"]),
            fmt.duration(span.working_s) if started else "—",
            fmt.duration(span.waiting_s) if started else "—",
            fmt.money(t["cost_usd"]), clip(t["title"], TASK_CHARS),
            t.get("error") or t.get("summary") or "",
        ))  # fmt: skip
    headers = ("ID", "Finished", "State", "Working", "Waiting", "Cost", "Task", "Outcome")
    return data, table(headers, rows)


async def approvals(engine: Any, args: Any) -> tuple[Any, list[str]]:
    data = await engine.pending_approvals()
    if not data:
        decided = await _count(
            engine, "SELECT COUNT(*) AS n FROM approvals WHERE state != 'pending'", []
        )
        return data, [f"no pending approvals ({decided} decided)"]
    rows = [(a["id"], fmt.duration(fmt.now() - a["created_at"]), a["kind"], a["risk"],
             a["task_id"], a["summary"]) for a in data]  # fmt: skip
    return data, table(("#", "Waiting", "Kind", "Risk", "Task", "Summary"), rows)


async def capabilities(engine: Any, args: Any) -> tuple[Any, list[str]]:
    data = engine.capabilities()
    rows = [(c["name"], c["kind"], c["policy"] + ("*" if _gated(c) else ""), c["description"])
            for c in data]  # fmt: skip
    return data, table(("Tool", "Kind", "Policy", "Description"), rows) + _gates(data)


def _gated(tool: dict[str, Any]) -> bool:
    return bool(tool.get("gates")) and tool["policy"] != "deny"


def _gates(tools: list[dict[str, Any]]) -> list[str]:
    """Why a tool marked * can still wait for approval (or be refused): the rules the
    engine checks before the tool's own policy, in its words."""
    from agent.policy import WHO_ANSWERS

    lines = []
    for tool in filter(_gated, tools):
        lines += ["", f"* {tool['name']}: some calls still ask or are refused, whatever the policy:"]
        lines += [f"    {gate}" for gate in tool["gates"]]
    return lines + ["", WHO_ANSWERS] if lines else lines


async def metrics(engine: Any, args: Any) -> tuple[Any, list[str]]:
    data = await engine.metrics()
    totals = dict(data["totals"])
    rows = []
    for key, label in TOTALS:
        if key in totals:
            rows.append((label, _total(key, totals.pop(key))))
    rows += [(key.replace("_", " "), str(value)) for key, value in totals.items()]  # newer keys
    return data, table(("Last 14 days", ""), rows)


def _total(key: str, value: Any) -> str:
    if key == "success_rate":
        return fmt.percent(value)
    if key == "cost_usd":
        return fmt.money(value)
    if key in ("working_s", "waiting_s"):
        return fmt.duration(value)
    return str(value)


VIEWS = {"tasks": tasks, "history": history, "metrics": metrics,
         "capabilities": capabilities, "approvals": approvals}  # fmt: skip
