"""The COPY writer against the real TimescaleDB: round trips, NULLs, packed cells, dedup, vectors.

Every test runs twice: rows encoded by the C binary COPY encoder and by asyncpg.

One migrated throw-away schema for the module (gateway.store.testing.migrated_schema).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, uuid4, uuid5

import asyncpg
import msgspec
import pytest

from gateway.codecs.errors import ProtocolError
from gateway.codecs.gbt32960 import reference as gbt_ref
from gateway.codecs.jt808 import reference as jt_ref
from gateway.normalize import normalize
from gateway.records import (
    Alarm,
    BatteryCharging,
    BatteryInventory,
    ChargerEvent,
    ChargerStatus,
    ChargingSession,
    CustomBlock,
    DeadLetter,
    MeterValue,
    Motor,
    Position,
    RawFrame,
    SessionEvent,
    StationStatus,
    StoredRecord,
    SwapEvent,
    VehicleRealtime,
)
from gateway.store import create_pool, write
from gateway.store.tables import SPECS, TABLES
from gateway.store.testing import migrated_schema

if TYPE_CHECKING:
    from .conftest import Services

VECTORS = Path("/work/shared/vectors")
T0 = datetime(2025, 10, 11, 11, 8, 18, tzinfo=UTC)
RECEIVED = datetime(2025, 10, 11, 11, 8, 19, 250000, tzinfo=UTC)


@pytest.fixture(scope="module")
def dsn(services: Services, encoding: str) -> Iterator[str]:
    yield from migrated_schema(services.dsn)


@pytest.fixture(scope="module", autouse=True, params=["c-encoder", "asyncpg"])
def encoding(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test runs with both row encodings, each in its own schema: the C binary COPY
    encoder, and asyncpg's own (``SILKGATE_NO_EXTENSIONS=1``, read by the writer at each write)."""
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "asyncpg":
            mp.setenv("SILKGATE_NO_EXTENSIONS", "1")
        else:
            mp.delenv("SILKGATE_NO_EXTENSIONS", raising=False)
        yield str(request.param)


async def _row(conn: asyncpg.Connection, query: str, *args: object) -> asyncpg.Record:
    row = await conn.fetchrow(query, *args)
    assert row is not None, query
    return row


# --------------------------------------------------------------------------- helpers


def _cells(*mv: int) -> bytes:
    return struct.pack(f">{len(mv)}H", *mv)


