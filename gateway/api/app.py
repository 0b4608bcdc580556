"""The API application: :func:`create_app` over an :class:`~gateway.api.deps.ApiContext`.

OpenAPI at ``/openapi.json``, interactive docs at ``/docs`` (both without a token; every
``/v1`` endpoint needs one). Errors are JSON ``{"detail": ...}``: 400 for a query the API
refuses, 401 / 403 / 404 for authentication, roles and scope, 422 for a bad body, 429 for the
rate limit, 503 when the database is away, 504 for a query over ``[api] query_timeout_s``.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from starlette.responses import Response

from gateway import __version__
from gateway.api import commands, devices, frames, queries, reports, tokens
from gateway.api.deps import ApiContext
from gateway.api.kinds import QueryError
from gateway.api.responses import ApiError, Json
from gateway.pipeline import is_outage

log = logging.getLogger("silkgate.api")

DESCRIPTION = """
silkgate's query and command API. Authenticate with an API token:
`Authorization: Bearer sgt_...` (`silkgate token create`). Roles: **admin** (everything),
**operator** (queries and commands for its own devices), **regulator** (read only, the vehicles
of its fleets). Every token has a rate limit (HTTP 429 with `Retry-After`). Times are UTC,
ISO 8601. See docs/api.md.
"""


def create_app(ctx: ApiContext) -> FastAPI:
    """The FastAPI application serving ``ctx``."""
    app = FastAPI(
        title="silkgate API",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        default_response_class=Json,
    )
    app.state.ctx = ctx
    app.add_middleware(BodyLimit, max_bytes=ctx.cfg.max_body_bytes)
    for module in (devices, queries, frames, commands, tokens, reports):
        app.include_router(module.router)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return exc.response()

    @app.exception_handler(QueryError)
    async def query_error(request: Request, exc: QueryError) -> Response:
        return Json({"detail": str(exc)}, 400)

    @app.exception_handler(asyncpg.QueryCanceledError)
    async def too_slow(request: Request, exc: asyncpg.QueryCanceledError) -> Response:
        limit = f"{ctx.cfg.query_timeout_s:g} s"
        return Json({"detail": f"the query ran longer than {limit}; narrow it"}, 504)

    @app.exception_handler(asyncpg.DataError)
    async def bad_value(request: Request, exc: asyncpg.DataError) -> Response:
        return Json({"detail": f"bad parameter: {exc}"}, 400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        if is_outage(exc):
            return Json({"detail": "the database is not available"}, 503, {"Retry-After": "5"})
        log.exception("%s %s failed", request.method, request.url.path)
        return Json({"detail": "internal error"}, 500)

    return app


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` (413) before the application reads them,
    and bodies of unknown length (411): JSON clients send a Content-Length."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            refusal: tuple[int, str] | None = None
            if length is None and b"chunked" in headers.get(b"transfer-encoding", b""):
                refusal = (411, "a request body needs a Content-Length")
            elif length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                refusal = (413, f"request body over {self.max_bytes} bytes")
            if refusal is not None:
                await Json({"detail": refusal[1]}, refusal[0])(scope, receive, send)
                return
        await self.app(scope, receive, send)
