"""``/v1/frames`` (the raw archive, hex and decoded) and ``/v1/dead-letters`` (input that could
not be decoded, with its reason). Decoding is ``silkgate decode``'s: GB/T 32960 and JT/T 808
frames are decoded by the codecs and described like the CLI does (:func:`gateway.cli.describe`);
OCPP messages and swap-station JSON are parsed JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec
from fastapi import APIRouter, Query

from gateway.api import kinds as K
from gateway.api.auth import Principal
from gateway.api.deps import Caller, Ctx
from gateway.api.responses import COMMON_ERRORS, Json, error_doc
from gateway.api.scope import phone_forms, scope_sql
from gateway.codecs import gbt32960, jt808
from gateway.codecs.errors import ProtocolError

router = APIRouter(prefix="/v1", tags=["frames"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    **COMMON_ERRORS,
    400: error_doc("bad cursor or time range"),
}

From = Annotated[
    datetime | None,
    Query(alias="from", description="start, inclusive (ISO 8601; default: a day before `to`)"),
]
To = Annotated[datetime | None, Query(description="end, exclusive (ISO 8601; default: now)")]
Limit = Annotated[int | None, Query(ge=1)]
Cursor = Annotated[str | None, Query(description="`next` of the previous page")]
Device = Annotated[str | None, Query(description="VIN, phone, charger or station id")]

_FRAME_COLUMNS: Final = "received_at, frame_id, peer, protocol, version, device_id, frame"
_DEAD_COLUMNS: Final = (
    'received_at, frame_id, peer, protocol, reason, "offset", message, device_id, raw'
)


def decode(protocol: str, raw: bytes) -> tuple[Any, str | None]:
    """``(decoded, error)``: a frame described as ``silkgate decode`` prints it, or parsed
    JSON; ``(None, None)`` for protocols without a decoder here."""
    from gateway.cli import describe  # silkgate decode's; the CLI module imports much else

    try:
        if protocol == "gbt32960":
            return describe(gbt32960.decode_frame(raw)), None
        if protocol == "jt808":
            return describe(jt808.decode_frame(raw)), None
        if protocol.startswith("ocpp") or protocol == "silkgate-swap":
            msgspec.json.decode(raw)  # valid JSON: embedded as it is
            return msgspec.Raw(raw), None
    except ProtocolError as exc:
        return None, f"{exc.reason.value}: {exc.message}"
    except (msgspec.DecodeError, ValueError) as exc:
        return None, f"not_json: {exc}"
    return None, None


def _archive_query(
    table: str,
    columns: str,
    p: Principal,
    *,
    start: datetime,
    end: datetime,
    device: str | None,
    equals: dict[str, str | None],
    cursor: str | None,
    order: Literal["asc", "desc"],
    limit: int,
) -> K.Query:
    params = K.Params()
    where = [f"received_at >= {params.add(start)}", f"received_at < {params.add(end)}"]
    if device is not None:
        forms = phone_forms(device) if device.isdigit() else [device]
        where.append(f"device_id = ANY({params.add(forms, 'text[]')})")
    for column, value in equals.items():
        if value is not None:
            where.append(f"{column} = {params.add(value)}")
    scope = scope_sql(p, "any", f"${len(params.values) + 1}")
    if scope is not None:
        params.values.append(scope[1])
        where.append(f"device_id IN ({scope[0]})")
    tag = f"{table}:{order}"
    if cursor is not None:
        after = K.decode_cursor(cursor, tag, ["timestamptz", "text"])
        op = ">" if order == "asc" else "<"
        where.append(
            f"(received_at, frame_id) {op} ({params.add(after[0], 'timestamptz')}, "
            f"{params.add(after[1], 'uuid')})"
        )
    direction = "" if order == "asc" else " DESC"
    sql = (
        f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)} "
        f"ORDER BY received_at{direction}, frame_id{direction} LIMIT {params.add(limit + 1)}"
    )
    return K.Query(sql, params.values, tag, ["received_at", "frame_id"], [None, None])


def _page(q: K.Query, rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], K.encode_cursor(q.tag, [last["received_at"], str(last["frame_id"])])


@router.get(
    "/frames",
    summary="Raw frames as received, in hex and decoded",
    description="The archive (`raw_frames`) in `[from, to)`, oldest first (or `order=desc`), "
    "paged with `cursor`. `decode=false` leaves out the decoded form. Non-admin tokens see "
    "the frames of their devices only.",
    responses=_ERRORS,
)
async def frames(
    ctx: Ctx,
    p: Caller,
    device: Device = None,
    start: From = None,
    to: To = None,
    protocol: Annotated[str | None, Query(description="gbt32960, jt808, ocpp1.6, ...")] = None,
    decode_frames: Annotated[bool, Query(alias="decode")] = True,
    order: Literal["asc", "desc"] = "asc",
    limit: Limit = None,
    cursor: Cursor = None,
) -> Json:
    begin, end = K.time_range(start, to)
    n = min(limit or ctx.cfg.default_rows, ctx.cfg.max_rows)
    q = _archive_query(
        "raw_frames",
        _FRAME_COLUMNS,
        p,
        start=begin,
        end=end,
        device=device,
        equals={"protocol": protocol},
        cursor=cursor,
        order=order,
        limit=n,
    )
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch(q.sql, *q.args)
    page, nxt = _page(q, rows, n)
    out = []
    for r in page:
        doc = dict(r)
        doc["hex"] = doc.pop("frame")  # bytea arrives as hex (gateway.api.db)
        if decode_frames:
            doc["decoded"], doc["decode_error"] = decode(doc["protocol"], bytes.fromhex(doc["hex"]))
        out.append(doc)
    return Json({"frames": out, "next": nxt})


@router.get(
    "/dead-letters",
    summary="Input that could not be decoded, with the reason",
    description="`dead_letters` in `[from, to)`, filtered by `reason`, `protocol` and "
    "`device`; the raw bytes in hex. Dead letters whose device is unknown are shown to admin "
    "tokens only.",
    responses=_ERRORS,
)
async def dead_letters(
    ctx: Ctx,
    p: Caller,
    device: Device = None,
    start: From = None,
    to: To = None,
    reason: Annotated[str | None, Query(description="e.g. bad_checksum, not_json")] = None,
    protocol: str | None = None,
    order: Literal["asc", "desc"] = "asc",
    limit: Limit = None,
    cursor: Cursor = None,
) -> Json:
    begin, end = K.time_range(start, to)
    n = min(limit or ctx.cfg.default_rows, ctx.cfg.max_rows)
    q = _archive_query(
        "dead_letters",
        _DEAD_COLUMNS,
        p,
        start=begin,
        end=end,
        device=device,
        equals={"reason": reason, "protocol": protocol},
        cursor=cursor,
        order=order,
        limit=n,
    )
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch(q.sql, *q.args)
    page, nxt = _page(q, rows, n)
    out = []
    for r in page:
        doc = dict(r)
        doc["hex"] = doc.pop("raw")
        out.append(doc)
    return Json({"dead_letters": out, "next": nxt})
