"""What a :class:`Scope` covers, read from the device registry, with each device's report zone
(station, then operator, then ``[reports] timezone``, unless one is forced) and, for vehicles,
the reporting period."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.reports.config import ReportsConfig
from gateway.reports.intervals import valid_zone, zone
from gateway.reports.model import Scope
from gateway.reports.vehicle_calc import VehicleInfo
from gateway.store.conntype import Conn

_VEHICLES = """
SELECT v.vin, v.operator_id, v.fleet_id, v.plate, v.reporting_interval_s, o.timezone
FROM vehicles v LEFT JOIN operators o USING (operator_id)
WHERE ($1::text IS NULL OR v.operator_id = $1)
  AND ($2::text IS NULL OR v.fleet_id = $2)
  AND (cardinality($3::text[]) = 0 OR v.vin = ANY($3))
  AND (cardinality($4::text[]) = 0 OR v.fleet_id = ANY($4))
ORDER BY v.vin
"""

_CHARGERS = """
SELECT c.charger_id, c.station_id, c.operator_id, s.timezone AS station_tz, o.timezone
FROM chargers c
LEFT JOIN stations s ON s.station_id = c.station_id
LEFT JOIN operators o ON o.operator_id = c.operator_id
WHERE ($1::text IS NULL OR c.operator_id = $1)
  AND (cardinality($2::text[]) = 0 OR c.station_id = ANY($2))
  AND (cardinality($3::text[]) = 0 OR c.charger_id = ANY($3))
ORDER BY c.charger_id
"""

_STATIONS = """
SELECT s.station_id, s.operator_id, s.timezone AS station_tz, o.timezone
FROM stations s LEFT JOIN operators o USING (operator_id)
WHERE s.kind IN ('swap', 'mixed')
  AND ($1::text IS NULL OR s.operator_id = $1)
  AND (cardinality($2::text[]) = 0 OR s.station_id = ANY($2))
ORDER BY s.station_id
"""


@dataclass(frozen=True, slots=True)
class Site:
    """A charger or swap station as the report sees it."""

    id: str
    tz: str
    operator_id: str | None = None
    station_id: str | None = None


def _zone(forced: str | None, *names: str | None, default: str) -> str:
    if forced:
        zone(forced)  # a bad forced zone is the caller's error
        return forced
    for name in names:
        if name:
            return valid_zone(name, default)
    return default


async def vehicles(
    conn: Conn, scope: Scope, settings: ReportsConfig, tz: str | None = None
) -> list[VehicleInfo]:
    """The vehicles of ``scope``; VINs it names that the registry lacks get the defaults."""
    rows = await conn.fetch(
        _VEHICLES, scope.operator, scope.fleet, list(scope.vins), list(scope.fleets)
    )
    out = [
        VehicleInfo(
            vin=r["vin"],
            tz=_zone(tz, r["timezone"], default=settings.timezone),
            interval_s=float(r["reporting_interval_s"] or settings.reporting_interval_s),
            operator_id=r["operator_id"],
            fleet_id=r["fleet_id"],
            plate=r["plate"],
        )
        for r in rows
    ]
    if scope.vins and scope.operator is None and scope.fleet is None and not scope.fleets:
        known = {v.vin for v in out}
        default_tz = _zone(tz, default=settings.timezone)
        out += [
            VehicleInfo(vin=vin, tz=default_tz, interval_s=settings.reporting_interval_s)
            for vin in dict.fromkeys(scope.vins)
            if vin not in known
        ]
        out.sort(key=lambda v: v.vin)
    return out


async def chargers(
    conn: Conn, scope: Scope, settings: ReportsConfig, tz: str | None = None
) -> list[Site]:
    """The chargers of ``scope`` (``Site.id`` is the charger id)."""
    rows = await conn.fetch(_CHARGERS, scope.operator, list(scope.stations), list(scope.chargers))
    out = [
        Site(
            id=r["charger_id"],
            tz=_zone(tz, r["station_tz"], r["timezone"], default=settings.timezone),
            operator_id=r["operator_id"],
            station_id=r["station_id"],
        )
        for r in rows
    ]
    if scope.chargers and scope.operator is None and not scope.stations:
        known = {s.id for s in out}
        default_tz = _zone(tz, default=settings.timezone)
        out += [Site(id=c, tz=default_tz) for c in dict.fromkeys(scope.chargers) if c not in known]
        out.sort(key=lambda s: s.id)
    return out


async def swap_stations(
    conn: Conn, scope: Scope, settings: ReportsConfig, tz: str | None = None
) -> list[Site]:
    """The swap (and mixed) stations of ``scope`` (``Site.id`` is the station id)."""
    rows = await conn.fetch(_STATIONS, scope.operator, list(scope.stations))
    out = [
        Site(
            id=r["station_id"],
            tz=_zone(tz, r["station_tz"], r["timezone"], default=settings.timezone),
            operator_id=r["operator_id"],
            station_id=r["station_id"],
        )
        for r in rows
    ]
    if scope.stations and scope.operator is None:
        known = {s.id for s in out}
        default_tz = _zone(tz, default=settings.timezone)
        out += [
            Site(id=s, tz=default_tz, station_id=s)
            for s in dict.fromkeys(scope.stations)
            if s not in known
        ]
        out.sort(key=lambda s: s.id)
    return out