def _full_records(vin: str = "LTESTFULL00000001") -> list[StoredRecord]:
    """One record of every type with every field set."""
    return [
        VehicleRealtime(
            vin=vin,
            time=T0,
            version=2016,
            reissue=False,
            vehicle_state=1,
            charge_state=3,
            run_mode=1,
            speed_kmh=12.2,
            odometer_km=258.9,
            total_voltage_v=780.9,
            total_current_a=-5.1,
            soc_pct=85,
            dcdc_state=1,
            gear=14,
            braking_force=True,
            driving_force=False,
            insulation_kohm=6553,
            accelerator_pct=3,
            brake_pct=16,
            brake_on=True,
            motors=[Motor(number=1, state=1, speed_rpm=857, torque_nm=-32.5)],
            engine_state=2,
            crank_speed_rpm=1500,
            fuel_rate=12.5,
            lon=101.686855,
            lat=3.139003,
            fix_valid=True,
            coord_system=0,
            max_cell_v=4.063,
            min_cell_v=4.06,
            max_temp_c=18,
            min_temp_c=16,
            alarm_level=2,
            alarm_flags=0x80000001,
            fault_count=1,
            pack_voltage_v=780.9,
            pack_current_a=-5.1,
            cell_total=4,
            cell_start=1,
            cell_count=4,
            cell_voltages=_cells(4061, 4063, 4060, 4062),
            cell_v_min=4.06,
            cell_v_max=4.063,
            cell_v_mean=4.0615,
            probe_count=2,
            probe_temps=bytes([56, 58]),
            temp_min_c=16,
            temp_max_c=18,
            temp_mean_c=17.0,
            extra={"fuel_cell": {"voltage_v": 320.5}},
            custom_blocks=[CustomBlock(0x80, b"\x01\x02\xff")],
            quality={"engine.fuel_rate": "abnormal"},
            received_at=RECEIVED,
        ),
        Position(
            device_id=f"P{vin}",
            protocol="jt808",
            time=T0,
            lat=3.139003,
            lon=101.686855,
            fix_valid=True,
            reissue=True,
            altitude_m=-12,
            speed_kmh=61.5,
            heading_deg=359,
            odometer_km=123456.7,
            alarm_flags=0xFFFFFFFF,
            status_flags=0x0C0003,
            coord_system=1,
            extra={"FuelLevel": {"litres": 5.5}},
            received_at=RECEIVED,
        ),
        Alarm(
            device_id=vin,
            protocol="gbt32960",
            time=T0,
            level=3,
            flags=0x7FFFF,
            names=["temperature_difference", "battery_high_temperature"],
            fault_codes={"battery": [1, 2, 0xFFFFFFFF]},
            reissue=True,
            received_at=RECEIVED,
        ),
        SessionEvent(
            device_id=vin,
            protocol="gbt32960",
            time=T0,
            event="login",
            serial=65535,
            detail={"iccid": "89860000000000000001", "codes": ["A", "B"]},
            received_at=RECEIVED,
        ),
        ChargerStatus(
            charger_id=f"CP-{vin}",
            time=T0,
            connector_id=2,
            status="Faulted",
            protocol="ocpp2.0.1",
            evse_id=1,
            error_code="GroundFailure",
            vendor_error_code="E042",
            vendor_id="com.example",
            info="ground fault on gun 2",
            station_id="ST-KL-01",
            received_at=RECEIVED,
        ),
        MeterValue(
            charger_id=f"CP-{vin}",
            time=T0,
            connector_id=1,
            measurand="Voltage",
            value=230.4,
            unit="V",
            protocol="ocpp1.6",
            evse_id=None,
            transaction_id="17",
            phase="L1-N",
            location="Outlet",
            context="Sample.Periodic",
            station_id="ST-KL-01",
            received_at=RECEIVED,
        ),
        ChargingSession(
            charger_id=f"CP-{vin}",
            transaction_id="17",
            time=T0 + timedelta(hours=1),
            event="stop",
            protocol="ocpp1.6",
            connector_id=1,
            evse_id=None,
            id_tag="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            id_tag_hashed=True,
            started_at=T0,
            stopped_at=T0 + timedelta(hours=1),
            meter_start_wh=1_000_000.0,
            meter_stop_wh=1_120_500.0,
            energy_wh=120_500.0,
            soc_start_pct=20.0,
            soc_pct=80.5,
            stop_reason="EVDisconnected",
            station_id="ST-KL-01",
            extra={"vendor": {"max_power_w": 360000}},
            received_at=RECEIVED,
        ),
        ChargerEvent(
            charger_id=f"CP-{vin}",
            time=T0,
            event="security_event",
            protocol="ocpp2.0.1",
            key="FirmwareUpdated:v2",
            detail={"type": "FirmwareUpdated", "techInfo": "v2", "nested": [1, "x", None]},
            station_id="ST-KL-01",
            received_at=RECEIVED,
        ),
        SwapEvent(
            station_id=f"SW-{vin}",
            time=T0,
            result="success",
            bay=2,
            swap_id="20251011-0042",
            vin=vin,
            pack_out_id="PK-OUT-1",
            pack_out_soc_pct=12.5,
            pack_out_energy_wh=35_000.0,
            pack_in_id="PK-IN-7",
            pack_in_soc_pct=98.0,
            pack_in_energy_wh=275_000.0,
            duration_s=312.5,
            faults=["lock_retry"],
            extra={"robot": "R2"},
            received_at=RECEIVED,
        ),
        StationStatus(
            station_id=f"SW-{vin}",
            time=T0,
            state="operating",
            bays_total=10,
            bays_available=4,
            batteries_charged=4,
            batteries_charging=5,
            power_w=612_500.0,
            faults=["COOLING_FAN_2"],
            extra={"firmware": "2.4.1"},
            received_at=RECEIVED,
        ),
        BatteryInventory(
            station_id=f"SW-{vin}",
            time=T0,
            bay=3,
            state="ready",
            pack_id="PK-IN-7",
            soc_pct=97.5,
            soh_pct=98.25,
            energy_wh=273_540.0,
            temperature_c=-5.5,
            received_at=RECEIVED,
        ),
        BatteryCharging(
            station_id=f"SW-{vin}",
            time=T0,
            bay=2,
            state="charging",
            pack_id="PK-OUT-1",
            soc_pct=41.5,
            power_w=120_500.0,
            voltage_v=702.5,
            current_a=-171.5,
            energy_wh=64_300.0,
            temperature_c=33.0,
            received_at=RECEIVED,
        ),
        RawFrame(
            frame_id=uuid5(NAMESPACE_URL, f"raw/{vin}"),
            received_at=RECEIVED,
            peer="203.0.113.7:50012",
            protocol="gbt32960",
            frame=b"##\x02\xfe" + bytes(range(256)),
            version="2016",
            device_id=vin,
        ),
        DeadLetter(
            frame_id=uuid5(NAMESPACE_URL, f"dead/{vin}"),
            received_at=RECEIVED,
            peer="203.0.113.7:50012",
            protocol="jt808",
            reason="BAD_CHECKSUM",
            message="checksum 0x12, computed 0xAB",
            raw=b"~\x02\x00\x00~",
            offset=52,
            device_id="013800138000",
        ),
    ]


