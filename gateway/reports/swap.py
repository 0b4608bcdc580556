"""The swap-station report (:func:`swap_daily`): per station and local day, the swaps by result,
their durations, failures and faults, the vehicles and battery packs seen, the energy handed to
vehicles and the time in each station state. Read from ``swap_events``, ``station_status``,
``battery_inventory`` and ``battery_charging``; rules in docs/reports.md, "Swap stations".
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from gateway.reports import scope as registry
from gateway.reports.config import ReportsConfig
from gateway.reports.intervals import (
    Day,
    Progress,
    pct,
    prepare,
    quantile,
    state_seconds,
)
from gateway.reports.model import Scope, SwapStationDay
from gateway.reports.scope import Site, site_days
from gateway.store.conntype import Conn

OPERATING = "operating"
BATCH_STATIONS = 200

_SWAPS = """
SELECT station_id, time, result, vin, pack_out_id, pack_in_id, duration_s, faults,
       pack_out_energy_wh, pack_in_energy_wh
FROM swap_events
WHERE station_id = ANY($1::text[]) AND time >= $2 AND time < $3
ORDER BY station_id, time
"""

_STATES = """
SELECT station_id, time, state, faults
FROM station_status
WHERE station_id = ANY($1::text[]) AND time >= $2 AND time < $3
UNION ALL
SELECT * FROM (
    SELECT DISTINCT ON (station_id) station_id, time, state, '{}'::text[]
    FROM station_status
    WHERE station_id = ANY($1::text[]) AND time < $2
    ORDER BY station_id, time DESC
) before
ORDER BY 1, 2
"""

_PACKS = """
SELECT p.station_id, (p.time AT TIME ZONE v.tz)::date AS day, array_agg(DISTINCT p.pack_id) AS packs
FROM unnest($1::text[], $2::text[]) AS v(station_id, tz)
JOIN (
    SELECT station_id, time, pack_id FROM battery_inventory
    WHERE station_id = ANY($1::text[]) AND pack_id IS NOT NULL AND time >= $3 AND time < $4
    UNION ALL
    SELECT station_id, time, pack_id FROM battery_charging
    WHERE station_id = ANY($1::text[]) AND pack_id IS NOT NULL AND time >= $3 AND time < $4
) p ON p.station_id = v.station_id
GROUP BY 1, 2
"""


@dataclass(slots=True)
class _Station:
    """Everything read about one station."""

    site: Site
    swaps: list[Any] = field(default_factory=list)  # swap_events records
    states: list[tuple[datetime, str, list[str]]] = field(default_factory=list)
    packs: dict[date, set[str]] = field(default_factory=dict)


def _count(into: dict[str, int], names: Sequence[str]) -> None:
    for name in names:
        into[name] = into.get(name, 0) + 1


def station_days(s: _Station, days: Sequence[Day], now: datetime) -> list[SwapStationDay]:
    """The rows of one station (pure: from what was read)."""
    rows: list[SwapStationDay] = []
    changes = [(t, state) for t, state, _ in s.states]
    for d in days:
        i = bisect.bisect_left(s.swaps, d.start, key=lambda r: r["time"])
        j = bisect.bisect_left(s.swaps, d.end, key=lambda r: r["time"])
        swaps = s.swaps[i:j]
        by_result: dict[str, int] = {}
        _count(by_result, [r["result"] for r in swaps])
        ok = [r for r in swaps if r["result"] == "success"]
        durations = [float(r["duration_s"]) for r in ok if r["duration_s"] is not None]
        swapped = {p for r in swaps for p in (r["pack_out_id"], r["pack_in_id"]) if p}
        energy = sum(
            (
                r["pack_in_energy_wh"] - r["pack_out_energy_wh"]
                for r in ok
                if r["pack_in_energy_wh"] is not None and r["pack_out_energy_wh"] is not None
            ),
            0.0,
        )
        swap_faults: dict[str, int] = {}
        for r in swaps:
            _count(swap_faults, r["faults"])
        station_faults: dict[str, int] = {}
        i = bisect.bisect_left(s.states, d.start, key=lambda x: x[0])
        j = bisect.bisect_left(s.states, d.end, key=lambda x: x[0])
        for _, _, faults in s.states[i:j]:
            _count(station_faults, faults)
        hi = max(min(d.end, now), d.start)
        state_s = state_seconds(changes, d.start, hi)
        known = sum((v for k, v in state_s.items() if k != "Unknown"), 0.0)
        failed = len(swaps) - by_result.get("success", 0)
        p50 = quantile(durations, 0.5)
        p95 = quantile(durations, 0.95)
        rows.append(
            SwapStationDay(
                station_id=s.site.id,
                operator_id=s.site.operator_id,
                day=d.day,
                tz=s.site.tz,
                swaps=len(swaps),
                succeeded=by_result.get("success", 0),
                failed=by_result.get("failed", 0),
                aborted=by_result.get("aborted", 0),
                failure_pct=pct(failed, len(swaps)),
                duration_mean_s=round(sum(durations) / len(durations), 3) if durations else None,
                duration_p50_s=None if p50 is None else round(p50, 3),
                duration_p95_s=None if p95 is None else round(p95, 3),
                duration_max_s=max(durations) if durations else None,
                vehicles=len({r["vin"] for r in swaps if r["vin"]}),
                packs_swapped=len(swapped),
                packs_seen=len(swapped | s.packs.get(d.day, set())),
                energy_swapped_wh=round(energy, 3),
                swap_faults=swap_faults,
                state_s=state_s,
                operating_pct=pct(state_s.get(OPERATING, 0.0), known),
                station_faults=station_faults,
            )
        )
    return rows


async def swap_daily(
    conn: Conn,
    scope: Scope,
    start_day: date,
    end_day: date,
    *,
    settings: ReportsConfig | None = None,
    tz: str | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> list[SwapStationDay]:
    """One :class:`SwapStationDay` per swap (or mixed) station of ``scope`` and local day,
    ordered by station and day."""
    settings, now = prepare(settings, start_day, end_day, now)
    sites = await registry.swap_stations(conn, scope, settings, tz)

    async def rows_of(
        batch: Sequence[Site], days: dict[str, list[Day]], lo: datetime, hi: datetime
    ) -> list[SwapStationDay]:
        stations = {s.id: _Station(s) for s in batch}
        ids = list(stations)
        for r in await conn.fetch(_SWAPS, ids, lo, hi):
            stations[r["station_id"]].swaps.append(r)
        for r in await conn.fetch(_STATES, ids, lo, hi):
            stations[r["station_id"]].states.append((r["time"], r["state"], list(r["faults"])))
        for r in await conn.fetch(_PACKS, ids, [s.tz for s in batch], lo, hi):
            stations[r["station_id"]].packs[r["day"]] = set(r["packs"])
        rows: list[SwapStationDay] = []
        for st in stations.values():
            rows += station_days(st, days[st.site.id], now)
        return rows

    return await site_days(sites, BATCH_STATIONS, start_day, end_day, rows_of, progress)
