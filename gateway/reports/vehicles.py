"""The vehicle compliance report (:func:`vehicle_daily`) and its rollup
(:func:`refresh_vehicle_days`).

Vehicles are handled in batches: per batch one SQL pass makes the per-day summaries (from the
rollup where it has the day with the same zone and periods, else from the raw rows, in chunks
of days), one query reads the login / logout events, and :func:`.vehicle_calc.assemble` makes
the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import msgspec

from gateway.reports import scope as registry
from gateway.reports.config import ReportsConfig
from gateway.reports.intervals import Day, Progress, batched, local_days, prepare
from gateway.reports.model import Scope, VehicleDay
from gateway.reports.vehicle_calc import DaySummary, Rules, VehicleInfo, assemble
from gateway.reports.vehicle_sql import (
    ROLLUP_COLUMNS,
    Key,
    raw_summaries,
    rollup_record,
    rollup_summaries,
    session_events,
)
from gateway.store.conntype import Conn

BATCH_VEHICLES = 250
"""Vehicles per SQL pass: bounds the rows one window pass sorts."""

CHUNK_DAYS = 8
"""Days per raw SQL pass of a batch (the progress steps of long ranges)."""


def rules_of(settings: ReportsConfig) -> Rules:
    """The judgement parameters of a ``[reports]`` section."""
    return Rules(
        alarm_interval_s=settings.alarm_interval_s,
        tolerance=settings.interval_tolerance,
        gap_threshold_s=settings.gap_threshold_s,
        offline_after_s=settings.offline_after_s,
        min_completeness_pct=settings.min_completeness_pct,
    )


def _bounds(vehicles: Sequence[VehicleInfo], first: date, last: date) -> tuple[datetime, datetime]:
    """The UTC instants covering local days ``first`` to ``last`` in every vehicle's zone."""
    days = [local_days(first, last, tz) for tz in {v.tz for v in vehicles}]
    return min(d[0].start for d in days), max(d[-1].end for d in days)


def _chunks(start_day: date, end_day: date) -> list[tuple[date, date]]:
    out: list[tuple[date, date]] = []
    d = start_day
    while d <= end_day:
        e = min(d + timedelta(days=CHUNK_DAYS - 1), end_day)
        out.append((d, e))
        d = e + timedelta(days=1)
    return out


async def _raw(
    conn: Conn,
    vehicles: Sequence[VehicleInfo],
    start_day: date,
    end_day: date,
    settings: ReportsConfig,
    tick: Progress | None = None,
) -> dict[Key, DaySummary]:
    out: dict[Key, DaySummary] = {}
    chunks = _chunks(start_day, end_day)
    for i, (first, last) in enumerate(chunks, 1):
        lo, hi = _bounds(vehicles, first, last)
        out.update(
            await raw_summaries(
                conn,
                vehicles,
                lo,
                hi,
                first,
                last,
                settings.alarm_interval_s,
                settings.interval_tolerance,
            )
        )
        if tick is not None:
            tick(i, len(chunks))
    return out


