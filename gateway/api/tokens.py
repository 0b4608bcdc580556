"""``/v1/tokens`` (admin): create, list and revoke API tokens; ``/v1/me``: the caller's own
token. Creations and revocations are audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth import Role, TokenError, TokenInfo
from gateway.api.deps import Admin, Caller, Ctx, peer
from gateway.api.responses import COMMON_ERRORS, ApiError, Json, error_doc

router = APIRouter(prefix="/v1", tags=["tokens"])

_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    **COMMON_ERRORS,
    403: error_doc("admin only"),
}


class TokenBody(BaseModel):
    """A token to create."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "acme dispatch", "role": "operator", "operator_id": "acme"},
                {"name": "transport ministry", "role": "regulator", "fleets": ["acme-north"]},
            ]
        },
    )

    role: Role
    name: str = Field(default="", max_length=200)
    operator_id: str | None = Field(default=None, description="operator tokens: the operator")
    fleets: list[str] = Field(default_factory=list, description="regulator tokens: the fleets")
    rate_per_s: float | None = Field(default=None, gt=0, description="default: [api] rate_per_s")
    burst: int | None = Field(default=None, ge=1, description="default: [api] burst")
    expires_at: datetime | None = None


@router.get("/me", summary="The caller's token: role, operator, fleets", responses=COMMON_ERRORS)
async def me(ctx: Ctx, p: Caller) -> Json:
    return Json(
        {
            "token_id": p.token_id,
            "name": p.name,
            "role": p.role,
            "operator_id": p.operator_id,
            "fleets": list(p.fleets),
            "rate_per_s": p.rate_per_s or ctx.cfg.rate_per_s,
            "burst": p.burst or ctx.cfg.burst,
        }
    )


@router.post(
    "/tokens",
    status_code=201,
    summary="Create a token (the token is in the answer, and only there)",
    responses={**_ADMIN_ERRORS, 422: error_doc("bad role, operator or fleets")},
)
async def create_token(request: Request, ctx: Ctx, p: Admin, body: TokenBody) -> Json:
    try:
        new = await ctx.tokens.create(
            role=body.role,
            name=body.name,
            operator_id=body.operator_id,
            fleets=body.fleets,
            rate_per_s=body.rate_per_s,
            burst=body.burst,
            expires_at=body.expires_at,
            created_by=p.token_id,
        )
    except TokenError as exc:
        raise ApiError(422, str(exc)) from None
    except asyncpg.ForeignKeyViolationError:
        raise ApiError(422, f"operator_id: no operator {body.operator_id!r}") from None
    await ctx.audit.record(
        p,
        action="token.create",
        peer=peer(request),
        request={
            "token_id": new.info.token_id,
            "role": body.role,
            "name": new.info.name,
            "operator_id": body.operator_id,
            "fleets": body.fleets,
        },
        result="created",
        http_status=201,
    )
    return Json({"token": new.token, **_info(new.info)}, 201)


def _info(info: TokenInfo) -> dict[str, Any]:
    doc: dict[str, Any] = msgspec.to_builtins(info)
    return doc


@router.get("/tokens", summary="Every token (never the secrets)", responses=_ADMIN_ERRORS)
async def list_tokens(ctx: Ctx, p: Admin, include_revoked: bool = False) -> Json:
    tokens = await ctx.tokens.list(include_revoked=include_revoked)
    return Json({"tokens": [_info(t) for t in tokens]})


@router.delete(
    "/tokens/{token_id}",
    summary="Revoke a token",
    description="Effective at once in this process and within `[api] token_cache_s` in the "
    "other worker processes.",
    responses={**_ADMIN_ERRORS, 404: error_doc("no such token, or revoked already")},
)
async def revoke_token(request: Request, ctx: Ctx, p: Admin, token_id: str) -> Json:
    revoked = await ctx.tokens.revoke(token_id)
    await ctx.audit.record(
        p,
        action="token.revoke",
        peer=peer(request),
        request={"token_id": token_id},
        result="revoked" if revoked else "not_found",
        http_status=200 if revoked else 404,
    )
    if not revoked:
        raise ApiError(404, f"no active token {token_id!r}")
    return Json({"token_id": token_id, "revoked": True})
