"""Rows/s into vehicle_realtime: plain COPY, de-duplicating COPY, and a naive INSERT loop.

All three write the same realistic rows (the GB/T 32960 vector GB-12, normalized, with varied VIN
and time: 192 cells, 48 probes, two motors, jsonb extras) in batches of --batch rows, one
transaction per batch as the pipeline does, into an emptied table each time:

* ``copy-plain``: ``write(..., dedup=False)``, binary COPY straight into the hypertable;
* ``copy-dedup``: ``write(...)``, COPY into the TEMP staging table + INSERT ON CONFLICT DO NOTHING;
* ``naive-insert``: ``await conn.execute("INSERT ... ON CONFLICT DO NOTHING", *row)`` per row,
  the usual first version (same rows, same de-duplication, same transactions).

``copy-dedup-replay`` then writes the dedup rows again (all duplicates: a spool replay). The
implementations take turns for --rounds rounds of --seconds/--rounds each (or until the rows run
out), so load from elsewhere hits all alike; the figures are the medians. Prints JSON lines.
Uses SILKGATE_DSN, or starts the local services with deploy/services.sh; works in its own
throw-away schema.

    .venv/bin/python benchmarks/ingest_copy.py [--rows 60000] [--batch 1000] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import asyncpg
import msgspec

from gateway.codecs.gbt32960.reference import decode_frame
from gateway.normalize import normalize
from gateway.records import VehicleRealtime
from gateway.store import connect, migrate, write
from gateway.store.tables import TABLES
from gateway.store.testing import local_dsn, scratch_schema

REPO = Path(__file__).resolve().parents[1]
VECTORS = Path("/work/shared/vectors/gbt32960.json")

Writer = Callable[[asyncpg.Connection, list[VehicleRealtime]], Awaitable[int]]


def _dsn() -> str:
    return local_dsn(REPO)


def make_rows(n: int, vins: int = 500) -> list[VehicleRealtime]:
    """``n`` distinct rows: GB-12 for ``vins`` vehicles, 10 s apart."""
    vector = next(v for v in json.loads(VECTORS.read_text()) if v["id"] == "GB-12")
    template = next(
        r
        for r in normalize(decode_frame(bytes.fromhex(vector["hex"])))
        if isinstance(r, VehicleRealtime)
    )
    replace = msgspec.structs.replace
    return [
        replace(
            template,
            vin=f"LBENCH{i % vins:011d}",
            time=template.time + timedelta(seconds=10 * (i // vins)),
            odometer_km=(template.odometer_km or 0) + i // vins / 100,
            soc_pct=50 + i % 40,
        )
        for i in range(n)
    ]


def _naive_writer() -> Writer:
    spec = TABLES[VehicleRealtime]
    cols = ", ".join(f'"{c}"' for c in spec.columns)
    params = ", ".join(f"${i}" for i in range(1, len(spec.columns) + 1))
    sql = f"INSERT INTO {spec.name} ({cols}) VALUES ({params}) ON CONFLICT DO NOTHING"

    async def insert(conn: asyncpg.Connection, batch: list[VehicleRealtime]) -> int:
        for record in batch:
            await conn.execute(sql, *spec.to_row(record))
        return len(batch)

    return insert


async def _copy_plain(conn: asyncpg.Connection, batch: list[VehicleRealtime]) -> int:
    return await write(conn, VehicleRealtime, batch, dedup=False)


async def _copy_dedup(conn: asyncpg.Connection, batch: list[VehicleRealtime]) -> int:
    return await write(conn, VehicleRealtime, batch)


async def run_phase(
    conn: asyncpg.Connection,
    writer: Writer,
    rows: list[VehicleRealtime],
    batch: int,
    seconds: float,
    *,
    truncate: bool = True,
) -> tuple[int, int, float]:
    """(rows offered, rows inserted, elapsed seconds) for one implementation."""
    if truncate:
        await conn.execute("TRUNCATE vehicle_realtime")
    offered = inserted = 0
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        chunk = rows[i : i + batch]
        async with conn.transaction():
            inserted += await writer(conn, chunk)
        offered += len(chunk)
        if time.perf_counter() - start >= seconds:
            break
    return offered, inserted, time.perf_counter() - start


def emit(**fields: object) -> None:
    print(json.dumps({"bench": "ingest_copy", **fields}), flush=True)


async def main_async(args: argparse.Namespace) -> None:
    rows = make_rows(args.rows)
    impls: dict[str, Writer] = {
        "copy-plain": _copy_plain,
        "copy-dedup": _copy_dedup,
        "naive-insert": _naive_writer(),
    }
    per_round = args.seconds / args.rounds
    rates: dict[str, list[float]] = {name: [] for name in [*impls, "copy-dedup-replay"]}
    async with scratch_schema(_dsn(), prefix="silkgate_bench") as dsn:
        await migrate(dsn)
        conn = await connect(dsn)
        try:
            await run_phase(conn, _copy_dedup, rows[: args.batch], args.batch, 1.0)  # warm-up
            # Rounds interleave the implementations, so load from elsewhere hits all alike.
            for _ in range(args.rounds):
                for impl, writer in impls.items():
                    offered, inserted, elapsed = await run_phase(
                        conn, writer, rows, args.batch, per_round
                    )
                    if impl != "naive-insert":
                        assert inserted == offered, (impl, inserted, offered)
                    rates[impl].append(offered / elapsed)
                    if impl == "copy-dedup":  # the same rows again: all duplicates
                        replayed, dup, replay_s = await run_phase(
                            conn, writer, rows[:offered], args.batch, per_round, truncate=False
                        )
                        assert dup == 0
                        rates["copy-dedup-replay"].append(replayed / replay_s)
        finally:
            await conn.close()
    median = {impl: statistics.median(r) for impl, r in rates.items()}
    for impl, rate in median.items():
        emit(
            impl=impl,
            per_s=round(rate),
            batch=args.batch,
            rounds=args.rounds,
            vs="naive-insert",
            ratio=round(rate / median["naive-insert"], 2),
        )
    emit(
        impl="copy-dedup",
        per_s=round(median["copy-dedup"]),
        batch=args.batch,
        rounds=args.rounds,
        vs="copy-plain",
        ratio=round(median["copy-dedup"] / median["copy-plain"], 3),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000, help="distinct rows per phase")
    parser.add_argument("--batch", type=int, default=1000, help="rows per transaction")
    parser.add_argument("--seconds", type=float, default=6.0, help="time per implementation")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