def _sparse_records(vin: str = "LTESTSPARSE000001") -> list[StoredRecord]:
    """One record of every type with only the required fields (optional ones NULL)."""
    return [
        VehicleRealtime(
            vin=vin,
            time=T0,
            version=2025,
            quality={"speed_kmh": "invalid", "soc_pct": "abnormal"},
        ),
        Position(device_id=vin, protocol="gbt32960", time=T0, lat=None, lon=None, fix_valid=False),
        Alarm(device_id=vin, protocol="gbt32960", time=T0, level=None, flags=0, names=[]),
        SessionEvent(
            device_id=f"P{vin}",
            protocol="jt808",
            time=None,  # stored as its receive time
            event="auth",
            received_at=RECEIVED,
        ),
        ChargerStatus(
            charger_id=f"CP-{vin}", time=T0, connector_id=0, status="Available", protocol="ocpp1.6"
        ),
        MeterValue(
            charger_id=f"CP-{vin}",
            time=T0,
            connector_id=1,
            measurand="Energy.Active.Import.Register",
            value=0.0,
            unit="Wh",
            protocol="ocpp1.6",
        ),
        ChargingSession(
            charger_id=f"CP-{vin}", transaction_id="t-1", time=T0, event="start", protocol="ocpp1.6"
        ),
        ChargerEvent(charger_id=f"CP-{vin}", time=T0, event="boot", protocol="ocpp1.6"),
        SwapEvent(station_id=f"SW-{vin}", time=T0, result="aborted"),
        StationStatus(station_id=f"SW-{vin}", time=T0, state="offline"),
        BatteryInventory(station_id=f"SW-{vin}", time=T0, bay=1, state="empty"),
        BatteryCharging(station_id=f"SW-{vin}", time=T0, bay=1, state="waiting"),
        RawFrame(frame_id=uuid4(), received_at=RECEIVED, peer="p", protocol="jt808", frame=b"~~"),
        DeadLetter(
            frame_id=uuid4(),
            received_at=RECEIVED,
            peer="p",
            protocol="jt808",
            reason="TRUNCATED",
            message="",
            raw=b"",
        ),
    ]


def _assert_row_matches(record: StoredRecord, row: asyncpg.Record, now_ok: bool = False) -> None:
    spec = TABLES[type(record)]
    for column in spec.columns:
        want: Any = getattr(record, column)
        got = row[column]
        where = f"{spec.name}.{column}"
        if column in spec.jsonb:
            assert (None if got is None else json.loads(got)) == msgspec.to_builtins(want), where
        elif want is None and column in {"received_at", "time"} and now_ok:
            assert isinstance(got, datetime), where  # stamped at write time
        elif isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-6), where
        else:
            assert got == want, where


async def _fetch_by_key(conn: asyncpg.Connection, record: StoredRecord) -> list[asyncpg.Record]:
    spec = TABLES[type(record)]
    values = spec.to_row(record)
    key_values = [values[spec.columns.index(k)] for k in spec.key]
    where = " AND ".join(f'"{k}" IS NOT DISTINCT FROM ${i}' for i, k in enumerate(spec.key, 1))
    return await conn.fetch(f"SELECT * FROM {spec.name} WHERE {where}", *key_values)


# --------------------------------------------------------------------------- round trips


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["full", "sparse"])
async def test_every_record_type_round_trips(conn: asyncpg.Connection, kind: str) -> None:
    records = _full_records() if kind == "full" else _sparse_records()
    assert {type(r) for r in records} == set(TABLES)  # every table covered
    async with conn.transaction():
        for record in records:
            assert await write(conn, type(record), [record]) == 1
    for record in records:
        rows = await _fetch_by_key(conn, record)
        assert len(rows) == 1, type(record).__name__
        _assert_row_matches(record, rows[0], now_ok=kind == "sparse")


