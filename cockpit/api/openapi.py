"""The OpenAPI 3.1 document of the API, served at /api/openapi.json (and fuzzed by the tests)."""

from __future__ import annotations

from typing import Any

from agent import events as ev

API_VERSION = "1.0.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERR = _ref("Error")
_TASK_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "a task id, or a unique prefix of 4 or more of its hex digits",
    "schema": {"type": "string"},
}


def _refusals(*codes: int) -> dict[str, Any]:
    why = {
        400: "malformed request (body not JSON, bad header or query value)",
        401: "no token, or one that is garbage, forged, not HS256, or expired",
        403: "a viewer token on a route that acts, or a foreign Origin / non-loopback Host",
        404: "no such task",
        409: "the task's state refuses it (already decided: the answer names who decided)",
        413: "the body is over 1 MB",
        422: "a field is wrong (the answer names it)",
        429: "rate limit of this token reached (see Retry-After)",
        503: "the store is unavailable",
    }
    return {str(c): _json(_ERR, why[c]) for c in codes}


def _op(
    summary: str,
    ok: dict[str, Any],
    refusals: tuple[int, ...],
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    body_required: bool = True,
    secured: bool = True,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**ok, **_refusals(*refusals)}}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": body}},
        }
    if not secured:
        op["security"] = []
    return op


def _query(name: str, description: str, low: int, high: int) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", "minimum": low, "maximum": high},
    }


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "what went wrong, in one line"},
            "field": {"type": "string", "description": "the body field or header at fault"},
        },
    },
    "ExecuteRequest": {
        "type": "object",
        "required": ["task"],
        "additionalProperties": False,
        "properties": {
            "task": {"type": "string", "minLength": 1, "maxLength": 10000,
                     "description": "what the agent should do"},
            "workspace": {"type": "string", "maxLength": 4096,
                          "description": "absolute path of the project; default: the server's"},
            "approve": {"type": "string", "enum": ["ask", "auto", "deny"], "default": "ask",
                        "description": "how approval requests are answered"},
            "context": {"type": "object", "description": "extra facts, given to the agent"},
            "maxSteps": {"type": "integer", "minimum": 1, "maximum": 100000},
            "maxCost": {"type": "number", "exclusiveMinimum": 0, "maximum": 100000},
            "apply": {"type": "boolean", "default": True,
                      "description": "false: leave the change on its branch"},
        },
    },
    "ExecuteAccepted": {
        "type": "object",
        "required": ["taskId", "status", "streamUrl"],
        "properties": {
            "taskId": {"type": "string"},
            "status": {"type": "string"},
            "streamUrl": {"type": "string"},
            "statusUrl": {"type": "string"},
        },
    },
    "Approval": {
        "type": "object",
        "required": ["id", "kind", "state"],
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": "string"},
            "state": {"type": "string", "enum": ["pending", "approved", "denied"]},
            "risk": {"type": ["string", "null"]},
            "summary": {"type": ["string", "null"]},
            "decidedBy": {"type": ["string", "null"]},
            "decidedAt": {"type": ["number", "null"]},
            "reason": {"type": "string"},
            "detail": {"type": "object"},
        },
    },
    "Task": {
        "type": "object",
        "required": ["id", "state", "title"],
        "properties": {
            "id": {"type": "string"},
            "state": {"type": "string", "enum": list(ev.ALL_STATES)},
            "title": {"type": "string"},
            "workspace": {"type": "string"},
            "approve_mode": {"type": "string"},
            "steps": {"type": "integer"},
            "tokens": {"type": "integer"},
            "cost_usd": {"type": "number"},
            "branch": {"type": ["string", "null"]},
            "summary": {"type": ["string", "null"]},
            "error": {"type": ["string", "null"]},
            "changes": {"type": "array", "items": {"type": "string"}},
            "created_at": {"type": "number"},
            "finished_at": {"type": ["number", "null"]},
            "approvals": {"type": "array", "items": _ref("Approval")},
        },
    },
    "ApproveRequest": {
        "type": "object",
        "required": ["approved"],
        "additionalProperties": False,
        "properties": {
            "approved": {"type": "boolean"},
            "notes": {"type": "string", "maxLength": 2000},
            "reason": {"type": "string", "maxLength": 2000, "description": "same as notes"},
        },
    },
    "RollbackRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "toStep": {"type": "integer", "minimum": 0, "maximum": 100000,
                       "description": "return the task's worktree to after this step"},
            "reason": {"type": "string", "maxLength": 2000},
        },
    },
    "Done": {
        "type": "object",
        "required": ["success", "taskId", "state"],
        "properties": {
            "success": {"type": "boolean"},
            "taskId": {"type": "string"},
            "state": {"type": "string"},
            "message": {"type": "string"},
        },
    },
    "Learnings": {
        "type": "object",
        "required": ["patterns", "improvements", "nextSteps"],
        "properties": {
            k: {"type": "array", "items": {"type": "string"}}
            for k in ("patterns", "improvements", "nextSteps")
        },
    },
}