async def vehicle_daily(
    conn: Conn,
    scope: Scope,
    start_day: date,
    end_day: date,
    *,
    settings: ReportsConfig | None = None,
    tz: str | None = None,
    rollups: bool = True,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> list[VehicleDay]:
    """One :class:`VehicleDay` per vehicle of ``scope`` and local day, ordered by VIN and day.

    ``rollups``: read the days the rollup holds (same zone and periods) from
    ``report_vehicle_days`` and only the others from the raw rows; False reads everything raw.
    """
    settings, now = prepare(settings, start_day, end_day, now)
    rules = rules_of(settings)
    vehicles = await registry.vehicles(conn, scope, settings, tz)
    batches = batched(vehicles, BATCH_VEHICLES)
    chunks = len(_chunks(start_day, end_day))
    steps = len(batches) * chunks
    rows: list[VehicleDay] = []
    for n, batch in enumerate(batches):

        def tick(i: int, total: int, base: int = n * chunks) -> None:
            if progress is not None:
                progress(base + i * chunks // total, steps)

        days = {v.vin: local_days(start_day, end_day, v.tz) for v in batch}
        summaries: dict[Key, DaySummary] = {}
        if rollups:
            summaries = await rollup_summaries(
                conn,
                batch,
                start_day,
                end_day,
                settings.alarm_interval_s,
                settings.interval_tolerance,
            )
        todo = [(v, d.day) for v in batch for d in days[v.vin] if (v.vin, d.day) not in summaries]
        if todo:
            missing = list({v.vin: v for v, _ in todo}.values())
            first, last = min(d for _, d in todo), max(d for _, d in todo)
            for key, summary in (await _raw(conn, missing, first, last, settings, tick)).items():
                summaries.setdefault(key, summary)
        lo, hi = _bounds(batch, start_day, end_day)
        events = await session_events(conn, [v.vin for v in batch], lo, hi)
        for v in batch:
            mine = {
                d.day: summaries[v.vin, d.day] for d in days[v.vin] if (v.vin, d.day) in summaries
            }
            rows += assemble(v, days[v.vin], mine, events.get(v.vin, []), rules, now)
        tick(1, 1)
    return rows


async def refresh_vehicle_days(
    conn: Conn,
    start_day: date,
    end_day: date,
    *,
    scope: Scope | None = None,
    settings: ReportsConfig | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> int:
    """Recompute the rollup rows of ``scope``'s vehicles for the complete local days from
    ``start_day`` to ``end_day`` (a day still running in a vehicle's zone is skipped), replacing
    the rows stored for them; returns the rows written. Each batch commits on its own."""
    settings, now = prepare(settings, start_day, end_day, now)
    vehicles = await registry.vehicles(conn, scope or Scope(), settings)
    batches = batched(vehicles, BATCH_VEHICLES)
    chunks = len(_chunks(start_day, end_day))
    written = 0
    for n, batch in enumerate(batches):

        def tick(i: int, total: int, n: int = n) -> None:
            if progress is not None:
                progress(n * chunks + i * chunks // total, len(batches) * chunks)

        summaries = await _raw(conn, batch, start_day, end_day, settings, tick)
        records = []
        for v in batch:
            complete: list[Day] = [d for d in local_days(start_day, end_day, v.tz) if d.end <= now]
            for d in complete:
                s = summaries.get((v.vin, d.day)) or DaySummary(day=d.day)
                records.append(
                    rollup_record(v, s, settings.alarm_interval_s, settings.interval_tolerance, now)
                )
        async with conn.transaction():
            await conn.execute(
                "DELETE FROM report_vehicle_days WHERE vin = ANY($1::text[]) "
                "AND day BETWEEN $2 AND $3",
                [v.vin for v in batch],
                start_day,
                end_day,
            )
            if records:
                await conn.copy_records_to_table(
                    "report_vehicle_days", records=records, columns=ROLLUP_COLUMNS
                )
        written += len(records)
    if progress is not None:
        progress(len(batches) * chunks, len(batches) * chunks)
    return written


async def refresh_recent(
    conn: Conn, settings: ReportsConfig | None = None, *, now: datetime | None = None
) -> int:
    """The scheduled refresh: the last ``settings.refresh_days`` complete days of every
    registered vehicle (a day still running in a vehicle's zone is skipped)."""
    settings = settings or ReportsConfig()
    # refresh_days + 2 UTC dates (zones ahead of and behind UTC), whatever max_days says
    span = settings.refresh_days + 2
    if span > settings.max_days:
        settings = msgspec.structs.replace(settings, max_days=span)
    now = now or datetime.now(UTC)
    today = now.date()
    start = today - timedelta(days=settings.refresh_days + 1)
    return await refresh_vehicle_days(conn, start, today, settings=settings, now=now)
