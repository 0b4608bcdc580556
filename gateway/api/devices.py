"""``/v1/vehicles``, ``/v1/terminals``, ``/v1/chargers``, ``/v1/stations``: the device
registry with each device's latest state (latest realtime row and position of a vehicle, the
latest status of each charger connector, a swap station's latest status and bay inventory)
and whether it is connected now (to any worker process)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query

from gateway.api import kinds as K
from gateway.api.auth import Principal
from gateway.api.deps import ApiContext, Caller, Ctx
from gateway.api.responses import COMMON_ERRORS, ApiError, Json, error_doc
from gateway.api.scope import DeviceClass, phone_forms

router = APIRouter(prefix="/v1", tags=["devices"])
REALTIME: Final = K.kind("vehicle_realtime")

_ERRORS: dict[int | str, dict[str, Any]] = {
    **COMMON_ERRORS,
    404: error_doc("no such device, or not one the token may see"),
}


@dataclass(frozen=True)
class _Registry:
    table: str
    id: str
    cls: DeviceClass
    columns: str
    protocol: str | None  # for the "connected" question (None: not asked)


_VEHICLES: Final = _Registry(
    "vehicles",
    "vin",
    "vehicle",
    "vin, operator_id, fleet_id, plate, plate_country, make, model, model_year, battery_kwh, "
    "protocol_version, commissioned_at, decommissioned_at, attributes, created_at, updated_at",
    "gbt32960",
)
_TERMINALS: Final = _Registry(
    "terminals",
    "phone",
    "vehicle",
    "phone, operator_id, vin, protocol_version, manufacturer_id, terminal_model, terminal_id, "
    "plate, plate_color, registered_at, last_auth_at, attributes, created_at, updated_at",
    "jt808",
)
_CHARGERS: Final = _Registry(
    "chargers",
    "charger_id",
    "charger",
    "charger_id, operator_id, station_id, protocol, vendor, model, serial_number, "
    "firmware_version, connectors, max_power_kw, security_profile, attributes, created_at, "
    "updated_at",
    "ocpp",
)
_STATIONS: Final = _Registry(
    "stations",
    "station_id",
    "station",
    "station_id, operator_id, kind, name, lat, lon, address, timezone, bays, attributes, "
    "created_at, updated_at",
    None,
)

Operator = Annotated[str | None, Query(description="only this operator's devices")]
Limit = Annotated[int | None, Query(ge=1)]
Cursor = Annotated[str | None, Query(description="`next` of the previous page")]


async def _list(
    ctx: ApiContext,
    p: Principal,
    reg: _Registry,
    *,
    operator: str | None,
    extra: tuple[str, Any] | None,
    limit: int | None,
    cursor: str | None,
) -> Json:
    n = ctx.page_size(limit)
    params = K.Params()
    where: list[str] = []
    if operator is not None:
        where.append(f"d.operator_id = {params.add(operator)}")
    if extra is not None:
        where.append(f"d.{extra[0]} = {params.add(extra[1])}")
    scoped = params.scope(p, reg.cls, f"d.{reg.id}")
    if scoped is not None:
        where.append(scoped)
    tag = f"list:{reg.table}"
    if cursor is not None:
        (after,) = K.decode_cursor(cursor, tag, ["text"])
        where.append(f"d.{reg.id} > {params.add(after)}")
    sql = (
        f"SELECT {reg.columns} FROM {reg.table} d"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY d.{reg.id} LIMIT {params.add(n + 1)}"
    )
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch(sql, *params.values)
    nxt = K.encode_cursor(tag, [rows[n - 1][reg.id]]) if len(rows) > n else None
    return Json({"devices": [dict(r) for r in rows[:n]], "next": nxt})


async def _one(
    ctx: ApiContext,
    p: Principal,
    reg: _Registry,
    ids: list[str],
    state: Callable[[Any, str], Awaitable[dict[str, Any]]],
) -> Json:
    params = K.Params()
    where = f"d.{reg.id} = ANY({params.add(ids, 'text[]')})"
    scoped = params.scope(p, reg.cls, f"d.{reg.id}")
    if scoped is not None:
        where += f" AND {scoped}"
    async with ctx.pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {reg.columns} FROM {reg.table} d WHERE {where}", *params.values
        )
        if row is None:
            raise ApiError(404, f"no {reg.table[:-1]} {ids[0]!r}")
        device_id = row[reg.id]
        doc = {"device": dict(row), **await state(conn, device_id)}
    if reg.protocol is not None:
        doc["connected"] = await _connected(ctx, reg.protocol, device_id)
    return Json(doc)


async def _connected(ctx: ApiContext, protocol: str, device: str) -> bool | None:
    """Whether some worker holds the device now (None: no command service here)."""
    if ctx.router is None:
        return None
    return await ctx.router.where(protocol, device) is not None


# -- state queries --------------------------------------------------------------------------

_LATEST_REALTIME: Final = "SELECT * FROM vehicle_realtime WHERE vin = $1 ORDER BY time DESC LIMIT 1"
_LATEST_POSITION: Final = "SELECT * FROM positions WHERE device_id = $1 ORDER BY time DESC LIMIT 1"
_LATEST_SESSION: Final = (
    "SELECT * FROM vehicle_sessions WHERE device_id = $1 ORDER BY time DESC LIMIT 1"
)
_CONNECTORS: Final = """
SELECT DISTINCT ON (evse_id, connector_id) * FROM charger_status WHERE charger_id = $1
ORDER BY evse_id, connector_id, time DESC
"""
_STATION_STATUS: Final = (
    "SELECT * FROM station_status WHERE station_id = $1 ORDER BY time DESC LIMIT 1"
)
_INVENTORY: Final = """
SELECT * FROM battery_inventory
WHERE station_id = $1
  AND time = (SELECT max(time) FROM battery_inventory WHERE station_id = $1)