@pytest.mark.asyncio
async def test_sentinel_fields_are_null_and_cells_unpack(conn: asyncpg.Connection) -> None:
    row = VehicleRealtime(
        vin="LTESTSENTINEL0001",
        time=T0,
        version=2016,
        speed_kmh=None,
        soc_pct=None,
        cell_count=5,
        cell_voltages=_cells(4061, 0xFFFE, 0xFFFF, 3200, 0) + b"\x0f",  # trailing odd byte
        cell_v_min=0.0,
        cell_v_max=4.061,
        probe_count=4,
        probe_temps=bytes([0, 0xFE, 0xFF, 125]),
        quality={"speed_kmh": "invalid", "soc_pct": "abnormal"},
    )
    assert await write(conn, VehicleRealtime, [row]) == 1
    got = await _row(
        conn,
        "SELECT speed_kmh, soc_pct, quality, cell_voltages, silkgate_cells(cell_voltages) AS cells,"
        " silkgate_temps(probe_temps) AS temps FROM vehicle_realtime WHERE vin = $1",
        row.vin,
    )
    assert got["speed_kmh"] is None and got["soc_pct"] is None
    assert json.loads(got["quality"]) == {"speed_kmh": "invalid", "soc_pct": "abnormal"}
    assert got["cell_voltages"] == row.cell_voltages
    assert got["cells"] == pytest.approx([4.061, None, None, 3.2, 0.0])
    assert got["cells"][1] is None and got["cells"][2] is None
    assert got["temps"] == [-40, None, None, 85]

    checks = await _row(
        conn,
        "SELECT silkgate_cells(''::bytea) AS e1, silkgate_temps(''::bytea) AS e2,"
        " silkgate_cells(NULL) AS n1, silkgate_temps(NULL) AS n2,"
        " silkgate_cells('\\x0001fffd'::bytea) AS edge",
    )
    assert checks["e1"] == [] and checks["e2"] == []
    assert checks["n1"] is None and checks["n2"] is None
    assert checks["edge"] == pytest.approx([0.001, 65.533])
    volatility = await conn.fetch(
        "SELECT proname, provolatile::text FROM pg_proc WHERE proname IN "
        "('silkgate_cells', 'silkgate_temps') AND pronamespace = current_schema()::regnamespace"
    )
    assert {r["proname"]: r["provolatile"] for r in volatility} == {
        "silkgate_cells": "i",
        "silkgate_temps": "i",
    }


@pytest.mark.asyncio
async def test_time_and_received_at_fallbacks(conn: asyncpg.Connection) -> None:
    before = datetime.now(UTC)
    stamped = SessionEvent(
        device_id="013800000001",
        protocol="jt808",
        time=None,
        event="register",
        received_at=RECEIVED,
    )
    unstamped = SessionEvent(device_id="013800000002", protocol="jt808", time=None, event="auth")
    assert await write(conn, SessionEvent, [stamped, unstamped]) == 2
    rows = {
        r["device_id"]: r
        for r in await conn.fetch(
            "SELECT device_id, time, received_at FROM vehicle_sessions WHERE device_id LIKE "
            "'0138000000%'"
        )
    }
    assert rows["013800000001"]["time"] == RECEIVED == rows["013800000001"]["received_at"]
    assert rows["013800000002"]["time"] >= before
    assert rows["013800000002"]["received_at"] >= before


# --------------------------------------------------------------------------- dedup


def _realtime_batch(vin: str, n: int, *, reissue: bool = False) -> list[VehicleRealtime]:
    return [
        VehicleRealtime(
            vin=vin,
            time=T0 + timedelta(seconds=10 * i),
            version=2016,
            reissue=reissue,
            soc_pct=90 - i % 50,
            odometer_km=1000 + i / 10,
            cell_count=2,
            cell_voltages=_cells(4000 + i % 100, 4001),
        )
        for i in range(n)
    ]


