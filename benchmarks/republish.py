"""Records/s from the republish outbox to the broker: silkgate's republisher vs a bare paho loop.

Against the local services of ``deploy/services.sh`` (TimescaleDB in a throw-away schema,
Mosquitto on 127.0.0.1:1883, topics under a random prefix, no subscriber), in one process:

* ``impl: silkgate``: :class:`gateway.republish.service.Republisher` drains an outbox filled
  beforehand with ``--records`` records in rows of ``--batch`` (as committed pipeline batches
  would leave them): read the rows, decode them, look the operators up (one registered
  operator), make every topic and JSON payload, publish, wait for the acknowledgements, save the
  cursor, delete the rows. Rate = records / (start -> every record acknowledged).
* ``impl: bare-paho``: the same topics and payloads, made beforehand, published by a plain
  aiomqtt/paho client with the same number in flight: what the broker and the MQTT client
  cost alone.

Payloads: ``realtime``, GB/T 32960 realtime rows (192 cells, 48 probes: about 2.7 KB of JSON
each) with their positions; ``charger``, OCPP meter values and swap-station inventory rows
(about 300 bytes). First, ``bench: republish-outbox-write``: the outbox's cost on the ingest
path, ``StoreWriter.write_batch`` of the realtime records in batches of ``--write-batch`` with
(``store-writer+outbox``) and without the outbox row, alternating rounds, medians
(``--compression lz4``: the batch column lz4-compressed instead of stored as is).
Lines: ``bench`` (``republish-<payload>``), ``impl``, ``protocol``, ``qos``,
``records``, ``per_s``, ``cpu_us`` (this process's CPU per record; PostgreSQL and the broker
not counted), ``vs`` / ``ratio`` (silkgate / bare), ``load1``.

    .venv/bin/python benchmarks/republish.py [--records 20000] [--batch 500] [--qos 1]
                                             [--protocol 5,3.1.1] [--payloads realtime,charger]
                                             [--write-batch 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg
import msgspec
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway import records as rec
from gateway.batch import group
from gateway.ingest import GBT32960, Ingestor
from gateway.republish import message
from gateway.republish.config import RepublishConfig
from gateway.republish.outbox import append
from gateway.republish.service import Republisher
from gateway.simulator import Fleet
from gateway.sink import StoreWriter
from gateway.store.connection import create_pool
from gateway.store.testing import local_dsn, scratch_schema

REPO = Path(__file__).resolve().parents[1]
HOST, PORT = "127.0.0.1", 1883
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _load1() -> float:
    return os.getloadavg()[0]


def emit(bench: str, **fields: Any) -> None:
    print(json.dumps({"bench": bench, **fields, "load1": round(_load1(), 2)}), flush=True)


def emit_pair(
    bench: str,
    base: tuple[str, float],
    ours: tuple[str, float],
    common: dict[str, Any],
    cpu: tuple[float, float] | None = None,
) -> None:
    """Two lines: the baseline's rate, then ours with ``vs`` and ``ratio`` (and CPU per record)."""
    extra = [{"cpu_us": round(c, 1)} for c in cpu] if cpu else [{}, {}]
    emit(bench, impl=base[0], **common, per_s=round(base[1]), **extra[0])
    ratio = {"vs": base[0], "ratio": round(ours[1] / base[1], 2)}
    emit(bench, impl=ours[0], **common, per_s=round(ours[1]), **extra[1], **ratio)


def realtime_records(n: int) -> list[Any]:
    """GB/T 32960 realtime rows and positions (no raw frames: they are not republished)."""
    fleet = Fleet(100, seed=5, gbt_only=True)
    ingest = Ingestor(GBT32960)
    out: list[Any] = []
    while len(out) < n:
        fleet.advance(10)
        for raw in fleet.reports():
            out += [r for r in ingest.frame(raw, "bench") if not isinstance(r, rec.RawFrame)]
    return out[:n]


