"""``/v1/records``: time-range queries over every record kind, as raw rows (keyset pages) or
``time_bucket`` aggregates (:mod:`gateway.api.kinds`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Query, Request

from gateway.api import kinds as K
from gateway.api.deps import Caller, Ctx
from gateway.api.responses import COMMON_ERRORS, Json, error_doc
from gateway.api.scope import device_forms

router = APIRouter(prefix="/v1/records", tags=["records"])

_ROWS_PARAMS: Final = frozenset({"from", "to", "device", "limit", "cursor", "order"})
_AGG_PARAMS: Final = _ROWS_PARAMS | {"bucket", "columns", "aggs", "group_by", "per_device", "tz"}

From = Annotated[
    datetime | None,
    Query(alias="from", description="start, inclusive (ISO 8601; default: a day before `to`)"),
]
To = Annotated[datetime | None, Query(description="end, exclusive (ISO 8601; default: now)")]
Devices = Annotated[
    list[str] | None,
    Query(description="device ids (VIN, phone, charger or station id); repeat for several"),
]
Limit = Annotated[int | None, Query(ge=1, description="rows per page (default and maximum: [api])")]
Cursor = Annotated[str | None, Query(description="`next` of the previous page")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    **COMMON_ERRORS,
    400: error_doc("unknown kind, column or filter; bad cursor; too many buckets"),
}


def _filters(request: Request, allowed: frozenset[str]) -> dict[str, str]:
    """The query string's other parameters: the kind's equality filters."""
    return {k: v for k, v in request.query_params.items() if k not in allowed}


def _devices(k: K.Kind, device: list[str] | None) -> list[str] | None:
    if device is None:
        return None
    if k.device_class != "vehicle":
        return device
    return [form for d in device for form in device_forms(d)]


def _split(values: list[str] | None) -> list[str] | None:
    """``a,b`` and repeated parameters alike."""
    if values is None:
        return None
    return [v for item in values for v in item.split(",") if v]


@router.get("", summary="The record kinds and their columns", responses=COMMON_ERRORS)
async def list_kinds(p: Caller) -> Json:
    return Json({"kinds": K.catalog()})


@router.get(
    "/{kind}",
    summary="Raw rows of a record kind in a time range",
    description="Rows in `[from, to)` ordered by the kind's key (time, device, ...), one page "
    "at a time: pass the answer's `next` as `cursor` (with the same other parameters) for the "
    "next page; `next` is null on the last one. Any other query parameter is an equality "
    "filter on one of the kind's filter columns (`GET /v1/records` lists them), e.g. "
    "`measurand=Energy.Active.Import.Register`. Operators see their own devices, regulators "
    "their fleets' vehicles.",
    responses=_ERRORS,
)
async def rows(
    request: Request,
    ctx: Ctx,
    p: Caller,
    kind: str,
    start: From = None,
    to: To = None,
    device: Devices = None,
    limit: Limit = None,
    cursor: Cursor = None,
    order: Literal["asc", "desc"] = "asc",
) -> Json:
    k = K.kind(kind)
    begin, end = K.time_range(start, to)
    n = ctx.page_size(limit)
    q = K.rows_query(
        k,
        p,
        start=begin,
        end=end,
        devices=_devices(k, device),
        filters=_filters(request, _ROWS_PARAMS),
        cursor=cursor,
        order=order,
        limit=n,
    )
    async with ctx.pool.acquire() as conn:
        records = await conn.fetch(q.sql, *q.args)
    page, nxt = K.page(q, records, n)
    rows = [K.unpacked(k, r) for r in page] if k.unpack else [dict(r) for r in page]
    return Json({"kind": k.name, "rows": rows, "next": nxt})


@router.get(
    "/{kind}/aggregate",
    summary="Time-bucket aggregates of a record kind",
    description="Per `bucket` (a width: 30s, 15m, 1h, 1d, 1w, 1mo; `tz` aligns day buckets to "
    "a time zone) and per device (unless `per_device=false`) and per `group_by` column: "
    "`count` and, for each numeric column (`columns`, default all), `avg`, `min`, `max` and "
    "`last` (by time) or those of `aggs`. Buckets in `[from, to)`, paged like the rows. Other "
    "query parameters are equality filters, as for the rows.",
    responses=_ERRORS,
)
async def aggregate(
    request: Request,
    ctx: Ctx,
    p: Caller,
    kind: str,
    bucket: Annotated[str, Query(description="bucket width: 30s, 15m, 1h, 1d, 1w, 1mo")],
    start: From = None,
    to: To = None,
    device: Devices = None,
    columns: Annotated[list[str] | None, Query(description="numeric columns")] = None,
    aggs: Annotated[list[str] | None, Query(description="avg, min, max, last")] = None,
    group_by: Annotated[list[str] | None, Query(description="group-by columns")] = None,
    per_device: bool = True,
    tz: Annotated[str | None, Query(description="IANA time zone for the buckets")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Json:
    k = K.kind(kind)
    begin, end = K.time_range(start, to)
    width, seconds = K.bucket_width(bucket)
    if (end - begin).total_seconds() / seconds > ctx.cfg.max_buckets:
        raise K.QueryError(
            f"bucket: {bucket} over this range makes more than {ctx.cfg.max_buckets} buckets"
        )
    n = ctx.page_size(limit)
    q = K.aggregate_query(
        k,
        p,
        start=begin,
        end=end,
        width=width,
        tz=tz,
        columns=_split(columns),
        aggs=_split(aggs) or K.AGGS,
        group_by=_split(group_by) or (),
        per_device=per_device,
        devices=_devices(k, device),
        filters=_filters(request, _AGG_PARAMS),
        cursor=cursor,
        limit=n,
    )
    async with ctx.pool.acquire() as conn:
        records = await conn.fetch(q.sql, *q.args)
    page, nxt = K.page(q, records, n)
    return Json(
        {
            "kind": k.name,
            "bucket": width,
            "buckets": [K.nest_aggregates(r) for r in page],
            "next": nxt,
        }
    )
