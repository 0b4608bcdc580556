"""Codec throughput: Cython accelerator vs pure-Python reference vs the rtm-con peer.

``gbt32960_realtime_to_rows`` measures bytes -> normalized records (``records_from_frame``, the
fused fast path ``gateway._fastnorm``, against ``normalize(reference.decode_frame)``), and
``gbt32960_realtime_to_copy_rows`` bytes -> the store's COPY tuples (``spec_for(...).to_row``).

Prints one JSON object per line: ``bench``, ``impl``, ``per_s`` (operations per second, best of
``--repeat`` timed runs), and for comparisons ``vs`` and ``ratio`` (ours / baseline, same run).

    .venv/bin/python benchmarks/codecs.py [--seconds 1.0] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from gateway.codecs.gbt32960 import _accel as gbt_c
from gateway.codecs.gbt32960 import reference as gbt_py
from gateway.codecs.jt808 import _accel as jt_c
from gateway.codecs.jt808 import reference as jt_py
from gateway.normalize import normalize, records_from_frame, records_implementation
from gateway.records import Record
from gateway.store.tables import Row, spec_for

SHARED = Path(os.environ.get("SILKGATE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
GBT_IMPLS: dict[str, ModuleType] = {"pure-python": gbt_py, "cython": gbt_c}
JT_IMPLS: dict[str, ModuleType] = {"pure-python": jt_py, "cython": jt_c}


def vector(name: str, vector_id: str) -> bytes:
    with (SHARED / "vectors" / f"{name}.json").open(encoding="utf-8") as fh:
        for v in json.load(fh):
            if v["id"] == vector_id:
                return bytes.fromhex(v["hex"])
    raise KeyError(vector_id)


def rate(fn: Callable[[], object], seconds: float, repeat: int) -> float:
    """Best calls-per-second of ``fn`` over ``repeat`` runs of about ``seconds`` each."""
    n = 1
    while True:  # calibrate a batch size that takes at least 10 ms
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t > 0.01:
            break
        n *= 2
    best = 0.0
    for _ in range(repeat):
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(n):
                fn()
            done += n
        best = max(best, done / elapsed)
    return best


def emit(bench: str, impl: str, per_s: float, **extra: Any) -> None:
    print(json.dumps({"bench": bench, "impl": impl, "per_s": round(per_s, 1), **extra}), flush=True)


def compare(bench: str, results: dict[str, float], baselines: tuple[str, ...]) -> None:
    """Emit each implementation's figure, and its ratio against every baseline measured."""
    for impl, per_s in results.items():
        emit(bench, impl, per_s)
        for base in baselines:
            if base != impl and base in results:
                emit(bench, impl, per_s, vs=base, ratio=round(per_s / results[base], 2))


def rtm_con_decoder() -> Callable[[bytes], object] | None:
    try:
        from rtm_con import msg_checked
    except ImportError:  # the peer is a dev dependency: report without it rather than fail
        return None
    parse: Callable[[bytes], object] = msg_checked.parse
    return parse


def stream_buffer(frame: bytes, count: int) -> bytes:
    return frame * count


def drain(module: ModuleType, buf: bytes, chunk: int) -> int:
    reader = module.FrameReader()
    n = 0
    for i in range(0, len(buf), chunk):
        reader.feed(buf[i : i + chunk])
        for _ in reader:
            n += 1
    return n


def decode_normalize(module: ModuleType, frame: bytes) -> list[Record]:
    records: list[Record] = normalize(module.decode_frame(frame))
    return records


def copy_rows(records: list[Record]) -> list[Row]:
    """The store's COPY tuples of some records (gateway.store.tables.spec_for(...).to_row)."""
    return [spec_for(type(rec)).to_row(rec) for rec in records]


def realtime_to_rows(frame: bytes, s: float, r: int) -> None:
    """Bytes -> records (the fused fast path), and bytes -> DB-ready COPY tuples."""
    if records_implementation() != "cython":
        raise SystemExit(
            "records_from_frame is not the Cython fast path: unset SILKGATE_NO_EXTENSIONS"
        )
    from gateway._fastnorm import realtime_records

    res = {
        "pure-python": rate(lambda: normalize(gbt_py.decode_frame(frame)), s, r),
        "cython": rate(lambda: records_from_frame(frame), s, r),
        "cython-bare": rate(lambda: realtime_records(frame), s, r),  # without the public wrapper
    }
    compare("gbt32960_realtime_to_rows", res, ("pure-python",))
    res = {
        "pure-python": rate(lambda: copy_rows(normalize(gbt_py.decode_frame(frame))), s, r),
        "cython": rate(lambda: copy_rows(records_from_frame(frame)), s, r),
    }
    compare("gbt32960_realtime_to_copy_rows", res, ("pure-python",))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ns = ap.parse_args(argv)
    s, r = ns.seconds, ns.repeat

    gb12 = vector("gbt32960", "GB-12")  # 594 bytes, 192 cells
    peer = rtm_con_decoder()

    res = {name: rate(partial(m.decode_frame, gb12), s, r) for name, m in GBT_IMPLS.items()}
    if peer is not None:
        res["rtm-con"] = rate(lambda: peer(gb12), s, r)
    compare("gbt32960_realtime_decode", res, ("pure-python", "rtm-con"))

    res = {name: rate(partial(decode_normalize, m, gb12), s, r) for name, m in GBT_IMPLS.items()}
    compare("gbt32960_realtime_decode_normalize", res, ("pure-python",))

    realtime_to_rows(gb12, s, r)

    msg = gbt_py.decode_frame(gb12)
    res = {name: rate(partial(m.encode_frame, msg), s, r) for name, m in GBT_IMPLS.items()}
    compare("gbt32960_realtime_encode", res, ("pure-python",))

    for vid in ("JT-01", "JT-09"):
        jt_frame = vector("jt808", vid)
        res = {name: rate(partial(m.decode_frame, jt_frame), s, r) for name, m in JT_IMPLS.items()}
        compare(f"jt808_0200_decode_{vid}", res, ("pure-python",))

    gb_buf = stream_buffer(gb12, 2000)
    res = {
        name: 2000 * rate(partial(drain, m, gb_buf, 4096), s, r) for name, m in GBT_IMPLS.items()
    }
    compare("gbt32960_stream_reader_frames", res, ("pure-python",))

    jt_buf = stream_buffer(vector("jt808", "JT-01"), 5000)
    res = {name: 5000 * rate(partial(drain, m, jt_buf, 4096), s, r) for name, m in JT_IMPLS.items()}
    compare("jt808_stream_reader_frames", res, ("pure-python",))
    return 0


if __name__ == "__main__":
    sys.exit(main())
