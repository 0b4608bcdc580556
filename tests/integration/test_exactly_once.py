"""Exactly once, at volume, against the real TimescaleDB: 200,000 GB/T 32960 realtime frames plus
10% exact duplicates and 0x03 reissues of earlier frames, through the Pipeline and the store's
COPY writer. Every (vin, time) is stored once, as its first copy, with exact contents."""

from __future__ import annotations

import asyncio
import json
import random
import struct
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from gateway.config import PipelineConfig
from gateway.pipeline import Pipeline
from gateway.records import Alarm, Position, VehicleRealtime
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store.connection import create_pool
from gateway.store.testing import migrated_schema

from . import faultkit

CHUNK = 25  # frames per submission (what an adapter hands over per socket read, say)
SAMPLE = 1000  # rows compared field by field


@pytest.fixture(scope="module")
def schema_dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_once")


@pytest.mark.asyncio
async def test_200k_frames_with_duplicates_and_reissues_stored_exactly_once(
    schema_dsn: str, tmp_path: Path
) -> None:
    t = faultkit.traffic(1000, 200, dup_fraction=0.1)
    assert len(t.originals) == 200_000 and len(t.frames) == 220_000
    assert t.decoded >= 25_000  # an eighth of the frames went bytes -> decode -> normalize
    pool = await create_pool(schema_dsn, max_size=2, timeout=10)
    spool = await AsyncSpool.open(tmp_path / "spool", SpoolConfig(fsync="always"))
    writer = StoreWriter(pool)
    cfg = PipelineConfig(batch_rows=10_000, batch_age_ms=50, queue_rows=40_000)
    started = time.monotonic()
    try:
        async with asyncio.timeout(240), Pipeline(writer, spool, cfg) as pipeline:
            futures = [await pipeline.submit(records) for _, records in t.chunks(CHUNK)]
            await asyncio.wait_for(asyncio.gather(*futures), 120)
        elapsed = time.monotonic() - started
    finally:
        await spool.close()
        await pool.close()
    submitted = sum(len(f) for f in t.frames)
    assert pipeline.stats.submitted_rows == submitted
    assert pipeline.stats.committed_rows == submitted
    assert pipeline.stats.spooled_rows == 0 and pipeline.stats.rejected_rows == 0

    expected = _expected_rows(t)
    # the writer counts new rows only: duplicates and reissues inserted nothing
    assert writer.inserted_rows == sum(expected.values())
    db = await asyncpg.connect(schema_dsn)
    try:
        for table, n in expected.items():
            assert await db.fetchval(f"SELECT count(*) FROM {table}") == n, table
        assert await db.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT vin, time FROM vehicle_realtime) k"
        ) == len(t.originals)
        await _check_first_copy_kept(db)
        await _check_aggregates(db, t)
        await _check_sample(db, t)
    finally:
        await db.close()
    print(f"\n{submitted:,} rows ({len(t.frames):,} frames) in {elapsed:.1f} s")


def _expected_rows(t: faultkit.Traffic) -> dict[str, int]:
    count = {"vehicle_realtime": 0, "positions": 0, "alarms": 0}
    table: dict[type, str] = {
        VehicleRealtime: "vehicle_realtime",
        Position: "positions",
        Alarm: "alarms",
    }
    for recs in t.originals:
        for rec in recs:
            count[table[type(rec)]] += 1
    assert count["vehicle_realtime"] == count["positions"] == len(t.originals)
    return count


async def _check_first_copy_kept(db: asyncpg.Connection) -> None:
    """Originals come first, so no stored row is a reissue or a later duplicate's copy."""
    for table in ("vehicle_realtime", "positions", "alarms"):
        later = await db.fetchval(
            f"SELECT count(*) FROM {table} "
            f"WHERE reissue OR received_at <> time + interval '{faultkit.RECEIVED_AFTER.seconds} s'"
        )
        assert later == 0, table