ORDER BY bay
"""


def _opt(row: Any) -> dict[str, Any] | None:
    return None if row is None else dict(row)


async def _vehicle_state(conn: Any, vin: str) -> dict[str, Any]:
    terminals = await conn.fetch(
        "SELECT phone, protocol_version, last_auth_at FROM terminals WHERE vin = $1 ORDER BY phone",
        vin,
    )
    realtime = await conn.fetchrow(_LATEST_REALTIME, vin)
    return {
        "terminals": [dict(t) for t in terminals],
        "latest_realtime": None if realtime is None else K.unpacked(REALTIME, realtime),
        "latest_position": _opt(await conn.fetchrow(_LATEST_POSITION, vin)),
        "latest_session_event": _opt(await conn.fetchrow(_LATEST_SESSION, vin)),
    }


async def _terminal_state(conn: Any, phone: str) -> dict[str, Any]:
    return {
        "latest_position": _opt(await conn.fetchrow(_LATEST_POSITION, phone)),
        "latest_session_event": _opt(await conn.fetchrow(_LATEST_SESSION, phone)),
    }


async def _charger_state(conn: Any, charger_id: str) -> dict[str, Any]:
    return {"connectors": [dict(r) for r in await conn.fetch(_CONNECTORS, charger_id)]}


async def _station_state(conn: Any, station_id: str) -> dict[str, Any]:
    chargers = await conn.fetch(
        "SELECT charger_id FROM chargers WHERE station_id = $1 ORDER BY charger_id", station_id
    )
    return {
        "latest_status": _opt(await conn.fetchrow(_STATION_STATUS, station_id)),
        "inventory": [dict(r) for r in await conn.fetch(_INVENTORY, station_id)],
        "chargers": [r["charger_id"] for r in chargers],
    }


# -- endpoints ----------------------------------------------------------------------------


@router.get("/vehicles", summary="Vehicles (registry)", responses=COMMON_ERRORS)
async def vehicles(
    ctx: Ctx,
    p: Caller,
    operator: Operator = None,
    fleet: Annotated[str | None, Query(description="only this fleet")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Json:
    extra = ("fleet_id", fleet) if fleet is not None else None
    return await _list(
        ctx, p, _VEHICLES, operator=operator, extra=extra, limit=limit, cursor=cursor
    )


@router.get(
    "/vehicles/{vin}",
    summary="A vehicle: registry, terminals, latest realtime row, position and session event",
    responses=_ERRORS,
)
async def vehicle(ctx: Ctx, p: Caller, vin: str) -> Json:
    return await _one(ctx, p, _VEHICLES, [vin], _vehicle_state)


@router.get("/terminals", summary="JT/T 808 terminals (registry)", responses=COMMON_ERRORS)
async def terminals(
    ctx: Ctx,
    p: Caller,
    operator: Operator = None,
    vin: Annotated[str | None, Query(description="only the terminals of this vehicle")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Json:
    extra = ("vin", vin) if vin is not None else None
    return await _list(
        ctx, p, _TERMINALS, operator=operator, extra=extra, limit=limit, cursor=cursor
    )


@router.get(
    "/terminals/{phone}",
    summary="A JT/T 808 terminal: registry, latest position and session event",
    description="The phone as the terminal sends it; leading zeros may be left out.",
    responses=_ERRORS,
)
async def terminal(ctx: Ctx, p: Caller, phone: str) -> Json:
    return await _one(ctx, p, _TERMINALS, phone_forms(phone), _terminal_state)


@router.get("/chargers", summary="Chargers (registry)", responses=COMMON_ERRORS)
async def chargers(
    ctx: Ctx,
    p: Caller,
    operator: Operator = None,
    station: Annotated[str | None, Query(description="only this station's chargers")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Json:
    extra = ("station_id", station) if station is not None else None
    return await _list(
        ctx, p, _CHARGERS, operator=operator, extra=extra, limit=limit, cursor=cursor
    )


@router.get(
    "/chargers/{charger_id}",
    summary="A charger: registry and the latest status of each connector",
    responses=_ERRORS,
)
async def charger(ctx: Ctx, p: Caller, charger_id: str) -> Json:
    return await _one(ctx, p, _CHARGERS, [charger_id], _charger_state)


@router.get("/stations", summary="Charging and swap stations (registry)", responses=COMMON_ERRORS)
async def stations(
    ctx: Ctx,
    p: Caller,
    operator: Operator = None,
    kind: Annotated[str | None, Query(description="charging, swap or mixed")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Json:
    extra = ("kind", kind) if kind is not None else None
    return await _list(
        ctx, p, _STATIONS, operator=operator, extra=extra, limit=limit, cursor=cursor
    )


@router.get(
    "/stations/{station_id}",
    summary="A station: registry, latest status and bay inventory (swap), its chargers",
    responses=_ERRORS,
)
async def station(ctx: Ctx, p: Caller, station_id: str) -> Json:
    return await _one(ctx, p, _STATIONS, [station_id], _station_state)
