"""The routes under /api/autonomous/: each a thin front on the engine's public methods.

Every handler gets the caller (`Principal`) already authenticated; the ones that act
(execute, approve, cancel, rollback) pass its `actor` ("api:<subject>") to the engine, so
the audit log, the approval queue and the task's events say who did it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import events as ev
from agent.approvals import AlreadyDecided
from agent.errors import StopActive, UsageError

from . import bodies
from .problems import Problem, invalid
from .replies import reply
from .workspaces import check_workspace

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from agent.engine import Engine

    from .guard import RateLimit, Verified
    from .stream import Feeds
    from .tokens import Principal

BASE = "/api/autonomous"
APPROVE_MODES = ("ask", "auto", "deny")
_TASK_ID = re.compile(r"^[0-9a-f]{4,64}$")  # ids are hex; a prefix of 4+ is enough, like git


@dataclass
class Ctx:
    engine: Engine
    secret: str
    verify: Verified  # the bearer token's check, remembered per token until it expires
    limit: RateLimit
    feeds: Feeds
    workspace: str  # for a request that names none; "" when there is no default
    allowed: list[str]  # [api] workspaces: where requests may point (empty: anywhere sane)


# -- helpers ---------------------------------------------------------------------------------


async def find_task(ctx: Ctx, raw: str) -> dict[str, Any]:
    if not _TASK_ID.match(raw):
        raise Problem(404, f"no task '{raw[:64]}'", field="id")
    task = await ctx.engine.get(raw)
    if task is None:
        raise Problem(404, f"no task '{raw}'", field="id")
    return task


def _approval_view(row: dict[str, Any], with_detail: bool) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "kind": row["kind"],
        "state": row["state"],
        "risk": row.get("risk"),
        "summary": row.get("summary"),
        "createdAt": row.get("created_at"),
        "decidedBy": row.get("decided_by"),
        "decidedAt": row.get("decided_at"),
        "reason": row.get("reason") or "",
    }
    if with_detail:
        out["detail"] = row.get("detail") or {}
    return out


async def _approvals_of(ctx: Ctx, task_id: str) -> list[dict[str, Any]]:
    rows = await ctx.engine.store.approvals(None, task_id=task_id, limit=50)
    return [_approval_view(r, r["state"] == "pending") for r in rows]


def _query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not bodies.WHOLE.match(raw.strip()) or not low <= int(raw) <= high:
        raise invalid(name, f"must be a whole number from {low} to {high:,}", status=400)
    return int(raw)


def _usage_field(message: str) -> str | None:
    """Which body field an engine refusal of a submit is about."""
    lowered = message.lower()
    for prefix, field in (
        ("workspace", "workspace"),
        ("the task", "task"),
        ("max steps", "maxSteps"),
        ("max cost", "maxCost"),
        ("approve mode", "approve"),
    ):
        if lowered.startswith(prefix):
            return field
    return None


# -- the routes ------------------------------------------------------------------------------


EXECUTE_FIELDS = ("task", "workspace", "approve", "context", "maxSteps", "maxCost", "apply")


async def execute(ctx: Ctx, request: Request, who: Principal) -> Response:
    body = await bodies.read_json(request)
    bodies.only(
        body, EXECUTE_FIELDS, hint={"requireApproval": 'use "approve": "ask", "auto" or "deny"'}
    )
    task = bodies.text(body, "task", required=True)
    assert task is not None
    approve = bodies.choice(body, "approve", APPROVE_MODES, "ask")
    context = bodies.mapping(body, "context")
    max_steps = bodies.number(body, "maxSteps", whole=True)
    max_cost = bodies.number(body, "maxCost")
    apply = bodies.flag(body, "apply")
    workspace = bodies.text(body, "workspace", limit=4096)
    if workspace is None or not workspace.strip():
        workspace = ctx.workspace
    if not workspace:
        raise invalid(
            "workspace",
            "required: this server has no default workspace (start the daemon with "
            "--workspace DIR, or set [engine] workspace in config.toml)",
        )
    try:
        os.fsencode(workspace)
    except UnicodeError:
        raise invalid("workspace", "is not a valid path (not UTF-8)") from None
    if "\x00" in workspace:
        raise invalid("workspace", "is not a valid path (it holds a NUL byte)")
    path = Path(workspace).expanduser()
    if not path.is_absolute():
        raise invalid("workspace", f"must be an absolute path, got '{workspace[:200]}'")
    if not path.is_dir():  # the engine says so too; checked here before resolving it
        raise invalid("workspace", f"{workspace[:200]} is not an existing folder")
    check_workspace(path.resolve(), ctx.workspace, ctx.allowed, ctx.engine.config.data_dir)
    title = task
    if context:
        title += " (context: " + json.dumps(context, ensure_ascii=False, sort_keys=True) + ")"
    try:
        task_id = await ctx.engine.submit(
            title,
            path,
            approve=approve,
            max_steps=max_steps,  # type: ignore[arg-type]
            max_cost=max_cost,
            apply=True if apply is None else apply,
            by=who.actor,
        )
    except StopActive as exc:
        raise Problem(409, str(exc)) from None
    except UsageError as exc:
        field = _usage_field(str(exc))
        raise Problem(422, str(exc), field=field) from None
    return reply(
        {
            "taskId": task_id,
            "status": ev.QUEUED,
            "streamUrl": f"{BASE}/stream/{task_id}",
            "statusUrl": f"{BASE}/tasks/{task_id}",
            "message": "task queued",
        },
        202,
        {"Location": f"{BASE}/tasks/{task_id}"},
    )


async def task_status(ctx: Ctx, request: Request, who: Principal) -> Response:
    task = await find_task(ctx, request.path_params["id"])
    return reply({**task, "approvals": await _approvals_of(ctx, task["id"])})


async def live_tasks(ctx: Ctx, request: Request, who: Principal) -> Response:
    limit = _query_int(request, "limit", 100, 1, 1000)
    tasks = await ctx.engine.list(states=ev.LIVE_STATES, limit=limit)
    return reply({"tasks": tasks})


async def stream(ctx: Ctx, request: Request, who: Principal) -> Response:
    from starlette.responses import StreamingResponse

    from .stream import sse

    task = await find_task(ctx, request.path_params["id"])
    raw = request.headers.get("last-event-id")
    cursor = 0
    if raw is not None and raw.strip():
        if not bodies.WHOLE.match(raw.strip()):
            raise Problem(400, "Last-Event-ID must be an event's seq number", field="Last-Event-ID")
        cursor = int(raw)
    return StreamingResponse(
        sse(ctx.feeds, task["id"], cursor),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def approve(ctx: Ctx, request: Request, who: Principal) -> Response:
    task = await find_task(ctx, request.path_params["id"])
    body = await bodies.read_json(request)
    bodies.only(body, ("approved", "notes", "reason"))
    approved = bodies.flag(body, "approved", required=True)
    assert approved is not None
    notes = bodies.text(body, "notes", limit=2000) or bodies.text(body, "reason", limit=2000)
    try:
        count = await ctx.engine.decide_task(
            task["id"], approved, by=who.actor, reason=" ".join((notes or "").split())
        )
    except AlreadyDecided as lost:
        # First decider wins: say who did, and what this call still decided (if anything).
        raise Problem(
            409,
            str(lost),
            decided=len(lost.won),
            approvals=await _approvals_of(ctx, task["id"]),
        ) from None
    after = await ctx.engine.get(task["id"]) or task
    return reply(
        {
            "success": True,
            "taskId": task["id"],
            "approved": approved,
            "decided": count,
            "by": who.actor,
            "state": after["state"],
            "message": f"{'approved' if approved else 'denied'} {count} request(s)",
            "approvals": await _approvals_of(ctx, task["id"]),
        }
    )


async def cancel(ctx: Ctx, request: Request, who: Principal) -> Response:
    task = await find_task(ctx, request.path_params["id"])
    try:
        await ctx.engine.cancel(task["id"], by=who.actor)
    except UsageError as exc:  # it already ended
        raise Problem(409, str(exc), state=task["state"]) from None
    after = await ctx.engine.get(task["id"]) or task
    return reply(
        {
            "success": True,
            "taskId": task["id"],
            "state": after["state"],
            "message": "cancel requested; the stream shows when it took effect",
        },
        202,
    )


async def rollback(ctx: Ctx, request: Request, who: Principal) -> Response:
    task = await find_task(ctx, request.path_params["id"])
    body = await bodies.read_json(request, required=False)
    bodies.only(body, ("toStep", "reason"))
    to_step = bodies.number(body, "toStep", whole=True)
    if to_step is not None and not 0 <= int(to_step) <= 100_000:
        raise invalid("toStep", "must be a whole number from 0 to 100,000")
    bodies.text(body, "reason", limit=2000)  # checked, kept in the audit via `by`
    try:
        result = await ctx.engine.rollback(
            task["id"], int(to_step) if to_step is not None else None, by=who.actor
        )
    except UsageError as exc:
        raise Problem(409, str(exc), state=task["state"]) from None
    after = await ctx.engine.get(task["id"]) or task
    return reply({"success": True, "taskId": task["id"], "state": after["state"], **result})


async def history(ctx: Ctx, request: Request, who: Principal) -> Response:
    limit = _query_int(request, "limit", 50, 1, 1000)
    offset = _query_int(request, "offset", 0, 0, 10_000_000)
    rows = await ctx.engine.list(states=ev.END_STATES, limit=limit + 1, offset=offset)
    return reply(
        {"tasks": rows[:limit], "limit": limit, "offset": offset, "hasMore": len(rows) > limit}
    )


LEARNING_KEYS = {"pattern": "patterns", "improvement": "improvements", "nextStep": "nextSteps"}


async def learnings(ctx: Ctx, request: Request, who: Principal) -> Response:
    out: dict[str, list[str]] = {"patterns": [], "improvements": [], "nextSteps": []}
    for row in await ctx.engine.learnings():
        key = LEARNING_KEYS.get(row.get("category", ""))
        if key and row.get("state", "active") not in ("retired",):
            out[key].append(row["text"])
    return reply(out)


async def capabilities(ctx: Ctx, request: Request, who: Principal) -> Response:
    tools = ctx.engine.capabilities()
    return reply(
        {
            "actions": [t["name"] for t in tools],
            "tools": tools,
            "policyMode": ctx.engine.policy_mode,
        }
    )


async def metrics(ctx: Ctx, request: Request, who: Principal) -> Response:
    return reply(await ctx.engine.metrics())