@pytest.mark.asyncio
async def test_dedup_inserts_once(conn: asyncpg.Connection) -> None:
    vin = "LTESTDEDUP0000001"
    batch = _realtime_batch(vin, 50)
    assert await write(conn, VehicleRealtime, batch) == 50
    assert await write(conn, VehicleRealtime, batch) == 0  # a retried batch
    # Reissues (0x03) of stored (vin, time): nothing new; the first stored row stays.
    reissued = _realtime_batch(vin, 60, reissue=True)
    assert await write(conn, VehicleRealtime, reissued) == 10
    # Duplicates inside one batch count once.
    twice = _realtime_batch("LTESTDEDUP0000002", 5) * 2
    assert await write(conn, VehicleRealtime, twice) == 5
    counts = await _row(
        conn,
        "SELECT count(*) AS n, count(*) FILTER (WHERE reissue) AS r FROM vehicle_realtime "
        "WHERE vin = $1",
        vin,
    )
    assert (counts["n"], counts["r"]) == (60, 10)

    # The NULLS NOT DISTINCT keys: OCPP 1.6 status without an EVSE, a swap without a bay.
    status = ChargerStatus(
        charger_id="CP-DEDUP", time=T0, connector_id=1, status="Charging", protocol="ocpp1.6"
    )
    swap = SwapEvent(station_id="SW-DEDUP", time=T0, result="success")
    for _ in range(2):
        assert await write(conn, ChargerStatus, [status]) == (1 if _ == 0 else 0)
        assert await write(conn, SwapEvent, [swap]) == (1 if _ == 0 else 0)
    for record in _full_records("LTESTDEDUP0000003"):
        assert await write(conn, type(record), [record]) == 1
        assert await write(conn, type(record), [record]) == 0
        assert len(await _fetch_by_key(conn, record)) == 1


@pytest.mark.asyncio
async def test_plain_copy_path(conn: asyncpg.Connection) -> None:
    batch = _realtime_batch("LTESTPLAIN0000001", 40)
    assert await write(conn, VehicleRealtime, batch, dedup=False) == 40
    assert await write(conn, VehicleRealtime, [], dedup=False) == 0
    n = await conn.fetchval("SELECT count(*) FROM vehicle_realtime WHERE vin = 'LTESTPLAIN0000001'")
    assert n == 40
    # Plain COPY does not de-duplicate: a repeated key fails the batch (the dedup path is for that).
    with pytest.raises(asyncpg.UniqueViolationError):
        await write(conn, VehicleRealtime, batch[:1], dedup=False)
    for record in _sparse_records("LTESTPLAIN0000002"):
        assert await write(conn, type(record), [record], dedup=False) == 1


@pytest.mark.asyncio
async def test_write_inside_the_callers_transaction(dsn: str) -> None:
    # A bare asyncpg connection: the staging tables get created lazily, inside transactions.
    raw = await asyncpg.connect(dsn)
    try:
        vin = "LTESTTXN000000001"
        with pytest.raises(RuntimeError, match="rolled back"):
            async with raw.transaction():
                assert await write(raw, VehicleRealtime, _realtime_batch(vin, 3)) == 3
                assert await write(raw, Position, [_position(vin)]) == 1
                raise RuntimeError("rolled back")
        assert await raw.fetchval("SELECT count(*) FROM vehicle_realtime WHERE vin = $1", vin) == 0
        # The rollback also dropped the staging tables created in it: writing again must work.
        async with raw.transaction():
            assert await write(raw, VehicleRealtime, _realtime_batch(vin, 3)) == 3
            # A second write of the same table in the same transaction counts only its new rows.
            assert await write(raw, VehicleRealtime, _realtime_batch(vin, 5)) == 2
            assert await write(raw, Position, [_position(vin)]) == 1
        assert await raw.fetchval("SELECT count(*) FROM vehicle_realtime WHERE vin = $1", vin) == 5
        # Autocommit writes work too, and commit empties the staging table.
        assert await write(raw, VehicleRealtime, _realtime_batch(vin, 6)) == 1
        assert (
            await raw.fetchval("SELECT count(*) FROM pg_temp.silkgate_stage_vehicle_realtime") == 0
        )
    finally:
        await raw.close()


def _position(vin: str) -> Position:
    return Position(device_id=vin, protocol="gbt32960", time=T0, lat=1.0, lon=2.0, fix_valid=True)


@pytest.mark.asyncio
async def test_pool_connections_are_prepared(dsn: str) -> None:
    pool = await create_pool(dsn, min_size=2, max_size=2)
    try:
        for i in range(4):  # proxies change per acquire; the connections underneath do not
            async with pool.acquire() as conn, conn.transaction():
                batch = _realtime_batch("LTESTPOOL00000001", 10 + i)
                assert await write(conn, VehicleRealtime, batch) == (10 if i == 0 else 1)
        async with pool.acquire() as conn:
            tz = await conn.fetchval("SHOW TimeZone")
            staged = await conn.fetchval(
                "SELECT count(*) FROM pg_class WHERE relname LIKE 'silkgate_stage_%' "
                "AND relpersistence = 't' AND pg_table_is_visible(oid)"
            )
        assert tz == "UTC"
        assert staged == len(SPECS)
    finally:
        await pool.close()


