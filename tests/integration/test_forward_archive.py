"""The forwarders' view of the raw archive (migration 0005, gateway.forward.archive) in the real
TimescaleDB: the real pipeline stamps every archived frame with its transaction and arrival
order; reads follow that order, never pass a transaction still open, skip rows archived before
0005, select vehicles by VIN, operator and fleet through the device registry (JT/T 808
terminals too), and the cursor never moves backwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from gateway.config import PipelineConfig
from gateway.forward.archive import BEGINNING, GBT32960, JT808, Archive, Position
from gateway.forward.config import Selection
from gateway.ingest import Ingestor
from gateway.pipeline import Pipeline
from gateway.records import RawFrame
from gateway.simulator import Fleet
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store.connection import create_pool
from gateway.store.testing import migrated_schema
from gateway.store.writer import write

BOTH = (GBT32960, JT808)


@pytest.fixture
def dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_fwd_arch")


@pytest_asyncio.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(dsn, min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()


def archive_rows(frames: list[bytes]) -> list[RawFrame]:
    ingest = {GBT32960: Ingestor(GBT32960), JT808: Ingestor(JT808)}
    rows: list[RawFrame] = []
    for f in frames:
        protocol = JT808 if f[:1] == b"\x7e" else GBT32960
        rows += [r for r in ingest[protocol].frame(f, "test") if isinstance(r, RawFrame)]
    return rows


async def read_all(conn: Any, archive: Archive, after: Position = BEGINNING) -> list[Any]:
    rows = []
    while True:
        page = await archive.fetch(conn, after)
        rows += page.rows
        if len(page.rows) < archive.page_rows:  # short: nothing more below the horizon
            return rows
        after = page.rows[-1].position


@pytest.mark.asyncio
async def test_the_pipeline_archives_in_a_readable_order(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    fleet = Fleet(6, seed=21)
    submissions = [archive_rows(fleet.logins())]
    for _ in range(4):
        fleet.advance(10)
        submissions.append(archive_rows(fleet.reports()))
    submissions.append(submissions[1][:3])  # duplicates: the de-duplicating (staging) path
    spool = await AsyncSpool.open(tmp_path / "spool", SpoolConfig(fsync="never"))
    cfg = PipelineConfig(batch_rows=7, batch_age_ms=10)  # batches cut across submissions
    try:
        async with Pipeline(StoreWriter(pool), spool, cfg) as pipeline:
            for rows in submissions:
                await pipeline.ingest(rows)
    finally:
        await spool.close()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM raw_frames WHERE txid IS NULL") == 0
        batches = await conn.fetchval("SELECT count(DISTINCT txid) FROM raw_frames")
        archive = Archive("json:t", Selection(all=True), BOTH, page_rows=5)
        got = await read_all(conn, archive)
    assert batches > 1
    assert [r.frame_id for r in got] == [r.frame_id for s in submissions[:-1] for r in s]
    assert got == sorted(got, key=lambda r: r.position)


@pytest.mark.asyncio
async def test_an_open_transaction_holds_reads_back_and_old_rows_are_not_read(
    pool: asyncpg.Pool,
) -> None:
    fleet = Fleet(2, seed=22, gbt_only=True)
    archive = Archive("gbt32960:t", Selection(all=True), (GBT32960,), page_rows=100)
    async with pool.acquire() as a, pool.acquire() as b:
        before = archive_rows(fleet.logins())  # as if archived before migration 0005
        await write(a, RawFrame, before)
        await a.execute("UPDATE raw_frames SET txid = NULL, seq = NULL")
        start = await archive.load(a, "earliest")
        assert await read_all(a, archive, start.position) == []
        fleet.advance(10)
        held, later = archive_rows(fleet.reports()), archive_rows(fleet.logouts())
        tx = a.transaction()
        await tx.start()
        await write(a, RawFrame, held)
        await write(b, RawFrame, later)  # a later transaction, committed first
        page = await archive.fetch(b, start.position)
        assert page.rows == [] and page.horizon is not None  # not past the open transaction
        await tx.commit()
        got = await read_all(b, archive, start.position)
    assert [r.frame_id for r in got] == [r.frame_id for r in held + later]


@pytest.mark.asyncio
async def test_selection_through_the_device_registry(pool: asyncpg.Pool) -> None:
    fleet = Fleet(8, seed=23)  # versions cycle 2016, 2025, JT 2013, JT 2019
    t = fleet.trucks
    rows = archive_rows(fleet.logins() + fleet.reports())
    # Device ids as archived, truck by truck: the VIN, or a terminal's phone as decoded
    # (JT/T 808 2019 pads it to 20 digits).
    dev = [r.device_id for r in rows[: len(t)]]
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO operators (operator_id, name) VALUES ('acme', 'Acme'), ('bolt', 'Bolt')"
        )
        await conn.execute(
            "INSERT INTO fleets (fleet_id, operator_id, name) VALUES ('north', 'acme', 'North')"
        )
        await conn.executemany(
            "INSERT INTO vehicles (vin, operator_id, fleet_id) VALUES ($1, $2, $3)",
            [
                (t[0].vin, "acme", "north"),
                (t[1].vin, "acme", None),
                (t[2].vin, "acme", "north"),  # a JT/T 808 truck, reached via its terminal
                (t[4].vin, "bolt", None),
            ],
        )
        await conn.executemany(
            "INSERT INTO terminals (phone, operator_id, vin) VALUES ($1, $2, $3)",
            [(dev[2], None, t[2].vin), (dev[3], "bolt", None)],
        )
        await write(conn, RawFrame, rows)

        async def devices(select: Selection, protocols: tuple[str, ...] = BOTH) -> set[str]:
            rows = await read_all(conn, Archive("x:t", select, protocols, page_rows=3))
            return {r.device_id for r in rows}

        assert await devices(Selection(fleets=["north"])) == {dev[0], dev[2]}
        assert await devices(Selection(operators=["acme"])) == {dev[0], dev[1], dev[2]}
        assert await devices(Selection(operators=["bolt"])) == {dev[4], dev[3]}
        assert await devices(Selection(vins=[t[5].vin, t[2].vin])) == {dev[5], dev[2]}
        assert await devices(Selection(operators=["acme"]), (GBT32960,)) == {dev[0], dev[1]}
        assert await devices(Selection(all=True)) == set(dev)
        assert dev[0] == t[0].vin and dev[2] != t[2].vin


@pytest.mark.asyncio
async def test_cursor_starts_and_never_moves_backwards(pool: asyncpg.Pool) -> None:
    fleet = Fleet(2, seed=24, gbt_only=True)
    async with pool.acquire() as conn:
        await write(conn, RawFrame, archive_rows(fleet.logins()))
        latest = Archive("gbt32960:late", Selection(all=True), (GBT32960,), page_rows=10)
        cursor = await latest.load(conn, "latest")
        assert await read_all(conn, latest, cursor.position) == []  # what came before: skipped
        fleet.advance(10)
        await write(conn, RawFrame, archive_rows(fleet.reports()))
        rows = await read_all(conn, latest, cursor.position)
        assert len(rows) == 2
        await latest.save(conn, rows[1].position, 2, rows[1])
        await latest.save(conn, rows[0].position, 1, rows[0])  # a stale save changes nothing
        again = await latest.load(conn, "earliest")
        assert (again.position, again.forwarded) == (rows[1].position, 2)
        await latest.save(conn, rows[1].position, 2, None)  # a repeated save: idempotent
        assert (await latest.load(conn, "latest")).forwarded == 2
