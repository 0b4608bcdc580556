"""What a :class:`Scope` covers, read from the device registry, with each device's report zone
(station, then operator, then ``[reports] timezone``, unless one is forced) and, for vehicles,
the reporting period; and :func:`site_days`, the batch loop of the charger and swap reports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from gateway.reports.config import ReportsConfig
from gateway.reports.intervals import Day, Progress, batched, local_days, valid_zone, zone
from gateway.reports.model import Scope
from gateway.reports.vehicle_calc import VehicleInfo
from gateway.store.conntype import Conn

T = TypeVar("T")
R = TypeVar("R")

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


def _site(r: Any, id_column: str, tz: str | None, settings: ReportsConfig) -> Site:
    """A charger's or station's registry row (zone: the station's, else the operator's)."""
    return Site(
        id=r[id_column],
        tz=_zone(tz, r["station_tz"], r["timezone"], default=settings.timezone),
        operator_id=r["operator_id"],
        station_id=r["station_id"],
    )


def _with_named(
    found: list[T], named: Iterable[str], key: Callable[[T], str], make: Callable[[str], T]
) -> list[T]:
    """``found`` and, for each id ``named`` that the registry lacks, ``make(id)``; by id."""
    known = {key(x) for x in found}
    out = found + [make(i) for i in dict.fromkeys(named) if i not in known]
    out.sort(key=key)
    return out


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
        default_tz = _zone(tz, default=settings.timezone)
        out = _with_named(
            out,
            scope.vins,
            lambda v: v.vin,
            lambda vin: VehicleInfo(
                vin=vin, tz=default_tz, interval_s=settings.reporting_interval_s
            ),
        )
    return out


async def chargers(
    conn: Conn, scope: Scope, settings: ReportsConfig, tz: str | None = None
) -> list[Site]:
    """The chargers of ``scope`` (``Site.id`` is the charger id)."""
    rows = await conn.fetch(_CHARGERS, scope.operator, list(scope.stations), list(scope.chargers))
    out = [_site(r, "charger_id", tz, settings) for r in rows]
    if scope.chargers and scope.operator is None and not scope.stations:
        default_tz = _zone(tz, default=settings.timezone)
        out = _with_named(out, scope.chargers, lambda s: s.id, lambda c: Site(id=c, tz=default_tz))
    return out


async def swap_stations(
    conn: Conn, scope: Scope, settings: ReportsConfig, tz: str | None = None
) -> list[Site]:
    """The swap (and mixed) stations of ``scope`` (``Site.id`` is the station id)."""
    rows = await conn.fetch(_STATIONS, scope.operator, list(scope.stations))
    out = [_site(r, "station_id", tz, settings) for r in rows]
    if scope.stations and scope.operator is None:
        default_tz = _zone(tz, default=settings.timezone)
        out = _with_named(
            out, scope.stations, lambda s: s.id, lambda i: Site(id=i, tz=default_tz, station_id=i)
        )
    return out


async def site_days(
    sites: Sequence[Site],
    batch_size: int,
    start_day: date,
    end_day: date,
    rows_of: Callable[
        [Sequence[Site], dict[str, list[Day]], datetime, datetime], Awaitable[list[R]]
    ],
    progress: Progress | None = None,
) -> list[R]:
    """The rows of ``sites``, a batch at a time: ``rows_of(batch, days, lo, hi)`` gets each
    site's local days (by ``Site.id``) and the UTC instants ``[lo, hi)`` covering them all;
    ``progress`` is told after each batch."""
    batches = batched(sites, batch_size)
    rows: list[R] = []
    for n, batch in enumerate(batches, 1):
        days = {s.id: local_days(start_day, end_day, s.tz) for s in batch}
        lo = min(d[0].start for d in days.values())
        hi = max(d[-1].end for d in days.values())
        rows += await rows_of(batch, days, lo, hi)
        if progress is not None:
            progress(n, len(batches))
    return rows
