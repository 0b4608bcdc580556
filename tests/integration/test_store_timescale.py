"""TimescaleDB features by license: detection, Apache retention and rollups, community SQL.

The local server is Debian's Apache-licensed build, so the community migration cannot run here.
It is checked three ways instead: its syntax through the PL/pgSQL validator (which parses every
statement of a function body), its rollup queries by PREPARE (parse analysis: every table,
column and function resolved, nothing executed), and every statement run in a rolled-back
transaction, where the only error allowed is the license error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
import pytest

from gateway.records import ChargingSession, MeterValue, Position, VehicleRealtime
from gateway.store import write
from gateway.store.migrate import Migration, load
from gateway.store.testing import migrated_schema
from gateway.store.timescale import (
    APACHE,
    COMMUNITY,
    HYPERTABLES,
    ROLLUPS,
    LicenseError,
    apply_retention,
    detect_features,
    detect_license,
    features,
    refresh_rollups,
    retention_sql,
    run_retention,
)

if TYPE_CHECKING:
    from .conftest import Services

LICENSE_ERROR = re.compile(r'not supported under the current "apache" license')


@pytest.fixture(scope="module")
def dsn(services: Services) -> Iterator[str]:
    yield from migrated_schema(services.dsn)


def _rollups(variant: str) -> Migration:
    """Migration 0003, the rollups, in the license's variant."""
    return next(m for m in load(variant) if m.version == 3)


async def _row(conn: asyncpg.Connection, query: str, *args: object) -> asyncpg.Record:
    row = await conn.fetchrow(query, *args)
    assert row is not None, query
    return row


# --------------------------------------------------------------------------- license


def test_features_by_license() -> None:
    apache, community = features(APACHE), features(COMMUNITY)
    assert (apache.compression, apache.policies, apache.rollups) == (False, False, "materialized")
    assert (community.compression, community.policies, community.rollups) == (
        True,
        True,
        "continuous",
    )
    assert _rollups(apache.variant).name == "rollups.apache"
    assert _rollups(community.variant).name == "rollups.timescale"
    with pytest.raises(LicenseError, match="'community'"):
        features("community")


@pytest.mark.asyncio
async def test_detects_the_servers_license(conn: asyncpg.Connection, services: Services) -> None:
    license_ = await detect_license(conn)
    assert license_ == await conn.fetchval("SHOW timescaledb.license")
    if services.origin == "local":
        assert license_ == APACHE
        assert (await detect_features(conn)).rollups == "materialized"
        # No policies here: the scheduler runs run_retention() with the same ages instead.
        assert await apply_retention(conn, {"raw_frames": timedelta(days=90)}) is False


# --------------------------------------------------------------------------- Apache path


def _old_and_new_realtime(vin: str, now: datetime) -> list[VehicleRealtime]:
    old = datetime(2020, 1, 6, 12, tzinfo=UTC)
    return [
        VehicleRealtime(vin=vin, time=old + timedelta(minutes=i), version=2016) for i in range(3)
    ] + [VehicleRealtime(vin=vin, time=now - timedelta(minutes=i), version=2016) for i in range(2)]


@pytest.mark.asyncio
async def test_run_retention_drops_old_chunks(conn: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    vin = "LTESTRETENTION001"
    old_pos = Position(
        device_id=vin,
        protocol="gbt32960",
        time=datetime(2020, 1, 6, tzinfo=UTC),
        lat=None,
        lon=None,
        fix_valid=False,
    )
    async with conn.transaction():
        assert await write(conn, VehicleRealtime, _old_and_new_realtime(vin, now)) == 5
        assert await write(conn, Position, [old_pos]) == 1

    async def chunks(table: str) -> int:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM timescaledb_information.chunks "
            "WHERE hypertable_schema = current_schema() AND hypertable_name = $1",
            table,
        )
        return n

    assert await chunks("vehicle_realtime") >= 2
    dropped = await run_retention(conn, "vehicle_realtime", timedelta(days=30))
    assert len(dropped) == 1 and dropped[0].startswith("_timescaledb_internal.")
    times = await conn.fetch("SELECT time FROM vehicle_realtime WHERE vin = $1", vin)
    assert len(times) == 2 and all(r["time"] > now - timedelta(days=1) for r in times)
    assert await run_retention(conn, "vehicle_realtime", timedelta(days=30)) == []
    # An absolute cut-off works too.
    dropped = await run_retention(conn, "positions", datetime(2021, 1, 1, tzinfo=UTC))
    assert len(dropped) == 1 and await chunks("positions") == 0
    with pytest.raises(ValueError, match="not a silkgate hypertable"):
        await run_retention(conn, "vehicles", timedelta(days=1))


