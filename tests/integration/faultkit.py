"""Deterministic GB/T 32960 realtime traffic for the exactly-once and fault tests and, run as a
script, the child gateway process that ``test_faults.py`` kills with SIGKILL.

Traffic
-------
:func:`traffic` builds ``trucks x rounds`` realtime frames from a :class:`Fleet` of GB/T 32960
trucks (2016 and 2025 alternating), one round every ``INTERVAL_S`` seconds of device time, plus
``dup_fraction`` extra frames: half exact duplicates of earlier frames, half 0x03 reissues of
earlier frames, each placed at a random later point of the stream (some in the same batch as
the original, some far later). The fleet's own physics costs about 0.5 ms per truck and round
(192 cell voltages drawn one by one), far too slow for 200,000 frames, so each truck's message
from the fleet is a template that every round varies (time, odometer, speed, position):

* every ``bytes_every``-th round goes the whole way: message -> ``encode_frame`` -> bytes ->
  ``decode_frame`` -> ``normalize`` (duplicates re-decode the same bytes, reissues are
  re-encoded with command 0x03);
* the other rounds vary the records ``normalize`` made of the template message.

Every record gets ``received_at``: 2 s after its device time for the original, later for
duplicates and reissues, so the store shows which copy it kept (the first one).

Child gateway
-------------
``python faultkit.py child --dsn DSN --spool DIR [...]`` runs a :class:`Pipeline` (spool with
``fsync="always"``) over the traffic, one submission per ``--chunk`` frames, and prints
``acked <first_frame_index> <count> <spool|db>`` (indexes into :attr:`Traffic.frames`; the
pipeline's mode when it resolved) when a submission's completion resolves, ``failed ...`` when one
fails, and ``done`` at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from gateway.codecs import gbt32960 as gbt
from gateway.config import PipelineConfig
from gateway.normalize import normalize
from gateway.pipeline import Pipeline
from gateway.records import Alarm, Position, VehicleRealtime
from gateway.simulator import Fleet, gbt_time
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store.connection import create_pool

START = datetime(2026, 3, 2, tzinfo=UTC)
INTERVAL_S = 10
RECEIVED_AFTER = timedelta(seconds=2)  # an original's received_at, after its device time
REISSUE = 0x03

Key = tuple[str, datetime]  # (vin, time): the natural key of vehicle_realtime


@dataclass(frozen=True)
class Traffic:
    """Frames in submission order, as the records each one normalizes to."""

    frames: list[list[Any]]
    #: for each submitted frame, the number of the original frame it repeats (or is)
    original: list[int]
    #: the records of each original frame (the copy the store must keep), by original number
    originals: list[list[Any]]
    #: how many submitted frames went bytes -> decode_frame -> normalize
    decoded: int
    duplicates: int
    reissues: int

    def chunks(self, size: int) -> Iterator[tuple[int, list[Any]]]:
        """``(first frame index, records)`` of ``size`` consecutive frames at a time."""
        for first in range(0, len(self.frames), size):
            yield first, [r for recs in self.frames[first : first + size] for r in recs]

    def realtime(self, original: int) -> VehicleRealtime:
        rec = self.originals[original][0]
        assert isinstance(rec, VehicleRealtime)
        return rec

    def keys(self, first: int, count: int) -> set[Key]:
        """The (vin, time) keys of frames ``first .. first + count - 1``."""
        return {
            (rt.vin, rt.time)
            for rt in (self.realtime(n) for n in self.original[first : first + count])
        }


def key(rec: VehicleRealtime) -> Key:
    return rec.vin, rec.time


@functools.cache
def traffic(
    trucks: int = 1000,
    rounds: int = 200,
    *,
    dup_fraction: float = 0.1,
    bytes_every: int = 8,
    seed: int = 32960,
) -> Traffic:
    """See the module docstring; cached, so the tests of one session share it (read-only)."""
    fleet = Fleet(trucks, seed=seed, start=START, gbt_only=True)
    templates = [fleet.gbt_realtime(t) for t in fleet.trucks]
    base = [normalize(m) for m in templates]
    originals: list[list[Any]] = []
    raws: dict[int, bytes] = {}  # original number -> frame bytes (decoded rounds)
    for k in range(rounds):
        when = START + timedelta(seconds=k * INTERVAL_S)
        for i, tpl in enumerate(templates):
            odo, speed, lat, lon = _vary(base[i][0], i, k)
            if k % bytes_every == 0:
                frame = _frame(tpl, when, odo, speed, lat, lon)
                raw = gbt.encode_frame(frame)
                raws[len(originals)] = raw
                recs = normalize(gbt.decode_frame(raw))
            else:
                recs = [_vary_record(r, when, odo, speed, lat, lon) for r in base[i]]
            _stamp(recs, when + RECEIVED_AFTER)
            originals.append(recs)

    # Duplicates and reissues of earlier frames, each scheduled after its original.
    rng = random.Random(seed)
    n = len(originals)
    later: dict[int, list[list[Any]]] = {}
    later_of: dict[int, list[int]] = {}
    extra = round(n * dup_fraction)
    decoded = len(raws)
    for d in range(extra):
        j = rng.randrange(n)
        reissue = d % 2 == 1
        sent = raws.get(j)
        if sent is not None:
            if reissue:
                frame = gbt.decode_frame(sent)
                sent = gbt.encode_frame(msgspec.structs.replace(frame, command=REISSUE))
            recs = normalize(gbt.decode_frame(sent))
            decoded += 1
        else:
            recs = [
                msgspec.structs.replace(r, reissue=True) if reissue else msgspec.structs.replace(r)
                for r in originals[j]
            ]
        rt = recs[0]
        assert isinstance(rt, VehicleRealtime) and rt.reissue == reissue
        _stamp(recs, rt.time + RECEIVED_AFTER + timedelta(seconds=1 + d % 50))
        # mostly close behind (often the same batch), sometimes far later
        gap = 1 + int(rng.expovariate(1 / 2000)) if rng.random() < 0.8 else rng.randrange(n)
        at = min(n - 1, j + gap)
        later.setdefault(at, []).append(recs)
        later_of.setdefault(at, []).append(j)

    frames: list[list[Any]] = []
    original: list[int] = []
    for j, recs in enumerate(originals):
        frames.append(recs)
        original.append(j)
        frames.extend(later.get(j, ()))
        original.extend(later_of.get(j, ()))
    return Traffic(
        frames=frames,
        original=original,
        originals=originals,
        decoded=decoded,
        duplicates=extra - extra // 2,
        reissues=extra // 2,
    )


def encoded(trucks: int, rounds: int, *, seed: int = 27930) -> list[bytes]:
    """``trucks x rounds`` realtime frames as bytes (varied as :func:`traffic` varies them)."""
    fleet = Fleet(trucks, seed=seed, start=START, gbt_only=True)
    templates = [fleet.gbt_realtime(t) for t in fleet.trucks]
    base = [normalize(m)[0] for m in templates]
    out: list[bytes] = []
    for k in range(rounds):
        when = START + timedelta(seconds=k * INTERVAL_S)
        for i, tpl in enumerate(templates):
            out.append(gbt.encode_frame(_frame(tpl, when, *_vary(base[i], i, k))))
    return out


def _vary(rt: Any, i: int, k: int) -> tuple[float, float, float, float]:
    """Odometer, speed, latitude and longitude of truck ``i`` in round ``k``."""
    assert isinstance(rt, VehicleRealtime)
    assert rt.odometer_km is not None and rt.lat is not None and rt.lon is not None
    odo = round(rt.odometer_km + k * 0.1 * (1 + i % 5), 1)
    speed = round((i * 7 + k * 3) % 900 / 10, 1)
    lat = round(rt.lat + k * 1e-5 * (i % 3 - 1), 6)
    lon = round(rt.lon + k * 2e-5, 6)
    return odo, speed, lat, lon


def _frame(
    tpl: gbt.Frame, when: datetime, odo: float, speed: float, lat: float, lon: float
) -> gbt.Frame:
    body = tpl.body
    assert isinstance(body, gbt.RealtimeData)
    blocks: list[Any] = []
    for b in body.blocks:
        if isinstance(b, gbt.VehicleData):
            b = msgspec.structs.replace(b, odometer_km=odo, speed_kmh=speed)
        elif isinstance(b, gbt.Position):
            b = msgspec.structs.replace(b, lat=lat, lon=lon)
        blocks.append(b)
    return msgspec.structs.replace(
        tpl, body=msgspec.structs.replace(body, time=gbt_time(when), blocks=blocks)
    )


def _vary_record(rec: Any, when: datetime, odo: float, speed: float, lat: float, lon: float) -> Any:
    if isinstance(rec, VehicleRealtime | Position):
        return msgspec.structs.replace(
            rec, time=when, odometer_km=odo, speed_kmh=speed, lat=lat, lon=lon
        )
    assert isinstance(rec, Alarm)
    return msgspec.structs.replace(rec, time=when)


def _stamp(records: Sequence[Any], received_at: datetime) -> None:
    for rec in records:
        rec.received_at = received_at


# -- the child gateway -------------------------------------------------------------------------


async def child(args: argparse.Namespace) -> None:
    t = traffic(args.trucks, args.rounds, bytes_every=args.bytes_every, seed=args.seed)
    # min_size=0: no connection at start, the database may be away from the first batch on
    pool = await create_pool(args.dsn, min_size=0, max_size=2, timeout=2, command_timeout=10)
    spool = await AsyncSpool.open(args.spool, SpoolConfig(fsync="always"))
    cfg = PipelineConfig(batch_rows=args.batch_rows, batch_age_ms=20, retry_interval_s=0.2)
    out = sys.stdout

    async with Pipeline(StoreWriter(pool), spool, cfg) as pipeline:

        def report(first: int, count: int, fut: asyncio.Future[None]) -> None:
            if fut.cancelled() or fut.exception() is not None:
                out.write(f"failed {first} {count} {fut}\n")
            else:  # the mode says where the records went: the spool, or the database
                out.write(f"acked {first} {count} {'spool' if pipeline.spooling else 'db'}\n")
            out.flush()

        pending = []
        for first, records in t.chunks(args.chunk):
            fut = await pipeline.submit(records)
            count = min(args.chunk, len(t.frames) - first)
            fut.add_done_callback(functools.partial(report, first, count))
            pending.append(fut)
            if args.pace_ms:
                await asyncio.sleep(args.pace_ms / 1000)
        await asyncio.gather(*pending, return_exceptions=True)
    await spool.close()
    await pool.close()
    out.write("done\n")
    out.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("child", help="run a gateway pipeline over the traffic")
    c.add_argument("--dsn", required=True)
    c.add_argument("--spool", required=True)
    c.add_argument("--trucks", type=int, default=100)
    c.add_argument("--rounds", type=int, default=60)
    c.add_argument("--bytes-every", type=int, default=4)
    c.add_argument("--seed", type=int, default=808)
    c.add_argument("--chunk", type=int, default=10)
    c.add_argument("--batch-rows", type=int, default=500)
    c.add_argument("--pace-ms", type=float, default=1.0)
    args = parser.parse_args(argv)
    asyncio.run(child(args))


if __name__ == "__main__":
    main()
