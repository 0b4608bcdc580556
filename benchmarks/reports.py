"""Compliance reports at fleet scale: a month's vehicle report with and without the rollup.

The target is a month's daily report for 1,000 vehicles in under 10 s. At 30-second reporting
that month is 86 M realtime rows, more than this 2-core machine can load and scan in a
benchmark; the default scale is 1,000 vehicles x 30 days at 300 s instead (``--interval``),
each vehicle online 18 h a day (login 05:00, logout 23:00 local, two operators in Asia/Bangkok
and Asia/Dubai), with a 20-minute gap on one vehicle-day in ten, a 60-s level-3 alarm reported
every second on one in twenty, and 1 % reissued frames: about 6.6 M realtime rows. The raw
path's work grows with the rows (x10 at 30 s); the rollup path's with vehicles x days only.

Data goes in with COPY (asyncpg ``copy_records_to_table``) into a schema of its own named after
the scale, kept between runs: a second run with the same scale reuses it (``--fresh`` rebuilds).
Then, timed (median of ``--repeat`` runs):

* ``impl: raw``: ``vehicle_daily(..., rollups=False)``, every day from ``vehicle_realtime``;
* ``refresh``: ``refresh_vehicle_days`` building the rollup for the month;
* ``impl: rollup``: ``vehicle_daily(...)`` reading the rollup;
* the rendering of the rollup report's 30,000 rows as CSV, JSON, HTML and PDF;
* a month's charger report (``--chargers`` chargers, 2 connectors, a status change every
  2 h, a session every 4 h) and swap report (``--stations`` stations, 120 swaps a day).

Prints JSON lines (``bench`` names contain ``report``; ``seconds``; ``rows`` is the realtime
row count; the rollup line has ``vs: raw`` and ``ratio`` = raw seconds / rollup seconds;
``load``: the 1-minute load average when the line was printed).
Uses SILKGATE_DSN, or starts the local services with deploy/services.sh.

    .venv/bin/python benchmarks/reports.py [--vehicles 1000] [--days 30] [--interval 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg

from gateway.reports import (
    ReportsConfig,
    Scope,
    build_report,
    charger_daily,
    refresh_vehicle_days,
    render,
    swap_daily,
    vehicle_daily,
)
from gateway.store import connect, migrate
from gateway.store.testing import local_dsn, with_search_path

REPO = Path(__file__).resolve().parents[1]
START = date(2026, 1, 1)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
ZONES = ("Asia/Bangkok", "Asia/Dubai")
GBT = "gbt32960"
T = TypeVar("T")

REALTIME_COLUMNS = (
    "time",
    "vin",
    "received_at",
    "version",
    "reissue",
    "speed_kmh",
    "odometer_km",
    "total_voltage_v",
    "total_current_a",
    "soc_pct",
    "lon",
    "lat",
    "fix_valid",
    "alarm_level",
    "cell_count",
    "cell_voltages",
    "probe_count",
    "probe_temps",
)


def emit(**fields: Any) -> None:
    """One JSON line, with the 1-minute load average (2 cores: above 2, others ran too)."""
    print(json.dumps({**fields, "load": round(os.getloadavg()[0], 2)}), flush=True)


def vin(i: int) -> str:
    return f"LBENCHREPORT{i:05d}"


def _vehicle_rows(i: int, days: int, interval: int) -> Iterator[tuple[Any, ...]]:
    """One vehicle's realtime rows for ``days`` days, and nothing else."""
    rng = random.Random(i)
    tz = ZoneInfo(ZONES[i % len(ZONES)])
    odometer, lat, lon = 10_000.0 + i, 13.0 + i * 1e-3, 100.0 + i * 1e-3
    v = vin(i)
    for d in range(days):
        day = START + timedelta(days=d)
        login = datetime(day.year, day.month, day.day, 5, tzinfo=tz).astimezone(UTC)
        login += timedelta(seconds=rng.randrange(600))
        logout = datetime(day.year, day.month, day.day, 23, tzinfo=tz).astimezone(UTC)
        gap = None
        if rng.random() < 0.1:
            start = login + timedelta(seconds=rng.randrange(3600, 14 * 3600))
            gap = (start, start + timedelta(minutes=20))
        alarm = None
        if rng.random() < 0.05:
            start = login + timedelta(seconds=rng.randrange(3600, 14 * 3600) // interval * interval)
            alarm = (start, start + timedelta(seconds=60))
        t = login
        while t < logout:
            times = [t]
            if alarm is not None and t == alarm[0]:  # reported every second while it lasts
                times = [t + timedelta(seconds=k) for k in range(61)]
            elif alarm is not None and alarm[0] < t <= alarm[1]:
                times = []
            for ft in times:
                if gap is not None and gap[0] < ft < gap[1]:
                    continue
                in_alarm = alarm is not None and alarm[0] <= ft <= alarm[1]
                speed = rng.uniform(0, 80)
                odometer += speed * interval / 3600 if not in_alarm else speed / 3600
                lat += rng.uniform(-1e-3, 1e-3)
                lon += rng.uniform(-1e-3, 1e-3)
                yield (
                    ft,
                    v,
                    ft,
                    2016,
                    rng.random() < 0.01,
                    speed,
                    odometer,
                    620.0,
                    rng.uniform(-50, 150),
                    80 - d % 50,
                    lon,
                    lat,
                    True,
                    3 if in_alarm else 0,
                    0,
                    b"",
                    0,
                    b"",
                )
            t += timedelta(seconds=interval)


def _sessions(vehicles: int, days: int) -> Iterator[tuple[Any, ...]]:
    for i in range(vehicles):
        rng = random.Random(i)
        tz = ZoneInfo(ZONES[i % len(ZONES)])
        for d in range(days):
            day = START + timedelta(days=d)
            login = datetime(day.year, day.month, day.day, 5, tzinfo=tz).astimezone(UTC)
            login += timedelta(seconds=rng.randrange(600))
            logout = datetime(day.year, day.month, day.day, 23, tzinfo=tz).astimezone(UTC)
            yield (login, vin(i), GBT, "login", login)
            yield (logout, vin(i), GBT, "logout", logout)


def _chunks(items: Iterator[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _load_vehicles(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    rows = 0
    for i in range(0, args.vehicles, 50):
        batch = [
            r
            for v in range(i, min(i + 50, args.vehicles))
            for r in _vehicle_rows(v, args.days, args.interval)
        ]
        await conn.copy_records_to_table(
            "vehicle_realtime", records=batch, columns=REALTIME_COLUMNS
        )
        rows += len(batch)
        alarms = [
            (r[0], r[1], GBT, r[0], 3, 2, ["battery_high_temperature"], False)
            for r in batch
            if r[13] == 3
        ]
        await conn.copy_records_to_table(
            "alarms",
            records=alarms,
            columns=(
                "time",
                "device_id",
                "protocol",
                "received_at",
                "level",
                "flags",
                "names",
                "reissue",
            ),
        )
        done = min(i + 50, args.vehicles)
        print(f"loaded {done}/{args.vehicles} vehicles, {rows} rows", file=sys.stderr, flush=True)
    for chunk in _chunks(_sessions(args.vehicles, args.days), 100_000):
        await conn.copy_records_to_table(
            "vehicle_sessions",
            records=chunk,
            columns=("time", "device_id", "protocol", "event", "received_at"),
        )
    return rows


async def _load_chargers(conn: asyncpg.Connection, args: argparse.Namespace) -> None:
    statuses: list[tuple[Any, ...]] = []
    sessions: list[tuple[Any, ...]] = []
    meters: list[tuple[Any, ...]] = []
    cycle = ("Available", "Preparing", "Charging", "Finishing", "Available", "Faulted")
    for c in range(args.chargers):
        rng = random.Random(c)
        cid = f"BENCHCP{c:04d}"
        for connector in (1, 2):
            register = 0.0
            t = datetime.combine(START, datetime.min.time(), UTC) - timedelta(hours=1)
            end = t + timedelta(days=args.days, hours=2)
            k = 0
            while t < end:
                status = cycle[k % len(cycle)]
                code = "GroundFailure" if status == "Faulted" else "NoError"
                statuses.append((t, cid, connector, t, "ocpp1.6", status, code, "BENCHS"))
                if status == "Charging" and k % 2 == 0:
                    tid = f"{c}-{connector}-{k}"
                    wh = rng.uniform(20_000, 120_000)
                    start, stop = t, t + timedelta(hours=1)
                    for ev, et in (("start", start), ("stop", stop)):
                        sessions.append(
                            (
                                et,
                                cid,
                                tid,
                                ev,
                                et,
                                "ocpp1.6",
                                connector,
                                False,
                                register if ev == "start" else None,
                                register + wh if ev == "stop" else None,
                                wh if ev == "stop" else None,
                            )
                        )
                    for q in range(5):
                        mt = start + timedelta(minutes=15 * q)
                        meters.append(
                            (
                                mt,
                                cid,
                                connector,
                                "Energy.Active.Import.Register",
                                mt,
                                "ocpp1.6",
                                register + wh * q / 4,
                                "Wh",
                            )
                        )
                    register += wh
                k += 1
                t += timedelta(hours=2, minutes=rng.randrange(-20, 20))
    await conn.copy_records_to_table(
        "charger_status",
        records=statuses,
        columns=(
            "time",
            "charger_id",
            "connector_id",
            "received_at",
            "protocol",
            "status",
            "error_code",
            "station_id",
        ),
    )
    await conn.copy_records_to_table(
        "charging_sessions",
        records=sessions,
        columns=(
            "time",
            "charger_id",
            "transaction_id",
            "event",
            "received_at",
            "protocol",
            "connector_id",
            "id_tag_hashed",
            "meter_start_wh",
            "meter_stop_wh",
            "energy_wh",
        ),
    )
    await conn.copy_records_to_table(
        "meter_values",
        records=meters,
        columns=(
            "time",
            "charger_id",
            "connector_id",
            "measurand",
            "received_at",
            "protocol",
            "value",
            "unit",
        ),
    )


async def _load_swaps(conn: asyncpg.Connection, args: argparse.Namespace) -> None:
    swaps: list[tuple[Any, ...]] = []
    states: list[tuple[Any, ...]] = []
    for s in range(args.stations):
        rng = random.Random(s)
        sid = f"BENCHSWAP{s:03d}"
        t = datetime.combine(START, datetime.min.time(), UTC)
        states.append((t - timedelta(hours=1), sid, t, "operating", []))
        for n in range(args.days * 120):
            at = t + timedelta(seconds=n * 720 + rng.randrange(300))
            result = "success" if rng.random() < 0.95 else rng.choice(("failed", "aborted"))
            faults = [] if result == "success" else ["lock_error"]
            swaps.append(
                (
                    at,
                    sid,
                    n % 8 + 1,
                    at,
                    result,
                    f"{vin(n % 1000)}",
                    f"P{s}-{n % 40}",
                    f"P{s}-{(n + 7) % 40}",
                    rng.uniform(200, 400),
                    faults,
                    60_000.0,
                    250_000.0,
                )
            )
            if n % 240 == 100:
                states.append((at, sid, at, "maintenance", ["cooling"]))
                states.append((at + timedelta(minutes=30), sid, at, "operating", []))
    await conn.copy_records_to_table(
        "swap_events",
        records=swaps,
        columns=(
            "time",
            "station_id",
            "bay",
            "received_at",
            "result",
            "vin",
            "pack_out_id",
            "pack_in_id",
            "duration_s",
            "faults",
            "pack_out_energy_wh",
            "pack_in_energy_wh",
        ),
    )
    await conn.copy_records_to_table(
        "station_status",
        records=states,
        columns=("time", "station_id", "received_at", "state", "faults"),
    )


REGISTRY = """
INSERT INTO operators (operator_id, name, timezone) VALUES
    ('bench-th', 'Bench Bangkok', 'Asia/Bangkok'), ('bench-ae', 'Bench Dubai', 'Asia/Dubai');
INSERT INTO stations (station_id, operator_id, kind) VALUES ('BENCHS', 'bench-th', 'charging');
"""

DATA_TABLES = (
    "vehicle_realtime",
    "alarms",
    "vehicle_sessions",
    "charger_status",
    "charging_sessions",
    "meter_values",
    "swap_events",
    "station_status",
)
"""The tables the benchmark loads (ANALYZEd after loading)."""
SETUP_TABLES = (
    "report_vehicle_days",
    "bench_scale",
    "vehicles",
    "chargers",
    "stations",
    "operators",
)
"""The other tables a reload empties."""


async def _prepare(dsn: str, args: argparse.Namespace) -> tuple[str, int]:
    """The scale's schema, loaded (reused when already complete); its DSN and realtime rows."""
    schema = f"silkgate_bench_reports_{args.vehicles}v_{args.days}d_{args.interval}s"
    scale = {k: getattr(args, k) for k in ("vehicles", "days", "interval", "chargers", "stations")}
    admin = await connect(dsn)
    try:
        if args.fresh:
            await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    finally:
        await admin.close()
    scoped = with_search_path(dsn, schema)
    await migrate(scoped)
    conn = await connect(scoped)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_scale (scale jsonb, rows bigint)")
        done = await conn.fetchrow("SELECT scale, rows FROM bench_scale")
        if done is not None and json.loads(done["scale"]) == scale:
            return scoped, int(done["rows"])
        for table in (*DATA_TABLES, *SETUP_TABLES):
            await conn.execute(f"TRUNCATE {table} CASCADE")
        started = time.perf_counter()
        await conn.execute(REGISTRY)
        await conn.executemany(
            "INSERT INTO vehicles (vin, operator_id, reporting_interval_s) VALUES ($1, $2, $3)",
            [
                (vin(i), ("bench-th", "bench-ae")[i % 2], float(args.interval))
                for i in range(args.vehicles)
            ],
        )
        await conn.executemany(
            "INSERT INTO chargers (charger_id, operator_id, station_id, protocol) "
            "VALUES ($1, 'bench-th', 'BENCHS', 'ocpp1.6')",
            [(f"BENCHCP{c:04d}",) for c in range(args.chargers)],
        )
        await conn.executemany(
            "INSERT INTO stations (station_id, operator_id, kind) VALUES ($1, 'bench-th', 'swap')",
            [(f"BENCHSWAP{s:03d}",) for s in range(args.stations)],
        )
        rows = await _load_vehicles(conn, args)
        await _load_chargers(conn, args)
        await _load_swaps(conn, args)
        for table in DATA_TABLES:
            await conn.execute(f"ANALYZE {table}")  # a bare ANALYZE would do every schema
        await conn.execute("INSERT INTO bench_scale VALUES ($1, $2)", json.dumps(scale), rows)
        emit(
            bench="report-load",
            impl="copy",
            seconds=round(time.perf_counter() - started, 2),
            rows=rows,
        )
        return scoped, rows
    finally:
        await conn.close()


async def _timed(repeat: int, run: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await run()
        times.append(time.perf_counter() - started)
    assert result is not None
    return statistics.median(times), result


async def main_async(args: argparse.Namespace) -> None:
    dsn, rows = await _prepare(local_dsn(REPO), args)
    settings = ReportsConfig(reporting_interval_s=float(args.interval))
    end = START + timedelta(days=args.days - 1)
    conn = await connect(dsn)
    try:
        common = {
            "vehicles": args.vehicles,
            "days": args.days,
            "interval_s": args.interval,
            "rows": rows,
        }
        raw_s, raw = await _timed(
            args.raw_repeat,
            lambda: vehicle_daily(
                conn, Scope(), START, end, settings=settings, rollups=False, now=NOW
            ),
        )
        emit(
            bench="report-vehicles-month",
            impl="raw",
            seconds=round(raw_s, 3),
            vehicle_days=len(raw),
            **common,
        )
        refresh_s, written = await _timed(
            1, lambda: refresh_vehicle_days(conn, START, end, settings=settings, now=NOW)
        )
        emit(
            bench="report-vehicles-refresh",
            impl="rollup",
            seconds=round(refresh_s, 3),
            vehicle_days=written,
            **common,
        )
        rolled_s, rolled = await _timed(
            args.repeat,
            lambda: vehicle_daily(conn, Scope(), START, end, settings=settings, now=NOW),
        )
        assert {r.source for r in rolled} == {"rollup"}
        emit(
            bench="report-vehicles-month",
            impl="rollup",
            seconds=round(rolled_s, 3),
            vehicle_days=len(rolled),
            vs="raw",
            ratio=round(raw_s / rolled_s, 2),
            **common,
        )
        report = await build_report(
            conn, "vehicles", Scope(), START, end, settings=settings, now=NOW
        )
        for fmt in ("csv", "json", "html", "pdf"):
            started = time.perf_counter()
            body = render(report, fmt)
            emit(
                bench="report-vehicles-render",
                impl=fmt,
                seconds=round(time.perf_counter() - started, 3),
                bytes=len(body),
            )
        ch_s, ch = await _timed(
            args.repeat, lambda: charger_daily(conn, Scope(), START, end, now=NOW)
        )
        emit(
            bench="report-chargers-month",
            impl="raw",
            seconds=round(ch_s, 3),
            rows=len(ch),
            chargers=args.chargers,
        )
        sw_s, sw = await _timed(args.repeat, lambda: swap_daily(conn, Scope(), START, end, now=NOW))
        emit(
            bench="report-swap-month",
            impl="raw",
            seconds=round(sw_s, 3),
            rows=len(sw),
            stations=args.stations,
        )
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--interval", type=int, default=300, help="reporting period, seconds")
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--raw-repeat", type=int, default=1, help="runs of the raw report")
    parser.add_argument("--fresh", action="store_true", help="rebuild the data")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