@pytest.mark.asyncio
async def test_refresh_rollups(conn: asyncpg.Connection) -> None:
    vin = "LTESTROLLUP000001"
    start = datetime(2025, 3, 1, 8, tzinfo=UTC)
    rows = [
        VehicleRealtime(
            vin=vin,
            time=start + timedelta(minutes=10 * i),  # 12 samples over two hours, 10 min apart
            version=2016,
            reissue=i == 3,
            odometer_km=1000.0 + i,
            soc_pct=80 - i,
            speed_kmh=60.0,
            total_voltage_v=600.0,
            total_current_a=100.0 if i < 6 else -50.0,  # 60 kW out, then 30 kW in
            alarm_level=2 if i == 7 else 0,
        )
        for i in range(12)
    ]
    register = [
        MeterValue(
            charger_id="CP-ROLLUP",
            time=start + timedelta(minutes=15 * i),
            connector_id=1,
            measurand="Energy.Active.Import.Register",
            value=10_000.0 + 5_000.0 * i,
            unit="Wh",
            protocol="ocpp1.6",
        )
        for i in range(8)
    ]
    stops = [
        ChargingSession(
            charger_id="CP-ROLLUP",
            transaction_id=str(i),
            time=start + timedelta(hours=i),
            event="stop",
            protocol="ocpp1.6",
            energy_wh=20_000.0 * (i + 1),
        )
        for i in range(2)
    ]
    async with conn.transaction():
        await write(conn, VehicleRealtime, rows)
        await write(conn, MeterValue, register)
        await write(conn, ChargingSession, stops)

    assert await refresh_rollups(conn) == list(ROLLUPS)  # first time: not yet populated
    hourly = await conn.fetch(
        "SELECT * FROM vehicle_realtime_hourly WHERE vin = $1 ORDER BY bucket", vin
    )
    assert [(r["frames"], r["reissued"]) for r in hourly] == [(6, 1), (6, 0)]
    assert [r["distance_km"] for r in hourly] == [5.0, 5.0]
    assert [r["max_alarm_level"] for r in hourly] == [0, 2]
    # 60 kW for 6 samples x 10 min = 60 kWh out in hour one; 30 kW x 1 h in during hour two.
    assert hourly[0]["energy_out_kwh"] == pytest.approx(60.0)
    assert hourly[0]["energy_in_kwh"] == pytest.approx(0.0)
    assert hourly[1]["energy_in_kwh"] == pytest.approx(30.0)

    await write(conn, VehicleRealtime, [VehicleRealtime(vin=vin, time=start, version=2016)])
    more = VehicleRealtime(vin=vin, time=start + timedelta(hours=3), version=2016, odometer_km=1020)
    await write(conn, VehicleRealtime, [more])
    await refresh_rollups(conn)  # populated now: CONCURRENTLY
    daily = await _row(conn, "SELECT * FROM vehicle_realtime_daily WHERE vin = $1", vin)
    assert (daily["frames"], daily["distance_km"], daily["max_alarm_level"]) == (13, 20.0, 2)

    energy = await conn.fetch(
        "SELECT energy_wh, samples FROM charging_energy_hourly WHERE charger_id = 'CP-ROLLUP' "
        "ORDER BY bucket"
    )
    assert [(r["energy_wh"], r["samples"]) for r in energy] == [(15_000.0, 4), (15_000.0, 4)]
    sessions = await _row(
        conn, "SELECT sessions, energy_wh FROM charging_energy_daily WHERE charger_id = 'CP-ROLLUP'"
    )
    assert (sessions["sessions"], sessions["energy_wh"]) == (2, 60_000.0)


# --------------------------------------------------------------------------- community SQL


def _community_sql() -> str:
    return _rollups(COMMUNITY).sql + "".join(
        retention_sql(t, timedelta(days=365)) for t in HYPERTABLES
    )


def _statements(sql: str) -> list[str]:
    """Split on semicolons that end a line (the community file promises no dollar quoting)."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*$", body, flags=re.M) if s.strip()]


@pytest.mark.asyncio
async def test_community_sql_parses(conn: asyncpg.Connection) -> None:
    sql = _community_sql()
    assert "$" not in sql
    async with conn.transaction():
        # 1. Syntax: PL/pgSQL validates a function body by parsing each statement in it.
        await conn.execute(
            "CREATE FUNCTION pg_temp.silkgate_parse_check() RETURNS void LANGUAGE plpgsql "
            f"AS $check$ BEGIN\n{sql}\nEND $check$"
        )
        with pytest.raises(asyncpg.PostgresSyntaxError):  # the check does catch syntax errors
            await conn.execute(
                "CREATE FUNCTION pg_temp.silkgate_parse_bad() RETURNS void LANGUAGE plpgsql "
                "AS $check$ BEGIN ALTER TABLE positions SET (a = ); END $check$"
            )


@pytest.mark.asyncio
async def test_community_rollup_queries_resolve(conn: asyncpg.Connection) -> None:
    queries = re.findall(r"\sAS\s+(SELECT\s.*?)\s+WITH NO DATA", _rollups(COMMUNITY).sql, re.S)
    assert len(queries) == len(ROLLUPS)
    for i, query in enumerate(queries):
        # PREPARE runs parse analysis (names, types, functions) without executing anything.
        await conn.execute(f"PREPARE silkgate_rollup_{i} AS {query}")
        await conn.execute(f"DEALLOCATE silkgate_rollup_{i}")


@pytest.mark.asyncio
async def test_community_sql_fails_only_on_the_license(conn: asyncpg.Connection) -> None:
    statements = _statements(_community_sql())
    assert len(statements) == 2 * 10 + 2 * len(ROLLUPS) + 2 * len(HYPERTABLES)
    errors: list[str] = []
    tr = conn.transaction()
    await tr.start()
    try:
        for i, statement in enumerate(statements):
            await conn.execute(f"SAVEPOINT s{i}")
            try:
                await conn.execute(statement)
            except asyncpg.FeatureNotSupportedError as e:
                assert LICENSE_ERROR.search(str(e)), (statement, e)
                errors.append(statement)
                await conn.execute(f"ROLLBACK TO SAVEPOINT s{i}")
            # any other error (unknown function, argument name, column, relation) fails the test
    finally:
        await tr.rollback()
    # Every statement needs the community license and was refused for it, for nothing else.
    assert errors == statements
