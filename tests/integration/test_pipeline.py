"""The durable ingest pipeline against the real TimescaleDB: completions, de-duplication,
outages (a cut link, then the database back), backpressure, rejected records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest
import pytest_asyncio

from gateway.batch import Batch
from gateway.codecs import gbt32960, jt808
from gateway.config import PipelineConfig
from gateway.normalize import normalize
from gateway.pipeline import Pipeline, is_outage
from gateway.records import Record, VehicleRealtime
from gateway.simulator import Fleet
from gateway.sink import ConnectionLost, StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store.connection import create_pool
from gateway.store.testing import migrated_schema
from gateway.testing import TcpProxy

FAST = PipelineConfig(batch_rows=500, batch_age_ms=20, retry_interval_s=0.2)


@pytest.fixture(scope="module")
def schema_dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_pipe")


def _via(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class Rig:
    pipeline: Pipeline
    spool: AsyncSpool
    proxy: TcpProxy
    db: asyncpg.Connection
    writer: StoreWriter

    async def count(self, table: str) -> int:
        n: int = await self.db.fetchval(f"SELECT count(*) FROM {table}")
        return n


@pytest_asyncio.fixture
async def rig(schema_dsn: str, tmp_path: Path) -> AsyncIterator[Rig]:
    host = urlsplit(schema_dsn).hostname or "127.0.0.1"
    proxy = await TcpProxy(host, urlsplit(schema_dsn).port or 5432).start()
    pool = await create_pool(_via(schema_dsn, proxy.port), max_size=2, timeout=2)
    spool = await AsyncSpool.open(tmp_path / "spool", SpoolConfig(fsync="always"))
    db = await asyncpg.connect(schema_dsn)
    for table in ("vehicle_realtime", "positions", "alarms", "vehicle_sessions", "dead_letters"):
        await db.execute(f"TRUNCATE {table}")
    writer = StoreWriter(pool)
    pipeline = Pipeline(writer, spool, FAST)
    pipeline.start()
    try:
        yield Rig(pipeline, spool, proxy, db, writer)
    finally:
        proxy.restore()
        await pipeline.close()
        await spool.close()
        await pool.close()
        await proxy.close()
        await db.close()


def records_of(frames: list[bytes]) -> list[list[Record]]:
    out = []
    for raw in frames:
        codec = gbt32960 if raw[:2] in (b"##", b"$$") else jt808
        out.append(normalize(codec.decode_frame(raw)))
    return out


async def submit_all(p: Pipeline, batches: list[list[Record]]) -> None:
    futures = [await p.submit(recs) for recs in batches]
    await asyncio.gather(*futures)


@pytest.mark.asyncio
async def test_completions_resolve_after_commit(rig: Rig) -> None:
    fleet = Fleet(20, seed=11)
    frames = list(fleet.stream(rounds=5))
    batches = records_of(frames)
    fut = await rig.pipeline.submit(batches[0])
    await fut
    assert await rig.count("vehicle_sessions") >= 1  # durable when the completion resolved
    await submit_all(rig.pipeline, batches[1:])
    assert await rig.count("vehicle_realtime") == 10 * 5
    assert await rig.count("positions") == 20 * 5
    assert await rig.count("vehicle_sessions") == 20 + 20
    row = await rig.db.fetchrow(
        "SELECT cell_count, length(cell_voltages) AS n FROM vehicle_realtime LIMIT 1"
    )
    assert row is not None and row["cell_count"] == 192 and row["n"] == 384


@pytest.mark.asyncio
async def test_duplicates_and_reissues_are_written_once(rig: Rig) -> None:
    fleet = Fleet(10, seed=12, gbt_only=True)
    originals = []
    for _ in range(4):
        originals.append(fleet.reports())
        fleet.advance(10)
    frames = [f for rnd in originals for f in rnd]
    # the same data again as exact duplicates, and once more as reissues (0x03)
    reissues = [gbt32960.encode_frame(_as_reissue(gbt32960.decode_frame(f))) for f in frames]
    await submit_all(rig.pipeline, records_of(frames + frames[:15] + reissues))
    assert await rig.count("vehicle_realtime") == 40
    assert rig.writer.inserted_rows >= 40


def _as_reissue(frame: gbt32960.Frame) -> gbt32960.Frame:
    return msgspec.structs.replace(frame, command=0x03)


@pytest.mark.asyncio
async def test_outage_spools_then_replays_everything_once(rig: Rig) -> None:
    fleet = Fleet(10, seed=13, gbt_only=True)
    before = records_of(fleet.reports())
    await submit_all(rig.pipeline, before)
    rig.proxy.cut()  # the database is away
    during: list[list[Record]] = []
    for _ in range(5):
        fleet.advance(10)
        during += records_of(fleet.reports())
    await asyncio.wait_for(submit_all(rig.pipeline, during), 30)
    assert rig.pipeline.spooling
    assert rig.pipeline.stats.spooled_rows > 0
    assert await rig.count("vehicle_realtime") == 10  # only what came before the outage
    rig.proxy.restore()
    await rig.pipeline.wait_drained(timeout=30)
    assert rig.spool.spool.records == 0
    assert await rig.count("vehicle_realtime") == 60
    assert await rig.count("positions") == 60
    # after the drain, records go straight to the database again
    fleet.advance(10)
    await submit_all(rig.pipeline, records_of(fleet.reports()))
    assert not rig.pipeline.spooling
    assert await rig.count("vehicle_realtime") == 70


@pytest.mark.asyncio
async def test_backpressure_bounds_queued_rows(schema_dsn: str, tmp_path: Path) -> None:
    proxy = await TcpProxy("127.0.0.1", urlsplit(schema_dsn).port or 5432).start()
    pool = await create_pool(_via(schema_dsn, proxy.port), max_size=1, timeout=2)
    # a spool too small for even one batch: batches stay in memory and submitters must wait
    spool = await AsyncSpool.open(
        tmp_path / "spool",
        SpoolConfig(max_bytes=8192, segment_bytes=8192, max_record_bytes=8000, fsync="never"),
    )
    cfg = PipelineConfig(batch_rows=50, batch_age_ms=10, queue_rows=100, retry_interval_s=0.2)
    pipeline = Pipeline(StoreWriter(pool), spool, cfg)
    pipeline.start()
    proxy.cut()
    fleet = Fleet(30, seed=14, gbt_only=True)
    rows = [r for recs in records_of(fleet.reports() * 10) for r in recs]
    peak = 0

    async def producer() -> None:
        nonlocal peak
        for rec in rows:
            await pipeline.submit([rec])
            peak = max(peak, *pipeline.queued_rows().values())

    task = asyncio.create_task(producer())
    await asyncio.sleep(2.0)
    assert not task.done()  # blocked: nowhere to put the data
    assert 0 < peak <= 100  # per record type
    proxy.restore()
    await asyncio.wait_for(task, 60)
    await pipeline.close()
    await spool.close()
    await pool.close()
    await proxy.close()


@pytest.mark.asyncio
async def test_rejected_record_becomes_a_dead_letter(rig: Rig) -> None:
    fleet = Fleet(6, seed=15, gbt_only=True)
    batches = records_of(fleet.reports())
    bad = batches[2][0]
    assert isinstance(bad, VehicleRealtime)
    bad.soc_pct = 100_000  # does not fit the smallint column
    await submit_all(rig.pipeline, batches)
    assert await rig.count("vehicle_realtime") == 5
    letters = await rig.db.fetch("SELECT reason, message FROM dead_letters")
    assert [r["reason"] for r in letters] == ["store_rejected"]
    assert rig.pipeline.stats.rejected_rows == 1


@pytest.mark.asyncio
async def test_close_gives_up_after_its_timeout(schema_dsn: str, tmp_path: Path) -> None:
    """Database away and spool full: a stop waits ``timeout``, then cancels what is pending."""
    proxy = await TcpProxy("127.0.0.1", urlsplit(schema_dsn).port or 5432).start()
    pool = await create_pool(_via(schema_dsn, proxy.port), max_size=1, timeout=2)
    spool = await AsyncSpool.open(
        tmp_path / "spool",
        SpoolConfig(max_bytes=8192, segment_bytes=8192, max_record_bytes=8000, fsync="never"),
    )
    pipeline = Pipeline(StoreWriter(pool), spool, FAST)
    pipeline.start()
    proxy.cut()
    fut = await pipeline.submit(records_of(Fleet(20, seed=16, gbt_only=True).reports())[0] * 50)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await pipeline.close(timeout=1.0)
    assert 1.0 <= loop.time() - started < 10
    assert fut.cancelled()  # never acknowledged: the device will send it again
    await spool.close()
    await pool.close()
    await proxy.close()


class _DeadlockOnce:
    """The store's writer, but the first ``failures`` batches fail the way a deadlock with
    another writer's transaction does (asyncpg's DeadlockDetectedError, SQLSTATE 40P01)."""

    def __init__(self, inner: StoreWriter, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    async def write_batch(self, batch: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        await self.inner.write_batch(batch)

    async def write_rejected(self, batch: Any, error: BaseException) -> None:
        await self.inner.write_rejected(batch, error)


@pytest.mark.asyncio
@pytest.mark.parametrize(("failures", "spooled"), [(2, False), (4, True)])
async def test_deadlocks_are_retried_in_place_then_spooled(
    rig: Rig, failures: int, spooled: bool
) -> None:
    """retries_in_place=3: two deadlocks in a row are retried; a fourth failure spools."""
    writer = _DeadlockOnce(rig.writer, failures)
    async with Pipeline(writer, rig.spool, FAST) as pipeline:
        batches = records_of(Fleet(10, seed=17, gbt_only=True).reports())
        await submit_all(pipeline, batches)
        assert pipeline.stats.retries == min(failures, 3)
        assert (pipeline.stats.spooled_rows > 0) is spooled
        await pipeline.wait_drained(30)
    assert await rig.count("vehicle_realtime") == 10


@pytest.mark.asyncio
async def test_concurrent_writers_holding_the_same_keys(rig: Rig) -> None:
    """Two writers COPY the same 3,000 keys in opposite orders at once: each waits for the
    other's uncommitted rows (a deadlock, detected by the server, is retried in place); every key
    is stored once and nothing goes to the spool or the dead letters."""
    fleet = Fleet(300, seed=18, gbt_only=True)
    rows: list[Record] = []
    for _ in range(10):
        rows += [r for recs in records_of(fleet.reports()) for r in recs]
        fleet.advance(10)
    realtime = [r for r in rows if isinstance(r, VehicleRealtime)]
    assert len(realtime) == 3000
    cfg = msgspec.structs.replace(FAST, batch_rows=3000, batch_age_ms=1000, writers=2)
    async with Pipeline(rig.writer, rig.spool, cfg) as pipeline:
        first = await pipeline.submit(realtime)
        second = await pipeline.submit(realtime[::-1])
        await asyncio.gather(first, second)
        stats = pipeline.stats
    assert stats.committed_batches == 2
    assert stats.spooled_rows == 0 and stats.rejected_rows == 0
    assert await rig.count("vehicle_realtime") == 3000


@pytest.mark.asyncio
async def test_a_connection_lost_mid_copy_ends_the_write(schema_dsn: str) -> None:
    """The connection is lost while a large COPY is being sent to a server that stopped reading:
    the write ends at once with ConnectionLost, an outage for the pipeline, whatever asyncpg was
    waiting for. (asyncpg does not wake a COPY that waits for socket flow control when the
    connection is lost; in CI, a server killed mid-COPY left the writer waiting for good.)"""
    proxy = await TcpProxy("127.0.0.1", urlsplit(schema_dsn).port or 5432).start()
    pool = await create_pool(_via(schema_dsn, proxy.port), max_size=1, timeout=5)
    writer = StoreWriter(pool)
    frames = list(Fleet(200, seed=16, gbt_only=True).stream(rounds=150))
    batch: Batch = {
        VehicleRealtime: [
            r for rs in records_of(frames) for r in rs if isinstance(r, VehicleRealtime)
        ]
    }
    try:
        async with pool.acquire() as conn:
            await conn.execute("SELECT 1")  # connected through the proxy before the stall
        proxy.stall()  # the server stops reading: the COPY's sends back up
        task = asyncio.create_task(writer.write_batch(batch))
        await asyncio.sleep(1.0)
        assert not task.done()  # waiting for flow control
        proxy.cut()  # the connection is lost
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(task, 5)
        assert is_outage(ConnectionLost())
    finally:
        pool.terminate()
        await proxy.close()
