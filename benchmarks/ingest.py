"""Realtime records/s and receive-to-commit latency through the whole ingest Pipeline.

The pipeline under test is the production one: ``Pipeline`` + ``StoreWriter`` on an asyncpg pool
(``gateway.store.create_pool``, 4 connections) + an ``AsyncSpool`` in a temporary directory,
with ``PipelineConfig(batch_rows=5000, batch_age_ms=200)``. Records are realistic
``VehicleRealtime`` rows: GB/T 32960 realtime frames from ``gateway.simulator.Fleet`` (192
cells, 48 probes, a motor, extremes), decoded and normalized as the ingest path does, stamped
with a receive time; the real frames are then repeated with later times (the fleet driving on)
until there are ``--records`` distinct (vin, time) keys. All of it is built before any timing.

Throughput (``bench: ingest_realtime``), ``--rounds`` interleaved rounds of at most
``--seconds`` each (or until the records run out), each into an emptied table; medians:

* ``pipeline-dedup`` (``impl: pipeline`` too: de-duplication is the default) and
  ``pipeline-plain`` (``PipelineConfig(dedup=False)``): records submitted in groups of
  ``--group`` as fast as ``submit()`` takes them; the rate is records / (first submit to the
  last completion), so it is the committed rate;
* ``naive-insert``: the usual first version, ``await conn.execute("INSERT ... ON CONFLICT DO
  NOTHING", *row)`` per record, one transaction per 1000 records.

``ratio`` is ours / the baseline (``vs``) measured in the same run.

Latency (``bench: ingest_latency``): an open-loop load of ``--rate`` records/s (groups of
``--latency-group`` records on a timer) for ``--seconds``; the latency of a group runs from
the time it was due to be submitted (so waiting in ``submit()`` under backpressure counts)
until its completion resolves (committed). A rate counts as sustained when the submitter kept
up (finished less than 1 s behind schedule) and p99 < 1 s. If ``--rate`` is not sustained,
lower rates are tried (from the measured throughput down) and the highest sustained one is
reported too, with a ``note``.

Every line also carries ``load1`` (the 1-minute load average at the end): the database shares
this machine, so another busy process shows up in the figures.

Uses SILKGATE_DSN, or starts the local services with deploy/services.sh; works in its own
throw-away schema. Prints JSON lines.

    .venv/bin/python benchmarks/ingest.py [--records 200000] [--seconds 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec

from gateway.codecs import gbt32960
from gateway.config import PipelineConfig
from gateway.normalize import normalize
from gateway.pipeline import Pipeline
from gateway.records import VehicleRealtime
from gateway.simulator import Fleet
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store import connect, create_pool, migrate
from gateway.store.tables import TABLES
from gateway.store.testing import local_dsn, scratch_schema

REPO = Path(__file__).resolve().parents[1]
NAIVE_BATCH = 1000  # records per transaction of the naive loop (as benchmarks/ingest_copy.py)
INTERVAL_S = 10  # seconds between two reports of a truck
SUSTAINED_LAG_S = 1.0  # a sustained rate: the submitter ends less than this behind schedule ...
P99_LIMIT_MS = 1000.0  # ... and p99 is below this
GIVE_UP_LAG_S = 3.0  # stop offering a rate once this far behind schedule


def _dsn() -> str:
    return local_dsn(REPO)


def make_records(n: int, trucks: int = 500, rounds: int = 4) -> list[VehicleRealtime]:
    """``n`` records with distinct (vin, time): ``rounds`` real reports of ``trucks`` trucks,
    then the same reports again with later times (``rounds * INTERVAL_S`` seconds on each time)."""
    fleet = Fleet(trucks, gbt_only=True, start=datetime(2026, 1, 1, tzinfo=UTC))
    frames: list[bytes] = []
    for _ in range(rounds):
        frames += fleet.reports()
        fleet.advance(INTERVAL_S)
    real = [
        rec
        for raw in frames
        for rec in normalize(gbt32960.decode_frame(raw))
        if isinstance(rec, VehicleRealtime)
    ]
    replace = msgspec.structs.replace
    step = timedelta(seconds=rounds * INTERVAL_S)
    out: list[VehicleRealtime] = []
    for i in range(n):
        rec = real[i % len(real)]
        when = rec.time + step * (i // len(real))
        out.append(replace(rec, time=when, received_at=when + timedelta(milliseconds=150)))
    return out


def _load1() -> float:
    return round(os.getloadavg()[0], 2)


def emit(bench: str, **fields: object) -> None:
    print(json.dumps({"bench": bench, **fields, "load1": _load1()}), flush=True)


# -- the baseline ----------------------------------------------------------------------------


async def naive_phase(
    conn: asyncpg.Connection, records: list[VehicleRealtime], seconds: float
) -> tuple[int, float]:
    """(records written, elapsed s): one INSERT per record, a transaction per NAIVE_BATCH."""
    spec = TABLES[VehicleRealtime]
    cols = ", ".join(f'"{c}"' for c in spec.columns)
    params = ", ".join(f"${i}" for i in range(1, len(spec.columns) + 1))
    sql = f"INSERT INTO {spec.name} ({cols}) VALUES ({params}) ON CONFLICT DO NOTHING"
    await conn.execute("TRUNCATE vehicle_realtime")
    done = 0
    start = time.perf_counter()
    for i in range(0, len(records), NAIVE_BATCH):
        chunk = records[i : i + NAIVE_BATCH]
        async with conn.transaction():
            for record in chunk:
                await conn.execute(sql, *spec.to_row(record))
        done += len(chunk)
        if time.perf_counter() - start >= seconds:
            break
    return done, time.perf_counter() - start


# -- the pipeline ----------------------------------------------------------------------------


class Harness:
    """A pool, a connection for TRUNCATE and the baseline, a spool directory; one pipeline per
    phase, over an emptied table."""

    def __init__(self, pool: asyncpg.Pool, conn: asyncpg.Connection, spool_dir: str) -> None:
        self.pool = pool
        self.conn = conn
        self.spool_dir = spool_dir
        self.phases = 0

    async def run(self, cfg: PipelineConfig, records: list[VehicleRealtime], feed: Feed) -> float:
        """Run ``feed`` against a fresh pipeline; returns the feed's elapsed seconds."""
        await self.conn.execute("TRUNCATE vehicle_realtime")
        self.phases += 1
        directory = os.path.join(self.spool_dir, f"phase-{self.phases}")
        writer = StoreWriter(self.pool, dedup=cfg.dedup)
        async with await AsyncSpool.open(directory, SpoolConfig()) as spool:
            pipeline = Pipeline(writer, spool, cfg)
            async with pipeline:
                elapsed = await feed(pipeline, records)
            stats = pipeline.stats
        if stats.spooled_rows or stats.rejected_rows:
            raise SystemExit(f"the database was away or refused rows during the run: {stats}")
        if writer.inserted_rows != stats.submitted_rows:
            raise SystemExit(f"{writer.inserted_rows} rows inserted of {stats.submitted_rows}")
        return elapsed