def charger_records(n: int) -> list[Any]:
    """OCPP meter values and swap-station inventory rows, alternating."""
    out: list[Any] = []
    for i in range(n):
        t = T0 + timedelta(seconds=i // 200)
        if i % 2:
            out.append(
                rec.MeterValue(
                    charger_id=f"CP-{i % 100:03d}",
                    time=t,
                    connector_id=1,
                    measurand="Energy.Active.Import.Register",
                    value=1000.0 + i,
                    unit="Wh",
                    protocol="ocpp1.6",
                    transaction_id=str(i % 100),
                    context="Sample.Periodic",
                    received_at=t,
                )
            )
        else:
            out.append(
                rec.BatteryInventory(
                    station_id=f"SW-{i % 20:02d}",
                    time=t,
                    bay=i % 10 + 1,
                    state="charging",
                    pack_id=f"PACK-{i % 500}",
                    soc_pct=55.5,
                    soh_pct=97.0,
                    energy_wh=150000.0,
                    temperature_c=28.5,
                    received_at=t,
                )
            )
    return out


async def fill_outbox(pool: asyncpg.Pool, records: list[Any], batch: int) -> None:
    await pool.execute("TRUNCATE republish_outbox, forward_cursors")
    async with pool.acquire() as conn:
        for i in range(0, len(records), batch):
            async with conn.transaction():
                await append(conn, group(records[i : i + batch]))


async def run_silkgate(
    pool: asyncpg.Pool, records: list[Any], args: argparse.Namespace, protocol: str, prefix: str
) -> tuple[float, float]:
    await fill_outbox(pool, records, args.batch)
    cfg = msgspec.convert(
        {
            "enabled": True,
            "host": HOST,
            "port": PORT,
            "client_id": f"bench-rep-{secrets.token_hex(4)}",
            "topic_prefix": prefix,
            "qos": args.qos,
            "protocol": protocol,
            "max_in_flight": args.in_flight,
            "page_batches": 4,
        },
        RepublishConfig,
    )
    rep = Republisher(cfg, pool)
    cpu0, t0 = time.process_time(), time.perf_counter()
    rep.start()
    try:
        while rep.stats.published < len(records):
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        await rep.stop()
    left = await pool.fetchval("SELECT count(*) FROM republish_outbox")
    assert left == 0, f"{left} outbox rows left"
    return len(records) / elapsed, cpu / len(records) * 1e6


async def run_bare(
    records: list[Any], args: argparse.Namespace, protocol: str, prefix: str
) -> tuple[float, float]:
    """The same messages, made beforehand, through aiomqtt's paho client: ``in_flight`` at a
    time, counted on their acknowledgements."""
    messages = [(message.topic(prefix, "acme", r), message.payload(r, T0)) for r in records]
    v5 = protocol == "5"
    props = None
    if v5:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.PayloadFormatIndicator = 1
        props.ContentType = "application/json"
    window = asyncio.Event()
    done = asyncio.Event()
    state = {"in_flight": 0, "acked": 0, "limit": args.in_flight}

    class Client(aiomqtt.Client):
        def _on_connect(
            self, client: Any, userdata: Any, flags: Any, rc: Any, p: Any = None
        ) -> None:
            maximum = getattr(p, "ReceiveMaximum", None)
            if isinstance(maximum, int):
                state["limit"] = min(state["limit"], maximum)
            super()._on_connect(client, userdata, flags, rc, p)

        def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, p: Any) -> None:
            state["in_flight"] -= 1
            state["acked"] += 1
            window.set()
            if state["acked"] == len(messages):
                done.set()

    proto = aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311
    async with Client(
        HOST,
        PORT,
        identifier=f"bench-bare-{secrets.token_hex(4)}",
        protocol=proto,
        max_inflight_messages=0,  # as the republisher: paho's own count rescans at each ack
    ) as client:
        paho = client._client
        cpu0, t0 = time.process_time(), time.perf_counter()
        for topic, payload in messages:
            while state["in_flight"] >= state["limit"]:
                window.clear()
                await window.wait()
            state["in_flight"] += 1
            paho.publish(topic, payload, args.qos, False, props)
        await done.wait()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    return len(messages) / elapsed, cpu / len(messages) * 1e6


async def run_writer(
    pool: asyncpg.Pool, records: list[Any], args: argparse.Namespace, outbox: bool
) -> float:
    """Records/s of ``StoreWriter.write_batch`` (batches of ``--write-batch``) with the outbox
    row or without it, into emptied tables."""
    await pool.execute("TRUNCATE vehicle_realtime, positions, republish_outbox")
    writer = StoreWriter(pool, outbox=outbox)
    t0 = time.perf_counter()
    for i in range(0, len(records), args.write_batch):
        await writer.write_batch(group(records[i : i + args.write_batch]))
    return len(records) / (time.perf_counter() - t0)


async def bench_writer(pool: asyncpg.Pool, args: argparse.Namespace) -> None:
    """The outbox's cost on the ingest path: the same realtime batches written with and without
    it, in alternating rounds (medians)."""
    records = realtime_records(args.records)
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for outbox in (False, True):
            rates[outbox].append(await run_writer(pool, records, args, outbox))
    without, with_ = statistics.median(rates[False]), statistics.median(rates[True])
    common = {
        "records": len(records),
        "batch": args.write_batch,
        "rounds": args.rounds,
        "compression": args.compression,
    }
    emit_pair(
        "republish-outbox-write", ("store-writer", without), ("store-writer+outbox", with_), common
    )


async def main_async(args: argparse.Namespace) -> None:
    makers = {"realtime": realtime_records, "charger": charger_records}
    async with scratch_schema(local_dsn(REPO), prefix="silkgate_bench") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            from gateway.store.migrate import migrate

            await migrate(conn)
            if args.compression == "lz4":  # what 0012 would be with compression instead
                await conn.execute(
                    "ALTER TABLE republish_outbox ALTER COLUMN batch SET STORAGE EXTENDED, "
                    "ALTER COLUMN batch SET COMPRESSION lz4"
                )
        finally:
            await conn.close()
        pool = await create_pool(dsn, max_size=4)
        try:
            if args.write_batch:
                await bench_writer(pool, args)
            for payload in args.payloads.split(","):
                records = makers[payload](args.records)
                for protocol in args.protocol.split(","):
                    prefix = f"bench-{secrets.token_hex(4)}/v1"
                    common = {
                        "protocol": protocol,
                        "qos": args.qos,
                        "records": len(records),
                        "batch": args.batch,
                    }
                    bare, bare_cpu = await run_bare(records, args, protocol, prefix)
                    ours, cpu = await run_silkgate(pool, records, args, protocol, prefix)
                    emit_pair(
                        f"republish-{payload}",
                        ("bare-paho", bare),
                        ("silkgate", ours),
                        common,
                        (bare_cpu, cpu),
                    )
        finally:
            await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500, help="records per outbox row")
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1, 2))
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument("--protocol", default="5,3.1.1")
    parser.add_argument("--payloads", default="realtime,charger")
    parser.add_argument(
        "--write-batch", type=int, default=5000, help="the outbox's write cost (0: skip)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the write cost")
    parser.add_argument(
        "--compression",
        choices=("external", "lz4"),
        default="external",
        help="the outbox's batch column: as migration 0012 (uncompressed) or lz4-compressed",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