async def _check_aggregates(db: asyncpg.Connection, t: faultkit.Traffic) -> None:
    """Per VIN: rows, time span, and exact integer sums of odometer, speed, position, SoC."""
    want: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0, 0])
    first: dict[str, Any] = {}
    last: dict[str, Any] = {}
    for n in range(len(t.originals)):
        rt = t.realtime(n)
        assert rt.odometer_km is not None and rt.speed_kmh is not None
        assert rt.lat is not None and rt.lon is not None and rt.soc_pct is not None
        w = want[rt.vin]
        w[0] += 1
        w[1] += round(rt.odometer_km * 10)
        w[2] += round(rt.speed_kmh * 10)
        w[3] += round(rt.lat * 1e6)
        w[4] += round(rt.lon * 1e6)
        w[5] += rt.soc_pct
        w[6] += len(rt.cell_voltages) + len(rt.probe_temps)
        first[rt.vin] = min(first.get(rt.vin, rt.time), rt.time)
        last[rt.vin] = max(last.get(rt.vin, rt.time), rt.time)
    rows = await db.fetch(
        """SELECT vin, count(*) AS n, min(time) AS first, max(time) AS last,
                  sum(round(odometer_km * 10))::bigint AS odo,
                  sum(round(speed_kmh * 10))::bigint AS speed,
                  sum(round(lat * 1e6))::bigint AS lat, sum(round(lon * 1e6))::bigint AS lon,
                  sum(soc_pct)::bigint AS soc,
                  sum(length(cell_voltages) + length(probe_temps))::bigint AS blobs
             FROM vehicle_realtime GROUP BY vin"""
    )
    got = {
        r["vin"]: [r["n"], r["odo"], r["speed"], r["lat"], r["lon"], r["soc"], r["blobs"]]
        for r in rows
    }
    assert got == dict(want)
    assert {r["vin"]: (r["first"], r["last"]) for r in rows} == {
        vin: (first[vin], last[vin]) for vin in want
    }
    # positions carry the same odometer per device
    pos = await db.fetch(
        "SELECT device_id, sum(round(odometer_km * 10))::bigint AS odo FROM positions "
        "GROUP BY device_id"
    )
    assert {r["device_id"]: r["odo"] for r in pos} == {vin: w[1] for vin, w in want.items()}


def _f32(x: float) -> float:
    out: float = struct.unpack("f", struct.pack("f", x))[0]
    return out


def _same(column_type: str, stored: Any, value: Any) -> bool:
    if value is None or stored is None:
        return stored is None and value is None
    if column_type == "real":
        return bool(stored == _f32(value))
    if column_type in ("json", "jsonb"):
        return bool(json.loads(stored) == json.loads(msgspec.json.encode(value)))
    return bool(stored == value)


async def _check_sample(db: asyncpg.Connection, t: faultkit.Traffic) -> None:
    """A random sample of rows, every column against the record it came from."""
    types = {
        r["column_name"]: r["data_type"]
        for r in await db.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'vehicle_realtime'"
        )
    }
    fields = set(VehicleRealtime.__struct_fields__)
    assert set(types) <= fields  # every column is a record field of the same name
    picks = random.Random(7).sample(range(len(t.originals)), SAMPLE)
    records = {faultkit.key(t.realtime(n)): t.realtime(n) for n in picks}
    rows = await db.fetch(
        "SELECT v.* FROM vehicle_realtime v "
        "JOIN unnest($1::text[], $2::timestamptz[]) AS k(vin, time) USING (vin, time)",
        [k[0] for k in records],
        [k[1] for k in records],
    )
    assert len(rows) == SAMPLE
    compared = 0
    for row in rows:
        rec = records[(row["vin"], row["time"])]
        for column, column_type in types.items():
            value = getattr(rec, column)
            assert _same(column_type, row[column], value), (column, row[column], value)
            compared += 1
    assert compared == SAMPLE * len(types)