Feed = Callable[[Pipeline, list[VehicleRealtime]], Awaitable[float]]


class Flood:
    """Submit groups as fast as ``submit()`` takes them (backpressure), for at most ``seconds``."""

    def __init__(self, group: int, seconds: float) -> None:
        self.group = group
        self.seconds = seconds
        self.records = 0

    async def __call__(self, pipeline: Pipeline, records: list[VehicleRealtime]) -> float:
        futures = []
        start = time.perf_counter()
        for i in range(0, len(records), self.group):
            futures.append(await pipeline.submit(records[i : i + self.group]))
            if time.perf_counter() - start >= self.seconds:
                break
        await asyncio.gather(*futures)
        self.records = pipeline.stats.submitted_rows
        return time.perf_counter() - start


class Paced:
    """An open-loop load: ``rate`` records/s in groups of ``group``, for ``seconds``."""

    def __init__(self, rate: float, group: int, seconds: float) -> None:
        self.rate = rate
        self.group = group
        self.seconds = seconds
        self.latencies_ms: list[float] = []
        self.lag_s = 0.0  # how far behind schedule the last submission was
        self.records = 0
        self.elapsed = 0.0

    async def __call__(self, pipeline: Pipeline, records: list[VehicleRealtime]) -> float:
        period = self.group / self.rate
        groups = min(len(records) // self.group, int(self.seconds / period))
        futures = []
        start = time.perf_counter()
        for g in range(groups):
            due = start + g * period
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            fut = await pipeline.submit(records[g * self.group : (g + 1) * self.group])
            fut.add_done_callback(self._timer(due))
            futures.append(fut)
            self.records += self.group
            self.lag_s = time.perf_counter() - due
            if self.lag_s > GIVE_UP_LAG_S:
                break
        await asyncio.gather(*futures)
        return time.perf_counter() - start

    def _timer(self, due: float) -> Callable[[asyncio.Future[None]], None]:
        def done(_: asyncio.Future[None]) -> None:
            self.latencies_ms.append((time.perf_counter() - due) * 1000)

        return done

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    @property
    def sustained(self) -> bool:
        return self.lag_s < SUSTAINED_LAG_S and self.percentile(0.99) < P99_LIMIT_MS


# -- the run ---------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    records = make_records(args.records)
    print(f"{len(records)} records built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    base = PipelineConfig(
        batch_rows=args.batch_rows, batch_age_ms=args.batch_age_ms, writers=args.writers
    )
    configs = {
        "pipeline-plain": msgspec.structs.replace(base, dedup=False),
        "pipeline-dedup": msgspec.structs.replace(base, dedup=True),
    }
    rates: dict[str, list[float]] = {"naive-insert": [], **{impl: [] for impl in configs}}
    async with scratch_schema(_dsn(), prefix="silkgate_bench") as dsn:
        await migrate(dsn)
        pool = await create_pool(dsn, max_size=4)
        conn = await connect(dsn)
        try:
            with tempfile.TemporaryDirectory(prefix="silkgate-ingest-bench-") as spool_dir:
                harness = Harness(pool, conn, spool_dir)
                await harness.run(base, records[: args.batch_rows], Flood(args.group, 1.0))
                # Rounds interleave the implementations, so load from elsewhere hits all alike.
                for _ in range(args.rounds):
                    done, elapsed = await naive_phase(conn, records, args.seconds)
                    rates["naive-insert"].append(done / elapsed)
                    for impl, cfg in configs.items():
                        flood = Flood(args.group, args.seconds)
                        elapsed = await harness.run(cfg, records, flood)
                        rates[impl].append(flood.records / elapsed)
                median = {impl: statistics.median(r) for impl, r in rates.items()}
                report_throughput(median, args)
                await measure_latency(harness, base, records, median["pipeline-dedup"], args)
        finally:
            await conn.close()
            await pool.close()
    print(f"done in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def report_throughput(median: dict[str, float], args: argparse.Namespace) -> None:
    common = {
        "rounds": args.rounds,
        "group": args.group,
        "batch_rows": args.batch_rows,
        "writers": args.writers,
    }
    naive = median["naive-insert"]
    dedup, plain = median["pipeline-dedup"], median["pipeline-plain"]
    emit("ingest_realtime", impl="naive-insert", per_s=round(naive), **common)
    emit(
        "ingest_realtime",
        impl="pipeline",
        per_s=round(dedup),
        vs="naive-insert",
        ratio=round(dedup / naive, 2),
        dedup=True,
        **common,
    )
    emit(
        "ingest_realtime",
        impl="pipeline-plain",
        per_s=round(plain),
        vs="naive-insert",
        ratio=round(plain / naive, 2),
        **common,
    )
    emit(
        "ingest_realtime",
        impl="pipeline-dedup",
        per_s=round(dedup),
        vs="pipeline-plain",
        ratio=round(dedup / plain, 3),
        **common,
    )


async def measure_latency(
    harness: Harness,
    cfg: PipelineConfig,
    records: list[VehicleRealtime],
    throughput: float,
    args: argparse.Namespace,
) -> None:
    """p50/p99 at ``--rate``; if that is not sustained, also at the highest rate that is."""
    first = await paced(harness, cfg, records, args.rate, args)
    if first.sustained:
        emit_latency(first, args)
        return
    # Lower rates, from just under the measured throughput down, until one is sustained.
    rate = min(args.rate, throughput) * 0.9
    best: Paced | None = None
    for _ in range(args.search):
        rate = float(max(1000, int(rate) // 1000 * 1000))
        feed = await paced(harness, cfg, records, rate, args)
        if feed.sustained:
            best = feed
            break
        rate *= 0.75
    if best is None:
        note = f"{args.rate:.0f}/s not sustained; no lower rate tried was sustained either"
        emit_latency(first, args, note=note)
        return
    emit_latency(
        first,
        args,
        note=f"{args.rate:.0f}/s not sustained here; highest sustained: {best.rate:.0f}/s",
        sustained_per_s=round(best.rate),
    )
    emit_latency(best, args, note="highest offered rate sustained (of those tried)")


async def paced(
    harness: Harness,
    cfg: PipelineConfig,
    records: list[VehicleRealtime],
    rate: float,
    args: argparse.Namespace,
) -> Paced:
    feed = Paced(rate, args.latency_group, args.seconds)
    feed.elapsed = await harness.run(cfg, records, feed)
    return feed


def emit_latency(feed: Paced, args: argparse.Namespace, **extra: object) -> None:
    emit(
        "ingest_latency",
        impl="pipeline",
        offered_per_s=round(feed.rate),
        achieved_per_s=round(feed.records / feed.elapsed),
        p50_ms=feed.percentile(0.50),
        p99_ms=feed.percentile(0.99),
        max_ms=round(max(feed.latencies_ms), 1),
        sustained=feed.sustained,
        lag_s=round(feed.lag_s, 3),
        records=feed.records,
        group=feed.group,
        batch_rows=args.batch_rows,
        **extra,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=250_000, help="distinct records built")
    parser.add_argument("--seconds", type=float, default=5.0, help="time per phase")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median)")
    parser.add_argument("--group", type=int, default=100, help="records per submit (throughput)")
    parser.add_argument("--rate", type=float, default=50_000, help="offered records/s (latency)")
    parser.add_argument("--latency-group", type=int, default=50, help="records per paced submit")
    parser.add_argument("--search", type=int, default=3, help="lower rates tried at most")
    parser.add_argument("--batch-rows", type=int, default=5000)
    parser.add_argument("--batch-age-ms", type=int, default=200)
    parser.add_argument(
        "--writers", type=int, default=PipelineConfig().writers, help="batches written at once"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
