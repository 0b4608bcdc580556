"""What every endpoint shares: the API context, and the dependencies that authenticate the
caller, apply its rate limit and check its role."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.api.audit import AuditLog
from gateway.api.auth import Principal, TokenStore
from gateway.api.config import ApiConfig
from gateway.api.ratelimit import RateLimiter, retry_after
from gateway.api.responses import ApiError
from gateway.api.routing import CommandRouter
from gateway.reports.config import ReportsConfig


@dataclass
class ApiContext:
    """The API's state: its config, pool, tokens, limits, audit, (where the gateway runs
    listeners) the command router, and the ``[reports]`` rules of ``/v1/reports``."""

    cfg: ApiConfig
    pool: asyncpg.Pool
    tokens: TokenStore
    limiter: RateLimiter
    audit: AuditLog
    router: CommandRouter | None = None
    worker: int | None = None
    stats: dict[str, int] = field(default_factory=dict)
    reports: ReportsConfig = field(default_factory=ReportsConfig)

    def page_size(self, limit: int | None) -> int:
        """Rows per page: ``limit``, else ``[api] default_rows``; at most ``max_rows``."""
        return min(limit or self.cfg.default_rows, self.cfg.max_rows)


async def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(context)]

_bearer = HTTPBearer(
    auto_error=False,
    description="an API token (`silkgate token create`, or POST /v1/tokens): "
    "`Authorization: Bearer sgt_...`",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def principal(
    request: Request,
    ctx: Ctx,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller: a valid token (401 otherwise) within its rate limit (429 otherwise)."""
    if creds is None:
        raise ApiError(401, "missing bearer token", headers=_CHALLENGE)
    p = await ctx.tokens.authenticate(creds.credentials)
    if p is None:
        raise ApiError(401, "unknown, expired or revoked token", headers=_CHALLENGE)
    wait = ctx.limiter.take(p.token_id, p.rate_per_s, p.burst)
    if wait:
        raise ApiError(
            429,
            "rate limit exceeded",
            headers={"Retry-After": retry_after(wait)},
            retry_after_s=round(wait, 3),
        )
    request.state.principal = p
    return p


Caller = Annotated[Principal, Depends(principal)]


async def writer(p: Caller) -> Principal:
    """An admin or operator (403 for regulators: read only)."""
    if not p.can_write:
        raise ApiError(403, "a regulator token is read only")
    return p


async def admin(p: Caller) -> Principal:
    """An admin (403 otherwise)."""
    if p.role != "admin":
        raise ApiError(403, "admin only")
    return p


Writer = Annotated[Principal, Depends(writer)]
Admin = Annotated[Principal, Depends(admin)]


def peer(request: Request) -> str | None:
    """The client's address, ``ip:port``."""
    client = request.client
    return None if client is None else f"{client.host}:{client.port}"
