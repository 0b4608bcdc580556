"""Faults against the real TimescaleDB, each bounded in time and ending by itself:

* PostgreSQL's postmaster killed with SIGKILL in the middle of a 200,000-frame ingest, then
  restarted: the pipeline spools meanwhile and replays after; every frame is stored once, and no
  completion resolved for data that was not durable.
* The gateway process killed with SIGKILL while it spools: a new pipeline on the same spool
  replays it, and every acknowledged record is stored once.
* A stalled database with a small, full spool: a producer that submits as fast as it can is
  blocked, and memory stays within a bound derived from ``queue_rows``; then everything drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import signal
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from gateway.codecs import gbt32960
from gateway.config import PipelineConfig
from gateway.normalize import normalize
from gateway.pipeline import Pipeline
from gateway.records import VehicleRealtime
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store.connection import create_pool
from gateway.store.testing import connect_retry, migrated_schema
from gateway.testing import TcpProxy

from . import faultkit

FAULTKIT = Path(faultkit.__file__)
SERVICES_SH = Path(__file__).resolve().parents[2] / "deploy" / "services.sh"
CACHE = Path(os.environ.get("SILKGATE_CACHE", "/var/cache/silkgate"))
PG_DATA = CACHE / "state" / "postgresql" / "data"
PG_BIN = "/usr/lib/postgresql/17/bin"

Key = faultkit.Key


@pytest.fixture(scope="module")
def schema_dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_fault")


@pytest.fixture(scope="module", autouse=True)
def _free_traffic() -> Iterator[None]:
    """The 200,000-frame traffic (~300 MB, shared with test_exactly_once.py) is not kept for
    the rest of the session."""
    yield
    faultkit.traffic.cache_clear()


def _via(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{port}"))


async def _stored_keys(db: asyncpg.Connection) -> list[Key]:
    return [(r["vin"], r["time"]) for r in await db.fetch("SELECT vin, time FROM vehicle_realtime")]


async def _truncate(dsn: str) -> None:
    db = await connect_retry(dsn)
    try:
        await db.execute("TRUNCATE vehicle_realtime, positions, alarms, dead_letters")
    finally:
        await db.close()


async def _later_copies(db: asyncpg.Connection) -> int:
    """Rows that are not the first copy of their frame (a reissue, or a duplicate's time)."""
    n: int = await db.fetchval(
        "SELECT count(*) FROM vehicle_realtime "
        f"WHERE reissue OR received_at <> time + interval '{faultkit.RECEIVED_AFTER.seconds} s'"
    )
    return n


# -- 1. kill -9 of PostgreSQL mid-ingest ------------------------------------------------------


def _postmaster_pid() -> int:
    """The pid in the cluster's postmaster.pid, checked as services.sh checks it."""
    pid = int((PG_DATA / "postmaster.pid").read_text().split("\n", 1)[0])
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    cwd, data = os.stat(f"/proc/{pid}/cwd"), os.stat(PG_DATA)
    assert (cwd.st_dev, cwd.st_ino) == (data.st_dev, data.st_ino), "not our cluster's postmaster"
    return pid


async def _checkpoint(port: int) -> None:
    """Best effort: CHECKPOINT as the postgres superuser over the unix socket, so that crash
    recovery after the kill replays little WAL and the outage stays short for everyone."""
    root = CACHE / "trixie"
    psql = [f"{PG_BIN}/psql", "-X", "-q", "-h", "/run/postgresql", "-p", str(port)]
    psql += ["-d", "postgres", "-c", "CHECKPOINT"]
    env = ["/usr/bin/env", "-i", f"PATH={PG_BIN}:/usr/bin:/bin"]
    if (root / ".silkgate-root").exists():
        ids = next(
            f"{p[2]}:{p[3]}"
            for p in (line.split(":") for line in (root / "etc/passwd").read_text().splitlines())
            if p[0] == "postgres"
        )
        cmd = ["chroot", f"--userspec={ids}", f"--groups={ids.split(':')[1]}", str(root)]
    else:
        cmd = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    with contextlib.suppress(OSError, TimeoutError):
        proc = await asyncio.create_subprocess_exec(
            *cmd, *env, *psql, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            await asyncio.wait_for(proc.wait(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _start_postgres(killed_pid: int | None) -> int:
    """``deploy/services.sh start`` once the killed postmaster is gone; retried while its
    orphaned backends still hold the old shared memory. Returns the attempts it took."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while killed_pid is not None and Path(f"/proc/{killed_pid}").exists():
        assert loop.time() < deadline, f"the killed postmaster {killed_pid} does not go away"
        await asyncio.sleep(0.05)
    attempts = 0
    while True:
        attempts += 1
        proc = await asyncio.create_subprocess_exec(
            "bash",
            str(SERVICES_SH),
            "start",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        if proc.returncode == 0:
            return attempts
        if loop.time() > deadline:
            raise RuntimeError(f"services.sh start failed:\n{out.decode(errors='replace')}")
        await asyncio.sleep(0.3)


@dataclass
class Submission:
    first: int  # index of its first frame in Traffic.frames
    count: int
    submitted_at: float
    resolved_at: float | None = None
    error: BaseException | None = None

    def resolved(self, fut: asyncio.Future[None]) -> None:
        self.resolved_at = time.monotonic()
        self.error = fut.exception() if not fut.cancelled() else asyncio.CancelledError()


@dataclass
class Outage:
    down: bool = False  # killed and not restarted yet
    killed_at: float = 0.0
    start_at: float = 0.0
    starts: int = 0
    restarted_at: float = 0.0
    frames_submitted: int = 0  # when the postmaster was killed
    acked_before_kill: list[Submission] = field(default_factory=list)
    present_after_restart: bool | None = None


@pytest.mark.asyncio
async def test_postgres_kill9_mid_ingest_spools_and_replays(
    services: Any, schema_dsn: str, tmp_path: Path
) -> None:
    if services.origin != "local" or os.geteuid() != 0:
        pytest.skip("needs the local PostgreSQL of deploy/services.sh, as root")
    t = faultkit.traffic(1000, 200)
    chunk = 25
    kill_at = len(t.frames) * 3 // 10  # frames submitted before the kill
    outage_s = 1.0  # the database stays down this long; the pipeline must spool meanwhile
    await _truncate(schema_dsn)
    port = urlsplit(services.dsn).port or 55432
    pool = await create_pool(schema_dsn, max_size=2, timeout=5, command_timeout=30)
    spool = await AsyncSpool.open(tmp_path / "spool", SpoolConfig(fsync="always"))
    cfg = PipelineConfig(
        batch_rows=5000,
        batch_age_ms=50,
        queue_rows=20_000,
        retry_interval_s=0.2,
        replay_rows_per_s=1_000_000,
    )
    subs: list[Submission] = []
    outage = Outage()
    killed: int | None = None
    restart: asyncio.Task[None] | None = None

    killing = asyncio.Event()

    async def kill_then_restart() -> None:
        nonlocal killed
        killed = _postmaster_pid()
        outage.acked_before_kill = [s for s in subs if s.resolved_at is not None]
        outage.frames_submitted = sum(s.count for s in subs)
        outage.killed_at = time.monotonic()
        outage.down = True
        os.kill(killed, signal.SIGKILL)
        killing.set()
        await asyncio.sleep(outage_s)
        outage.start_at = time.monotonic()
        outage.starts = await _start_postgres(killed)
        outage.down = False
        outage.restarted_at = time.monotonic()
        # Committed before the crash, so present after crash recovery, before any replay.
        db = await connect_retry(schema_dsn)
        try:
            stored = set(await _stored_keys(db))
        finally:
            await db.close()
        outage.present_after_restart = all(
            t.keys(s.first, s.count) <= stored for s in outage.acked_before_kill
        )

    # Before the ingest, so the kill comes promptly at kill_at (the pipeline commits ~50,000
    # rows/s: a checkpoint taken meanwhile let the whole ingest finish first) and the crash
    # recovery replays only the WAL of this ingest.
    await _checkpoint(port)
    try:
        async with asyncio.timeout(300), Pipeline(StoreWriter(pool), spool, cfg) as pipeline:
            futures = []
            for first, records in t.chunks(chunk):
                # one row per frame (the wide realtime row) keeps 200,000 frames quick
                records = [r for r in records if isinstance(r, VehicleRealtime)]
                if restart is None and first >= kill_at:
                    restart = asyncio.create_task(kill_then_restart(), name="kill-restart")
                    await killing.wait()  # mid-ingest for sure: 70 % of the frames still to come
                sub = Submission(first, min(chunk, len(t.frames) - first), time.monotonic())
                fut = await pipeline.submit(records)
                fut.add_done_callback(sub.resolved)
                subs.append(sub)
                futures.append(fut)
            assert restart is not None
            await asyncio.wait_for(restart, 150)
            await asyncio.wait_for(asyncio.gather(*futures), 120)
            await pipeline.wait_drained(timeout=120)
    finally:
        if restart is not None and not restart.done():
            restart.cancel()
            with contextlib.suppress(BaseException):
                await restart
        if outage.down:
            await _start_postgres(killed)  # whatever happened, leave the database running
        await spool.close()
        await pool.close()

    stats = pipeline.stats
    assert stats.outages >= 1 and stats.spooled_rows > 0
    assert stats.replayed_rows >= stats.spooled_rows
    assert spool.spool.records == 0
    assert all(s.error is None for s in subs)
    assert outage.acked_before_kill, "nothing was committed before the kill"
    assert outage.present_after_restart, "a completion resolved before a durable commit"
    during = [
        s
        for s in subs
        if s.resolved_at is not None and outage.killed_at < s.resolved_at < outage.restarted_at
    ]
    assert during, "no completion resolved from the spool while the database was down"

    db = await asyncpg.connect(schema_dsn)
    try:
        keys = await _stored_keys(db)
        assert len(keys) == len(set(keys)) == len(t.originals)
        stored = set(keys)
        for s in subs:  # every resolved completion's records are there
            assert s.resolved_at is not None and t.keys(s.first, s.count) <= stored
        assert stored == {faultkit.key(t.realtime(n)) for n in range(len(t.originals))}
        # replayed in order: the first copy of every frame is the one stored
        assert await _later_copies(db) == 0
    finally:
        await db.close()
    print(
        f"\nkill -9 after {outage.frames_submitted:,} frames submitted: "
        f"down {outage.restarted_at - outage.killed_at:.1f} s "
        f"(restart {outage.restarted_at - outage.start_at:.1f} s, {outage.starts} attempts), "
        f"{len(outage.acked_before_kill):,} completions before, {len(during):,} during; "
        f"spooled {stats.spooled_rows:,} rows, replayed {stats.replayed_rows:,}"
    )


# -- 2. kill -9 of the gateway while it spools ---------------------------------------------


@pytest.mark.asyncio
async def test_gateway_kill9_then_new_pipeline_replays_the_spool(
    schema_dsn: str, tmp_path: Path
) -> None:
    trucks, rounds, seed = 100, 60, 808
    t = faultkit.traffic(trucks, rounds, bytes_every=4, seed=seed)
    await _truncate(schema_dsn)
    host = urlsplit(schema_dsn).hostname or "127.0.0.1"
    proxy = await TcpProxy(host, urlsplit(schema_dsn).port or 5432).start()
    spool_dir = tmp_path / "spool"
    cmd = [sys.executable, str(FAULTKIT), "child", "--dsn", _via(schema_dsn, proxy.port)]
    cmd += ["--spool", str(spool_dir), "--trucks", str(trucks), "--rounds", str(rounds)]
    cmd += ["--seed", str(seed), "--bytes-every", "4", "--chunk", "10", "--pace-ms", "2"]
    acked: list[tuple[int, int, str]] = []
    lines: list[str] = []
    stderr = tmp_path / "child.stderr"
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=err
        )
    try:
        assert proc.stdout is not None
        frames, cut = 0, False
        cut_at, kill_at = len(t.frames) // 4, len(t.frames) * 3 // 5

        async def read_until_killed() -> None:
            nonlocal frames, cut
            assert proc.stdout is not None
            while line := (await proc.stdout.readline()).decode():
                lines.append(line)
                word, *rest = line.split()
                if word == "acked":
                    acked.append((int(rest[0]), int(rest[1]), rest[2]))
                    frames += int(rest[1])
                if frames >= cut_at and not cut:
                    proxy.cut()  # the database goes away: the child spools from now on
                    cut = True
                if frames >= kill_at and proc.returncode is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
            # what the child printed before it died still counts
            while line := (await proc.stdout.readline()).decode():
                lines.append(line)
                word, *rest = line.split()
                if word == "acked":
                    acked.append((int(rest[0]), int(rest[1]), rest[2]))

        await asyncio.wait_for(read_until_killed(), 90)
        rc = await asyncio.wait_for(proc.wait(), 10)
        assert rc == -signal.SIGKILL, (rc, stderr.read_text(errors="replace")[-3000:])
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proxy.close()
    assert not any(line.startswith(("failed", "done")) for line in lines), lines[-5:]
    assert {mode for *_, mode in acked} == {"db", "spool"}  # both kinds of durability
    acked_frames = sum(n for _, n, _ in acked)
    assert kill_at <= acked_frames < len(t.frames)  # killed mid-stream

    spool = await AsyncSpool.open(spool_dir, SpoolConfig(fsync="always"))
    backlog = spool.spool.records
    pool = await create_pool(schema_dsn, max_size=2, timeout=5)
    try:
        assert backlog > 0
        cfg = PipelineConfig(batch_rows=500, batch_age_ms=20, retry_interval_s=0.2)
        async with Pipeline(StoreWriter(pool), spool, cfg) as pipeline:
            assert pipeline.spooling  # a backlog from the killed process
            await pipeline.wait_drained(timeout=60)
        assert spool.spool.records == 0
    finally:
        await spool.close()
        await pool.close()

    db = await asyncpg.connect(schema_dsn)
    try:
        keys = await _stored_keys(db)
        assert len(keys) == len(set(keys))
        stored = set(keys)
        everything = {faultkit.key(t.realtime(n)) for n in range(len(t.originals))}
        assert stored <= everything  # nothing that was not submitted
        for first, count, _ in acked:  # every acknowledged record, exactly once
            assert t.keys(first, count) <= stored
        # contents: the stored odometers are the submitted ones
        odo = {
            (r["vin"], r["time"]): r["odometer_km"]
            for r in await db.fetch("SELECT vin, time, odometer_km FROM vehicle_realtime")
        }
        by_key = {faultkit.key(rt): rt for rt in map(t.realtime, range(len(t.originals)))}
        assert all(odo[k] == by_key[k].odometer_km for k in stored)
        assert await _later_copies(db) == 0
    finally:
        await db.close()
    print(
        f"\nchild killed after {acked_frames:,} of {len(t.frames):,} frames acknowledged; "
        f"{backlog} spooled batches replayed; {len(stored):,} rows stored"
    )


# -- 3. backpressure: memory stays bounded while the database stalls -------------------------


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


@dataclass
class Producer:
    frames: list[bytes]
    submitted: int = 0
    futures: list[asyncio.Future[None]] = field(default_factory=list)

    async def run(self, pipeline: Pipeline) -> None:
        for raw in self.frames:  # decoded here, as an adapter does: fresh objects every time
            self.futures.append(await pipeline.submit(normalize(gbt32960.decode_frame(raw))))
            self.submitted += 1


@contextlib.asynccontextmanager
async def _traced() -> AsyncIterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


@pytest.mark.asyncio
async def test_backpressure_bounds_memory_while_the_database_stalls(
    schema_dsn: str, tmp_path: Path
) -> None:
    queue_rows, stall_s, still_s = 2000, 4.0, 2.0
    frames = faultkit.encoded(100, 80)  # 8,000 frames, 16,000 rows
    await _truncate(schema_dsn)
    proxy = await TcpProxy("127.0.0.1", urlsplit(schema_dsn).port or 5432).start()
    pool = await create_pool(_via(schema_dsn, proxy.port), max_size=1, timeout=2)
    spool = await AsyncSpool.open(
        tmp_path / "spool",
        SpoolConfig(
            max_bytes=1 << 20, segment_bytes=128 << 10, max_record_bytes=64 << 10, fsync="always"
        ),
    )
    cfg = PipelineConfig(
        batch_rows=500, batch_age_ms=20, queue_rows=queue_rows, retry_interval_s=0.2
    )
    producer = Producer(frames)
    task: asyncio.Task[None] | None = None
    try:
        async with _traced(), Pipeline(StoreWriter(pool), spool, cfg) as pipeline:
            # bytes per frame once decoded and normalized (what the pipeline holds per frame)
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            sample = [normalize(gbt32960.decode_frame(raw)) for raw in frames[:1000]]
            frame_bytes = (tracemalloc.get_traced_memory()[0] - before) / len(sample)
            rows_per_frame = sum(map(len, sample)) / len(sample)
            del sample
            # queue_rows bounds each record type and every frame has one VehicleRealtime row,
            # so at most queue_rows frames are held. Fixed overhead: the held batch's spool
            # encoding, the replay's spool reads (some awaiting the cyclic GC), the event loop.
            bound = 3 * queue_rows * frame_bytes + (8 << 20)

            proxy.cut()  # the database stalls
            try:
                gc.collect()
                base, rss_base = tracemalloc.get_traced_memory()[0], _rss()
                tracemalloc.reset_peak()
                task = asyncio.create_task(producer.run(pipeline), name="producer")
                rss_peak, queued_peak = rss_base, 0
                started = time.monotonic()
                last, moved_at = producer.submitted, 0.0  # when the producer last got further
                while True:  # at least stall_s, and until the producer waited still_s
                    await asyncio.sleep(0.05)
                    rss_peak = max(rss_peak, _rss())
                    queued_peak = max(queued_peak, *pipeline.queued_rows().values(), 0)
                    elapsed = time.monotonic() - started
                    if producer.submitted != last:
                        last, moved_at = producer.submitted, elapsed
                    # (a loaded machine fsyncs slowly: filling the spool may take longer)
                    if (elapsed >= stall_s and elapsed - moved_at >= still_s) or elapsed > 30:
                        break
                growth = tracemalloc.get_traced_memory()[1] - base
                tracemalloc.stop()
                assert spool.spool.records > 0  # the spool took what it could ...
                assert not task.done()  # ... and is full: the producer waits
                blocked_at = producer.submitted
                assert elapsed - moved_at >= still_s, (elapsed, moved_at, blocked_at)
                assert blocked_at < len(frames) // 2
                assert queued_peak <= queue_rows
                assert growth < bound, (growth, bound, frame_bytes)
                assert rss_peak - rss_base < bound + (32 << 20), (rss_peak - rss_base, bound)
            finally:
                proxy.restore()  # the database is back (before close: it drains)
            await asyncio.wait_for(task, 60)
            await asyncio.wait_for(asyncio.gather(*producer.futures), 60)
            await pipeline.wait_drained(timeout=60)
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task  # (its exception, if it failed, is the test's failure's echo)
        proxy.restore()
        await spool.close()
        await pool.close()
        await proxy.close()
    assert spool.spool.records == 0
    db = await asyncpg.connect(schema_dsn)
    try:
        assert await db.fetchval("SELECT count(*) FROM vehicle_realtime") == len(frames)
        assert await db.fetchval("SELECT count(*) FROM positions") == len(frames)
    finally:
        await db.close()
    print(
        f"\nstalled {elapsed:.1f} s: producer blocked after {blocked_at:,} frames, "
        f"queued peak {queued_peak:,} rows; {frame_bytes:,.0f} B/frame ({rows_per_frame:.2f} "
        f"rows), traced growth {growth / 2**20:.1f} MiB, RSS growth "
        f"{(rss_peak - rss_base) / 2**20:.1f} MiB, bound {bound / 2**20:.1f} MiB"
    )
