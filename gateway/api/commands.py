"""``/v1/commands``: commands to trucks (GB/T 32960, JT/T 808) and chargers (OCPP), answered
with the device's answer or, when it does not answer in time, HTTP 504 with the command id;
the stored commands; and ``/v1/audit``, the audit of the API.

Outcome -> HTTP status: the device answered (``accepted``, ``rejected``, ``failed``,
``unsupported``) 200; ``timeout`` 504; ``offline`` (not connected to any worker) 409;
``error`` (could not be sent, unreadable answer) 502. The body is always the command as stored
(``gateway.commands_types.CommandResult``) plus ``command_id`` and, with ``--workers``, the
``worker`` that sent it down.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api import kinds as K
from gateway.api.audit import PENDING, REFUSED, redact
from gateway.api.deps import Caller, Ctx, peer
from gateway.api.dispatch import CommandSpec, NotServed, check
from gateway.api.responses import COMMON_ERRORS, ApiError, Json, error_doc
from gateway.api.routing import PeerUnavailable
from gateway.api.scope import DeviceClass, device_forms, phone_forms, visible
from gateway.commands_types import CommandError, CommandResult

router = APIRouter(prefix="/v1", tags=["commands"])

HTTP_STATUS: Final[dict[str, int]] = {
    "accepted": 200,
    "rejected": 200,
    "failed": 200,
    "unsupported": 200,
    "timeout": 504,
    "offline": 409,
    "error": 502,
}


class CommandBody(BaseModel):
    """A command: the device, its protocol, the command and its arguments (docs/api.md lists
    every command and its arguments)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "device": "LGHC4V1D5MC000001",
                    "protocol": "gbt32960",
                    "command": "query_parameters",
                    "args": {"ids": ["0x01", "0x09"]},
                },
                {
                    "device": "13800138000",
                    "protocol": "jt808",
                    "command": "text",
                    "args": {"text": "return to depot"},
                },
                {
                    "device": "CP-1",
                    "protocol": "ocpp",
                    "command": "remote_start",
                    "args": {"id_tag": "04A2B3C4", "connector_id": 1},
                    "timeout_s": 20,
                },
            ]
        },
    )

    device: str = Field(min_length=1, max_length=128, description="VIN, phone or charger id")
    protocol: Literal["gbt32960", "jt808", "ocpp"]
    command: str = Field(description="query_parameters, set_parameters, control, remote_start...")
    args: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(
        default=None, gt=0, description="how long to wait for the device ([api] default)"
    )


_SEND_ERRORS: dict[int | str, dict[str, Any]] = {
    **COMMON_ERRORS,
    403: error_doc("a regulator token is read only"),
    404: error_doc("no such device, or not one the token may command"),
    409: error_doc("the device is not connected (status offline)"),
    422: error_doc("bad command or arguments"),
    502: error_doc("the command could not be sent or its answer read (status error)"),
    503: error_doc("commands are not served here or too many are waiting"),
    504: error_doc("no answer in time (status timeout); the body names the command id"),
}


