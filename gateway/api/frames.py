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
from gateway.api.deps import ApiContext, Caller, Ctx
from gateway.api.responses import COMMON_ERRORS, Json, error_doc
from gateway.api.scope import device_forms
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


async def _archive(
    ctx: ApiContext,
    p: Principal,
    table: str,
    columns: str,
    *,
    start: datetime | None,
    to: datetime | None,
    device: str | None,
    equals: dict[str, str | None],
    cursor: str | None,
    order: Literal["asc", "desc"],
    limit: int | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of ``table`` (``raw_frames`` or ``dead_letters``) in ``[start, to)`` by
    ``received_at``, and the next page's cursor."""
    begin, end = K.time_range(start, to)
    params = K.Params()
    where = [f"received_at >= {params.add(begin)}", f"received_at < {params.add(end)}"]
    if device is not None:
        where.append(f"device_id = ANY({params.add(device_forms(device), 'text[]')})")
    for column, value in equals.items():
        if value is not None:
            where.append(f"{column} = {params.add(value)}")
    scoped = params.scope(p, "any", "device_id")
    if scoped is not None:
        where.append(scoped)
    return await K.keyset_page(
        ctx.pool,
        params,
        table=table,
        columns=columns,
        time_col="received_at",
        id_col="frame_id",
        id_type="uuid",
        where=where,
        cursor=cursor,
        order=order,
        limit=ctx.page_size(limit),
    )


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
    out, nxt = await _archive(
        ctx,
        p,
        "raw_frames",
        _FRAME_COLUMNS,
        start=start,
        to=to,
        device=device,
        equals={"protocol": protocol},
        cursor=cursor,
        order=order,
        limit=limit,
    )
    for doc in out:
        doc["hex"] = doc.pop("frame")  # bytea arrives as hex (gateway.api.db)
        if decode_frames:
            doc["decoded"], doc["decode_error"] = decode(doc["protocol"], bytes.fromhex(doc["hex"]))
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
    out, nxt = await _archive(
        ctx,
        p,
        "dead_letters",
        _DEAD_COLUMNS,
        start=start,
        to=to,
        device=device,
        equals={"reason": reason, "protocol": protocol},
        cursor=cursor,
        order=order,
        limit=limit,
    )
    for doc in out:
        doc["hex"] = doc.pop("raw")
    return Json({"dead_letters": out, "next": nxt})