# --------------------------------------------------------------------------- real vectors


def _vectors(name: str) -> dict[str, bytes]:
    items = json.loads((VECTORS / name).read_text())
    return {v["id"]: bytes.fromhex(v["hex"]) for v in items}


@pytest.mark.asyncio
async def test_gbt32960_vector_gb12(conn: asyncpg.Connection) -> None:
    frame = gbt_ref.decode_frame(_vectors("gbt32960.json")["GB-12"])
    records = normalize(frame)
    realtime = [r for r in records if isinstance(r, VehicleRealtime)]
    positions = [r for r in records if isinstance(r, Position)]
    assert len(realtime) == 1 and len(positions) == 1
    async with conn.transaction():
        assert await write(conn, VehicleRealtime, realtime) == 1
        assert await write(conn, Position, positions) == 1
    row = await _row(
        conn,
        "SELECT *, silkgate_cells(cell_voltages) AS cells, silkgate_temps(probe_temps) AS temps "
        "FROM vehicle_realtime WHERE vin = 'HAUV4BGN6S5002219'",
    )
    rt = realtime[0]
    _assert_row_matches(rt, row, now_ok=True)
    assert row["time"] == datetime(2025, 10, 11, 11, 8, 18, tzinfo=UTC)
    assert (row["soc_pct"], row["gear"], row["cell_count"]) == (85, 14, 192)
    assert row["speed_kmh"] == pytest.approx(12.2)
    assert len(row["cells"]) == 192
    assert min(row["cells"]) == pytest.approx(rt.cell_v_min)
    assert max(row["cells"]) == pytest.approx(rt.cell_v_max)
    assert len(row["temps"]) == 48 and min(row["temps"]) == rt.temp_min_c
    motors = json.loads(row["motors"])
    assert [m["number"] for m in motors] == [1, 2] and motors[1]["torque_nm"] == -32.5
    pos = await _row(conn, "SELECT * FROM positions WHERE device_id = 'HAUV4BGN6S5002219'")
    _assert_row_matches(positions[0], pos, now_ok=True)


@pytest.mark.asyncio
async def test_jt808_vector_jt01(conn: asyncpg.Connection) -> None:
    frame = jt_ref.decode_frame(_vectors("jt808.json")["JT-01"])
    position, alarm = normalize(frame)
    assert isinstance(position, Position) and isinstance(alarm, Alarm)
    async with conn.transaction():
        assert await write(conn, Position, [position]) == 1
        assert await write(conn, Alarm, [alarm]) == 1
    pos = await _row(
        conn, "SELECT * FROM positions WHERE device_id = '011223344550' AND protocol = 'jt808'"
    )
    _assert_row_matches(position, pos, now_ok=True)
    assert (pos["lat"], pos["lon"], pos["altitude_m"]) == (12.222222, 132.444444, 40)
    assert pos["time"] == datetime(2018, 7, 15, 2, 10, 10, tzinfo=UTC)
    assert json.loads(pos["extra"]) == {"FuelLevel": {"type": "FuelLevel", "litres": 5.5}}
    got = await _row(conn, "SELECT * FROM alarms WHERE device_id = '011223344550'")
    assert got["names"] == ["emergency"] and got["flags"] == 1 and got["level"] is None


@pytest.mark.asyncio
async def test_every_decodable_vector_is_storable(conn: asyncpg.Connection) -> None:
    """Whatever normalize yields for any vector (extra blocks, raw items, ...) maps and writes."""
    written = 0
    for name, decode in (
        ("gbt32960.json", gbt_ref.decode_frame),
        ("jt808.json", jt_ref.decode_frame),
    ):
        for vid, raw in _vectors(name).items():
            try:
                records = normalize(decode(raw))
            except (ProtocolError, ValueError):
                continue  # the negative vectors
            for record in records:
                if isinstance(record, SessionEvent) and record.time is None:
                    record.received_at = RECEIVED
                written += await write(conn, type(record), [record])
                assert len(await _fetch_by_key(conn, record)) == 1, vid
    assert written > 10