def _doc(result: CommandResult, worker: int | None, detail: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = msgspec.to_builtins(result)
    doc["command_id"] = doc["id"]
    if worker is not None:
        doc["worker"] = worker
    if detail is not None:
        doc["detail"] = detail
    return doc


@router.post(
    "/commands",
    summary="Send a command to a truck or charger and wait for its answer",
    description="Sent from the worker process the device is connected to (any worker takes "
    "the request). 200 when the device answered (`status`: accepted, rejected, failed, "
    "unsupported); 504 when it did not answer within `timeout_s` (the body has `command_id`; "
    "`GET /v1/commands/{id}` shows the row); 409 when it is not connected. Every request is "
    "audited (`GET /v1/audit`).",
    responses=_SEND_ERRORS,
)
async def send_command(request: Request, ctx: Ctx, p: Caller, body: CommandBody) -> Json:
    started = time.perf_counter()
    timeout = body.timeout_s if body.timeout_s is not None else ctx.cfg.command_timeout_s
    audit: dict[str, Any] = {
        "action": "command",
        "peer": peer(request),
        "device_id": body.device,
        "protocol": body.protocol,
        "command": body.command,
        "request": {"args": redact(body.args), "timeout_s": timeout},
    }

    async def refuse(status: int, detail: str, **headers: str) -> ApiError:
        await ctx.audit.record(p, result=REFUSED, http_status=status, error=detail, **audit)
        return ApiError(status, detail, headers=headers)

    if not p.can_write:
        raise await refuse(403, "a regulator token is read only")
    if timeout > ctx.cfg.max_command_timeout_s:
        raise await refuse(422, f"timeout_s: at most {ctx.cfg.max_command_timeout_s:g}")
    spec = CommandSpec(
        device=body.device,
        protocol=body.protocol,
        command=body.command,
        args=body.args,
        timeout_s=timeout,
    )
    cls: DeviceClass = "charger" if body.protocol == "ocpp" else "vehicle"
    forms = phone_forms(body.device) if body.protocol == "jt808" else [body.device]
    async with ctx.pool.acquire() as conn:
        allowed = await visible(conn, p, cls, forms)
    if not allowed:
        raise await refuse(404, f"no device {body.device!r} this token may command")
    try:
        check(spec)
    except CommandError as exc:
        raise await refuse(422, str(exc)) from None
    if ctx.router is None:
        raise await refuse(503, "commands are not served by this process")
    audit_id = await ctx.audit.record(p, result=PENDING, http_status=0, **audit)

    async def fail(status: int, detail: str, result: str, **headers: str) -> ApiError:
        ms = (time.perf_counter() - started) * 1000
        await ctx.audit.finish(
            audit_id, result=result, http_status=status, error=detail, duration_ms=ms
        )
        return ApiError(status, detail, headers=headers)

    try:
        routed = await ctx.router.run(spec)
    except asyncio.CancelledError:  # the gateway is stopping: the audit says so
        await fail(503, "cancelled: the gateway stopped", "error")
        raise
    except CommandError as exc:
        raise await fail(422, str(exc), REFUSED) from None
    except NotServed as exc:
        headers = {"Retry-After": "1"} if exc.busy else {}
        raise await fail(503, str(exc), REFUSED, **headers) from None
    except PeerUnavailable as exc:
        raise await fail(502, str(exc), "error") from None
    result = routed.result
    status = HTTP_STATUS.get(result.status, 502)
    await ctx.audit.finish(
        audit_id,
        result=result.status,
        http_status=status,
        command_id=result.id,
        error=result.error,
        worker=routed.worker,
        duration_ms=(time.perf_counter() - started) * 1000,
    )
    detail = None
    if status == 504:
        detail = f"no answer within {timeout:g} s: command {result.id}"
    elif status == 409:
        detail = f"{body.device} is not connected"
    elif status == 502:
        detail = result.error or "the command failed in the gateway"
    where: dict[str, str] = {}
    if routed.worker is not None:  # which worker sent it down, which took the request
        where["X-Silkgate-Worker"] = str(routed.worker)
    if ctx.worker is not None:
        where["X-Silkgate-Api-Worker"] = str(ctx.worker)
    return Json(_doc(result, routed.worker, detail), status, headers=where)


_COMMAND_COLUMNS: Final = (
    "id, device_id AS device, protocol, command, request, status, reply, created_at, sent_at, "
    "replied_at, error"
)


@router.get(
    "/commands/{command_id}",
    summary="A stored command and its outcome (status pending while it waits)",
    responses={**COMMON_ERRORS, 404: error_doc("no such command (or not the token's)")},
)
async def get_command(ctx: Ctx, p: Caller, command_id: uuid.UUID) -> Json:
    params = K.Params()
    where = [f"id = {params.add(command_id)}"]
    scoped = params.scope(p, "any", "device_id")
    if scoped:
        where.append(scoped)
    async with ctx.pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {_COMMAND_COLUMNS} FROM commands WHERE {' AND '.join(where)}",
            *params.values,
        )
    if row is None:
        raise ApiError(404, f"no command {command_id}")
    return Json(dict(row))


Limit = Annotated[int | None, Query(ge=1)]
Cursor = Annotated[str | None, Query(description="`next` of the previous page")]
From = Annotated[datetime | None, Query(alias="from", description="default: a day before `to`")]
To = Annotated[datetime | None, Query(description="default: now")]


@router.get(
    "/commands",
    summary="Stored commands, newest first",
    responses=COMMON_ERRORS,
)
async def list_commands(
    ctx: Ctx,
    p: Caller,
    device: Annotated[str | None, Query(description="VIN, phone or charger id")] = None,
    status: Annotated[str | None, Query(description="accepted, timeout, offline, ...")] = None,
    start: From = None,
    to: To = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Json:
    begin, end = K.time_range(start, to)
    params = K.Params()
    where = [f"created_at >= {params.add(begin)}", f"created_at < {params.add(end)}"]
    if device is not None:
        where.append(f"device_id = ANY({params.add(device_forms(device), 'text[]')})")
    if status is not None:
        where.append(f"status = {params.add(status)}")
    scoped = params.scope(p, "any", "device_id")
    if scoped:
        where.append(scoped)
    rows, nxt = await K.keyset_page(
        ctx.pool,
        params,
        table="commands",
        columns=_COMMAND_COLUMNS,
        time_col="created_at",
        id_col="id",
        id_type="uuid",
        where=where,
        cursor=cursor,
        order="desc",
        limit=ctx.page_size(limit),
    )
    return Json({"commands": rows, "next": nxt})


@router.get(
    "/audit",
    summary="The audit: commands (sent and refused) and token management, newest first",
    description="Admins see every row, operators the rows of their operator's tokens; "
    "regulators get 403.",
    responses={**COMMON_ERRORS, 403: error_doc("regulator tokens cannot read the audit")},
)
async def audit_rows(
    ctx: Ctx,
    p: Caller,
    device: str | None = None,
    token_id: str | None = None,
    action: Annotated[str | None, Query(description="command, token.create, token.revoke")] = None,
    start: From = None,
    to: To = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Json:
    if p.role == "regulator":
        raise ApiError(403, "regulator tokens cannot read the audit")
    begin, end = K.time_range(start, to)
    params = K.Params()
    where = [f"at >= {params.add(begin)}", f"at < {params.add(end)}"]
    for column, value in (("device_id", device), ("token_id", token_id), ("action", action)):
        if value is not None:
            where.append(f"{column} = {params.add(value)}")
    if p.role == "operator":
        where.append(f"operator_id = {params.add(p.operator_id)}")
    rows, nxt = await K.keyset_page(
        ctx.pool,
        params,
        table="api_audit",
        columns="*",
        time_col="at",
        id_col="audit_id",
        id_type="int8",
        where=where,
        cursor=cursor,
        order="desc",
        limit=ctx.page_size(limit),
    )
    return Json({"audit": rows, "next": nxt})
