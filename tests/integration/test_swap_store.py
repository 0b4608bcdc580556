"""Swap-station messages into the real TimescaleDB: every kind decoded, normalized and written
through gateway.store (and through the pipeline), twice, and stored once; refused payloads as
dead letters with their reason."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
import pytest_asyncio

from gateway.config import PipelineConfig
from gateway.pipeline import Pipeline
from gateway.records import (
    BatteryCharging,
    BatteryInventory,
    DeadLetter,
    StationStatus,
    SwapEvent,
)
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store import connect, create_pool, write
from gateway.store.testing import migrated_schema
from gateway.swap.messages import SwapPayloadError, decode
from gateway.swap.normalize import PROTOCOL, SwapRecord, dead_letter, records

if TYPE_CHECKING:
    from .conftest import Services

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "swap-station.md"
RECEIVED = datetime(2026, 3, 2, 6, 16, 0, 125000, tzinfo=UTC)
TABLES = {
    StationStatus: "station_status",
    BatteryInventory: "battery_inventory",
    BatteryCharging: "battery_charging",
    SwapEvent: "swap_events",
}


@pytest.fixture(scope="module")
def dsn(services: Services) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_swap")


@pytest_asyncio.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(dsn)
    try:
        for table in (*TABLES.values(), "dead_letters"):
            await connection.execute(f"TRUNCATE {table}")
        yield connection
    finally:
        await connection.close()


def _payloads(station: str) -> list[bytes]:
    """The documented examples, as sent by ``station``."""
    examples = re.findall(r"```json\n(.*?)```", GUIDE.read_text(), re.S)
    return [json.dumps({**json.loads(t), "station_id": station}).encode() for t in examples]


def _records(station: str, received_at: datetime = RECEIVED) -> list[SwapRecord]:
    out: list[SwapRecord] = []
    for payload in _payloads(station):
        out += records(decode(payload, station_id=station), received_at)
    return out


async def _write_all(conn: asyncpg.Connection, recs: list[SwapRecord]) -> int:
    inserted = 0
    for kind in TABLES:
        inserted += await write(conn, kind, [r for r in recs if type(r) is kind])
    return inserted


async def _counts(conn: asyncpg.Connection, station: str) -> dict[str, int]:
    return {
        table: await conn.fetchval(f"SELECT count(*) FROM {table} WHERE station_id = $1", station)
        for table in TABLES.values()
    }


@pytest.mark.asyncio
async def test_every_kind_written_twice_is_stored_once(conn: asyncpg.Connection) -> None:
    recs = _records("SW-DB-1")
    assert {type(r) for r in recs} == set(TABLES)
    assert await _write_all(conn, recs) == len(recs) == 9
    # The broker redelivers everything a minute later: same messages, new receive time.
    again = _records("SW-DB-1", RECEIVED + timedelta(minutes=1))
    assert await _write_all(conn, again) == 0
    assert await _counts(conn, "SW-DB-1") == {
        "station_status": 1,
        "battery_inventory": 4,
        "battery_charging": 2,
        "swap_events": 2,
    }

    status = await conn.fetchrow("SELECT * FROM station_status WHERE station_id = 'SW-DB-1'")
    assert status is not None
    assert status["time"] == datetime(2026, 3, 2, 6, 15, tzinfo=UTC)  # 09:15+03:00
    assert status["received_at"] == RECEIVED  # the first copy's
    assert (status["state"], status["bays_total"], status["power_w"]) == ("operating", 10, 612500)
    assert status["faults"] == ["COOLING_FAN_2"]
    assert json.loads(status["extra"]) == {"firmware": "2.4.1", "queue": 2}

    bays = await conn.fetch(
        "SELECT bay, state, pack_id, soc_pct, energy_wh FROM battery_inventory"
        " WHERE station_id = 'SW-DB-1' ORDER BY bay"
    )
    assert [tuple(b) for b in bays] == [
        (1, "ready", "CATL282-A0457", 97.0, 273540.0),
        (2, "charging", "CATL282-A0193", 41.0, 115620.0),
        (3, "empty", None, None, None),
        (4, "disabled", None, None, None),
    ]

    charging = await conn.fetchrow(
        "SELECT * FROM battery_charging WHERE station_id = 'SW-DB-1' AND bay = 2"
    )
    assert charging is not None
    assert (charging["state"], charging["power_w"], charging["energy_wh"]) == (
        "charging",
        120500.0,
        64300.0,
    )
    assert charging["voltage_v"] == pytest.approx(702.4, rel=1e-6)
    assert charging["current_a"] == pytest.approx(171.6, rel=1e-6)

    swap = await conn.fetchrow(
        "SELECT * FROM swap_events WHERE station_id = 'SW-DB-1' AND result = 'success'"
    )
    assert swap is not None
    assert swap["time"] == datetime(2026, 3, 2, 6, 10, 5, tzinfo=UTC)  # started_at
    assert (swap["vin"], swap["pack_out_id"], swap["pack_in_id"]) == (
        "LZGJLGM46RX123456",
        "CATL282-A0193",
        "CATL282-A0457",
    )
    assert (swap["pack_out_energy_wh"], swap["pack_in_soc_pct"], swap["duration_s"]) == (
        52170.0,
        97.0,
        333.5,
    )
    assert json.loads(swap["extra"]) == {
        "pack_out_soh_pct": 96.0,
        "pack_out_bay": 2,
        "pack_in_soh_pct": 98.5,
        "pack_in_bay": 1,
        "vendor": {"robot": "R2", "lock_retries": 1},
    }


@pytest.mark.asyncio
async def test_a_new_reading_is_a_new_row_and_stations_are_apart(conn: asyncpg.Connection) -> None:
    first = records(decode(_payloads("SW-DB-2")[2]), RECEIVED)  # charging
    later_payload = json.loads(_payloads("SW-DB-2")[2])
    later_payload["time"] = "2026-03-02T06:15:30Z"
    later = records(decode(json.dumps(later_payload)), RECEIVED)
    other = records(decode(_payloads("SW-DB-3")[2]), RECEIVED)
    assert await write(conn, BatteryCharging, [*first, *later, *other]) == 6
    assert await write(conn, BatteryCharging, [*first, *later, *other]) == 0
    assert (await _counts(conn, "SW-DB-2"))["battery_charging"] == 4
    assert (await _counts(conn, "SW-DB-3"))["battery_charging"] == 2


@pytest.mark.asyncio
async def test_through_the_pipeline_with_dead_letters(
    dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    bad = json.dumps({**json.loads(_payloads("SW-DB-4")[0]), "time": "2026-03-02T09:15:00"})
    with pytest.raises(SwapPayloadError) as info:
        decode(bad, station_id="SW-DB-4")
    letter = dead_letter(
        bad.encode(),
        info.value,
        frame_id=uuid.uuid5(uuid.NAMESPACE_URL, "swap/SW-DB-4/1"),
        received_at=RECEIVED,
        peer="mqtt:SW-DB-4",
        station_id="SW-DB-4",
    )
    recs: list[Any] = [*_records("SW-DB-4"), letter]
    pool = await create_pool(dsn, max_size=2, timeout=10)
    spool = await AsyncSpool.open(tmp_path / "spool", SpoolConfig(fsync="never"))
    try:
        async with Pipeline(
            StoreWriter(pool), spool, PipelineConfig(batch_rows=100, batch_age_ms=10)
        ) as pipeline:
            await (await pipeline.submit(recs))
            await (await pipeline.submit(_records("SW-DB-4", RECEIVED + timedelta(seconds=5))))
            await (await pipeline.submit([letter]))
    finally:
        await spool.close()
        await pool.close()
    assert await _counts(conn, "SW-DB-4") == {
        "station_status": 1,
        "battery_inventory": 4,
        "battery_charging": 2,
        "swap_events": 2,
    }
    rows = await conn.fetch("SELECT * FROM dead_letters WHERE device_id = 'SW-DB-4'")
    assert len(rows) == 1
    row = rows[0]
    assert (row["protocol"], row["reason"], row["peer"]) == (PROTOCOL, "naive_time", "mqtt:SW-DB-4")
    assert row["message"].startswith("$.time: ")
    assert bytes(row["raw"]) == bad.encode()
    assert isinstance(letter, DeadLetter)
