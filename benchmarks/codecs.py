"""Codec throughput: Cython accelerator vs pure-Python reference vs the rtm-con peer.

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
from pathlib import Path
from types import ModuleType
from typing import Any

from gateway.codecs.gbt32960 import _accel as gbt_c
from gateway.codecs.gbt32960 import reference as gbt_py
from gateway.codecs.jt808 import _accel as jt_c
from gateway.codecs.jt808 import reference as jt_py
from gateway.normalize import normalize

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ns = ap.parse_args(argv)
    s, r = ns.seconds, ns.repeat

    gb12 = vector("gbt32960", "GB-12")  # 594 bytes, 192 cells
    peer = rtm_con_decoder()

    res = {name: rate(lambda m=m: m.decode_frame(gb12), s, r) for name, m in GBT_IMPLS.items()}
    if peer is not None:
        res["rtm-con"] = rate(lambda: peer(gb12), s, r)
    compare("gbt32960_realtime_decode", res, ("pure-python", "rtm-con"))

    res = {
        name: rate(lambda m=m: normalize(m.decode_frame(gb12)), s, r)
        for name, m in GBT_IMPLS.items()
    }
    compare("gbt32960_realtime_decode_normalize", res, ("pure-python",))

    msg = gbt_py.decode_frame(gb12)
    res = {name: rate(lambda m=m: m.encode_frame(msg), s, r) for name, m in GBT_IMPLS.items()}
    compare("gbt32960_realtime_encode", res, ("pure-python",))

    for vid in ("JT-01", "JT-09"):
        jt_frame = vector("jt808", vid)
        res = {
            name: rate(lambda m=m, f=jt_frame: m.decode_frame(f), s, r)
            for name, m in JT_IMPLS.items()
        }
        compare(f"jt808_0200_decode_{vid}", res, ("pure-python",))

    gb_buf = stream_buffer(gb12, 2000)
    res = {
        name: 2000 * rate(lambda m=m: drain(m, gb_buf, 4096), s, r) for name, m in GBT_IMPLS.items()
    }
    compare("gbt32960_stream_reader_frames", res, ("pure-python",))

    jt_buf = stream_buffer(vector("jt808", "JT-01"), 5000)
    res = {
        name: 5000 * rate(lambda m=m: drain(m, jt_buf, 4096), s, r) for name, m in JT_IMPLS.items()
    }
    compare("jt808_stream_reader_frames", res, ("pure-python",))
    return 0


if __name__ == "__main__":
    sys.exit(main())
