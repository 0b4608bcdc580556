"""The C binary COPY encoder (gateway.store._copybin) against the real TimescaleDB: every table
uses it, edge values land exactly, and a value a column cannot hold fails the write cleanly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import asyncpg
import pytest
import pytest_asyncio

from gateway.records import Alarm, RawFrame, SwapEvent, VehicleRealtime
from gateway.store import connect, write
from gateway.store._copybin import CopyEncoder, type_code
from gateway.store.binary import encoder_for
from gateway.store.tables import SPECS
from gateway.store.testing import migrated_schema

if TYPE_CHECKING:
    from .conftest import Services

T0 = datetime(2026, 3, 1, 0, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def dsn(services: Services) -> Iterator[str]:
    yield from migrated_schema(services.dsn)


@pytest_asyncio.fixture
async def conn(dsn: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[asyncpg.Connection]:
    monkeypatch.delenv("SILKGATE_NO_EXTENSIONS", raising=False)
    connection = await connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.mark.asyncio
async def test_every_table_has_a_c_encoder(conn: asyncpg.Connection) -> None:
    """No table silently falls back to asyncpg's encoding (a column type the encoder lacks)."""
    for spec in SPECS:
        assert await encoder_for(conn, spec) is not None, spec.name


@pytest.mark.asyncio
async def test_disabled_extensions_use_asyncpg(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SILKGATE_NO_EXTENSIONS", "1")
    assert await encoder_for(conn, SPECS[0]) is None


def test_unknown_types_have_no_code() -> None:
    assert type_code("text") >= 0
    assert type_code("numeric") == -1
    with pytest.raises(ValueError, match="unsupported type code"):
        CopyEncoder(VehicleRealtime, [(99, ("vin",), False, False)], bytes)
    with pytest.raises(AttributeError, match="no field"):
        CopyEncoder(VehicleRealtime, [(type_code("text"), ("nope",), False, False)], bytes)


@pytest.mark.asyncio
async def test_time_zones_are_converted_to_the_same_instant(conn: asyncpg.Connection) -> None:
    gmt8 = timezone(timedelta(hours=8))
    cases = {
        "LBINTZ00000000001": T0.astimezone(gmt8),
        "LBINTZ00000000002": datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # < PG epoch
        "LBINTZ00000000003": datetime(2104, 2, 29, 12, tzinfo=timezone(timedelta(minutes=-90))),
    }
    records = [
        VehicleRealtime(vin=v, time=t, version=2016, received_at=t) for v, t in cases.items()
    ]
    assert await write(conn, VehicleRealtime, records) == 3
    rows = await conn.fetch(
        "SELECT vin, time, received_at FROM vehicle_realtime WHERE vin LIKE 'LBINTZ%'"
    )
    assert {r["vin"]: r["time"] for r in rows} == cases
    assert all(r["time"] == r["received_at"] for r in rows)


@pytest.mark.asyncio
async def test_naive_time_is_refused_and_nothing_is_written(conn: asyncpg.Connection) -> None:
    good = VehicleRealtime(vin="LBINNAIVE00000001", time=T0, version=2016)
    naive = VehicleRealtime(vin="LBINNAIVE00000002", time=T0.replace(tzinfo=None), version=2016)
    with pytest.raises(ValueError, match="naive datetime"):
        await write(conn, VehicleRealtime, [good, naive])
    assert (
        await conn.fetchval("SELECT count(*) FROM vehicle_realtime WHERE vin LIKE 'LBINNAIVE%'")
        == 0
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("soc_pct", 40000, OverflowError),  # smallint
        ("insulation_kohm", 1 << 31, OverflowError),  # integer
        ("alarm_flags", 1 << 64, OverflowError),  # bigint
        ("soc_pct", 1.5, TypeError),
        ("speed_kmh", "fast", TypeError),
        ("brake_on", 1, TypeError),
        ("cell_voltages", "not bytes", TypeError),
    ],
)
async def test_values_a_column_cannot_hold_fail_the_write(
    conn: asyncpg.Connection, field: str, value: object, error: type[Exception]
) -> None:
    # Many rows first, so the bad one is past the first COPY chunk: nothing is left behind.
    prefix = f"LBINBAD-{field}-{type(value).__name__}-"
    records = [VehicleRealtime(vin=f"{prefix}{i}", time=T0, version=2016) for i in range(600)]
    original = getattr(records[-1], field)
    setattr(records[-1], field, value)
    with pytest.raises(error):
        await write(conn, VehicleRealtime, records)
    count = "SELECT count(*) FROM vehicle_realtime WHERE starts_with(vin, $1)"
    assert await conn.fetchval(count, prefix) == 0
    # The connection is still usable, and the same rows without the bad value go in.
    setattr(records[-1], field, original)
    assert await write(conn, VehicleRealtime, records) == 600


@pytest.mark.asyncio
async def test_buffers_arrays_and_json(conn: asyncpg.Connection) -> None:
    frame = RawFrame(
        frame_id=uuid4(),
        received_at=T0,
        peer="p",
        protocol="gbt32960",
        frame=memoryview(bytearray(b"##\x02\xfe")),  # type: ignore[arg-type]
    )
    assert await write(conn, RawFrame, [frame]) == 1
    assert await conn.fetchval(
        "SELECT frame FROM raw_frames WHERE frame_id = $1", frame.frame_id
    ) == (b"##\x02\xfe")
    swaps = [
        SwapEvent(station_id="SW-BIN-1", time=T0, result="success", faults=[]),
        SwapEvent(
            station_id="SW-BIN-2",
            time=T0,
            result="failed",
            faults=["lock", "", "插座过温"],
            extra={"k": [1, None, "v"], "nested": {"x": 1.5}},
        ),
    ]
    assert await write(conn, SwapEvent, swaps) == 2
    rows = await conn.fetch(
        "SELECT station_id, faults, extra::text AS extra FROM swap_events "
        "WHERE station_id LIKE 'SW-BIN-%' ORDER BY station_id"
    )
    assert [r["faults"] for r in rows] == [[], ["lock", "", "插座过温"]]
    assert rows[0]["extra"] is None
    assert rows[1]["extra"] == '{"k": [1, null, "v"], "nested": {"x": 1.5}}'
    # A NULL element of a text[] (the array's null flag set).
    names: list[Any] = ["a", None]
    alarm = Alarm(
        device_id="LBINALARM", protocol="gbt32960", time=T0, level=1, flags=3, names=names
    )
    assert await write(conn, Alarm, [alarm]) == 1
    stored = await conn.fetchval("SELECT names FROM alarms WHERE device_id = 'LBINALARM'")
    assert stored == ["a", None]
