"""The ASGI app: routes, the browser gate, auth, rate limits, and one answer per failure.

No input gets a 5xx: every refusal is a `Problem` with its 4xx status. What is left is the
store failing (503, it says so) or a bug of ours (500, logged with its traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from agent.errors import CockpitError, StoreError

from . import routes
from .bodies import MAX_BODY, WHOLE
from .guard import BrowserCheck, RateLimit, Verified, bearer
from .openapi import document
from .problems import Problem
from .replies import refuse, reply
from .routes import BASE, Ctx
from .stream import Feeds

if TYPE_CHECKING:
    from agent.config import Config
    from agent.engine import Engine

    from .tokens import Principal

log = logging.getLogger(__name__)

Handler = Callable[[Ctx, Request, "Principal"], Awaitable[Response]]


class Gate:
    """Before any route: a foreign Origin, a non-loopback Host (on a loopback bind) or a
    declared body over the limit is refused here, for every path."""

    def __init__(self, app: ASGIApp, check: BrowserCheck) -> None:
        self.app = app
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            try:
                self.check.check(headers.get("origin"), headers.get("host"))
                declared = headers.get("content-length", "").strip()
                if WHOLE.match(declared) and int(declared) > MAX_BODY:
                    raise Problem(413, f"the request body is over {MAX_BODY // 1024} KB", field="body")
            except Problem as problem:
                await refuse(problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _wrap(ctx: Ctx, handler: Handler, *, act: bool) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            who = bearer(request.headers.get("authorization"), ctx.verify)
            ctx.limit.take(who.token_id)
            if act and not who.can_act:
                raise Problem(
                    403,
                    f"a {who.scope} token may only read; this needs an operator token "
                    "(`livhana-cockpit token create --scope operator`)",
                )
            return await handler(ctx, request, who)
        except Problem as problem:
            return refuse(problem)
        except StoreError as exc:
            return refuse(Problem(503, f"the store is unavailable: {exc}", headers={"Retry-After": "5"}))
        except CockpitError as exc:
            return refuse(Problem(409, str(exc)))
        except Exception:
            log.exception("API %s %s failed", request.method, request.url.path)
            return refuse(Problem(500, "internal error (logged); please report it"))

    endpoint.__name__ = handler.__name__
    return endpoint


def build_routes(ctx: Ctx) -> list[Route]:
    acting = {"execute", "approve", "cancel", "rollback"}
    table: list[tuple[str, Handler, str]] = [
        ("/execute", routes.execute, "POST"),
        ("/tasks", routes.live_tasks, "GET"),
        ("/tasks/{id}", routes.task_status, "GET"),
        ("/stream/{id}", routes.stream, "GET"),
        ("/approve/{id}", routes.approve, "POST"),
        ("/cancel/{id}", routes.cancel, "POST"),
        ("/rollback/{id}", routes.rollback, "POST"),
        ("/history", routes.history, "GET"),
        ("/learnings", routes.learnings, "GET"),
        ("/capabilities", routes.capabilities, "GET"),
        ("/metrics", routes.metrics, "GET"),
    ]
    out = [
        Route(BASE + path, _wrap(ctx, handler, act=handler.__name__ in acting), methods=[method])
        for path, handler, method in table
    ]

    async def healthz(request: Request) -> Response:
        try:
            stopped = (await ctx.engine.store.get_setting("emergency_stop", {}) or {}).get("engaged")
        except Exception as exc:
            return reply({"status": "unavailable", "error": str(exc)[:200]}, 503)
        return reply({"status": "ok", "emergencyStop": bool(stopped)})

    spec = document()

    async def openapi(request: Request) -> Response:
        return reply(spec)

    out.append(Route("/healthz", healthz, methods=["GET"]))
    out.append(Route("/api/openapi.json", openapi, methods=["GET"]))
    return out


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return refuse(Problem(404, f"no route {request.url.path[:200]} (see /api/openapi.json)"))
    if exc.status_code == 405:
        return refuse(
            Problem(405, f"{request.method} is not allowed on {request.url.path[:200]}",
                    headers=dict(exc.headers or {}))  # fmt: skip
        )
    return refuse(Problem(exc.status_code, str(exc.detail)))


def create_app(
    engine: Engine,
    config: Config,
    *,
    secret: str,
    workspace: str = "",
    loopback_only: bool = True,
) -> Any:
    api = config.api
    ctx = Ctx(
        engine=engine,
        secret=secret,
        verify=Verified(secret),
        limit=RateLimit(api.rate_limit, api.rate_burst),
        feeds=Feeds(engine),
        workspace=workspace,
        allowed=list(api.workspaces),
    )
    middleware = [Middleware(Gate, check=BrowserCheck(api.allowed_origins, loopback_only))]
    if api.allowed_origins:  # a trusted web UI: browsers need CORS answers to call us
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(api.allowed_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            )
        )
    app = Starlette(
        routes=build_routes(ctx),
        middleware=middleware,
        exception_handlers={404: _http_error, 405: _http_error},
    )
    app.state.ctx = ctx
    return app