def document() -> dict[str, Any]:
    task_list = {"type": "array", "items": _ref("Task")}
    paths: dict[str, Any] = {
        "/api/autonomous/execute": {"post": _op(
            "Start a task",
            {"202": _json(_ref("ExecuteAccepted"), "queued")},
            (400, 401, 403, 409, 413, 422, 429),
            body=_ref("ExecuteRequest"),
        )},
        "/api/autonomous/tasks": {"get": _op(
            "Live tasks",
            {"200": _json({"type": "object", "properties": {"tasks": task_list}}, "live tasks")},
            (400, 401, 403, 429),
            params=[_query("limit", "at most this many", 1, 1000)],
        )},
        "/api/autonomous/tasks/{id}": {"get": _op(
            "A task's record, with its approval requests and who decided them",
            {"200": _json(_ref("Task"), "the task")},
            (401, 403, 404, 429),
            params=[_TASK_ID],
        )},
        "/api/autonomous/stream/{id}": {"get": _op(
            "The task's events as Server-Sent Events (`id: <seq>`, `data: <event JSON>`); "
            "replays from the start or after Last-Event-ID, ends after the final event, "
            "a keep-alive comment every 15 s",
            {"200": {"description": "the event stream",
                     "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
            (400, 401, 403, 404, 429),
            params=[_TASK_ID, {"name": "Last-Event-ID", "in": "header", "required": False,
                               "description": "resume after this seq",
                               "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"}}],
        )},
        "/api/autonomous/approve/{id}": {"post": _op(
            "Decide the task's pending approval request(s); the first decider wins",
            {"200": _json(_ref("Done"), "decided")},
            (400, 401, 403, 404, 409, 413, 422, 429),
            params=[_TASK_ID],
            body=_ref("ApproveRequest"),
        )},
        "/api/autonomous/cancel/{id}": {"post": _op(
            "Cancel the task",
            {"202": _json(_ref("Done"), "cancel requested")},
            (401, 403, 404, 409, 413, 429),
            params=[_TASK_ID],
        )},
        "/api/autonomous/rollback/{id}": {"post": _op(
            "Undo the task exactly (never an operator's own change)",
            {"200": _json(_ref("Done"), "rolled back")},
            (400, 401, 403, 404, 409, 413, 422, 429),
            params=[_TASK_ID],
            body=_ref("RollbackRequest"),
            body_required=False,
        )},
        "/api/autonomous/history": {"get": _op(
            "Finished tasks, newest first",
            {"200": _json({"type": "object", "required": ["tasks"], "properties": {
                "tasks": task_list, "limit": {"type": "integer"}, "offset": {"type": "integer"},
                "hasMore": {"type": "boolean"}}}, "a page of history")},
            (400, 401, 403, 429),
            params=[_query("limit", "page size", 1, 1000),
                    _query("offset", "skip this many", 0, 10_000_000)],
        )},
        "/api/autonomous/learnings": {"get": _op(
            "What the agent has learned",
            {"200": _json(_ref("Learnings"), "learnings")},
            (401, 403, 429),
        )},
        "/api/autonomous/capabilities": {"get": _op(
            "The agent's tools and their policy",
            {"200": _json({"type": "object", "required": ["actions", "tools"], "properties": {
                "actions": {"type": "array", "items": {"type": "string"}},
                "tools": {"type": "array", "items": {"type": "object"}},
                "policyMode": {"type": "string"}}}, "capabilities")},
            (401, 403, 429),
        )},
        "/api/autonomous/metrics": {"get": _op(
            "Tasks, success rate, duration, cost and learnings per day",
            {"200": _json({"type": "object"}, "metrics")},
            (401, 403, 429),
        )},
        "/healthz": {"get": _op(
            "Liveness (no token needed)",
            {"200": _json({"type": "object", "required": ["status"], "properties": {
                "status": {"type": "string"}, "emergencyStop": {"type": "boolean"}}}, "alive")},
            (403, 503),
            secured=False,
        )},
        "/api/openapi.json": {"get": _op(
            "This document (no token needed)",
            {"200": _json({"type": "object"}, "the OpenAPI document")},
            (403,),
            secured=False,
        )},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Liv Hana Cockpit API",
            "version": API_VERSION,
            "description": "Run, watch, approve, cancel and roll back the autonomous coding "
            "agent. Bearer JWTs from `livhana-cockpit token create` (HS256); viewer tokens "
            "read only. Requests with an Origin header not in [api] allowed_origins are "
            "refused.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
