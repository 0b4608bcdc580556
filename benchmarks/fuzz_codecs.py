"""Fuzz the GB/T 32960 and JT/T 808 codecs: random and mutated frames into decode_frame/FrameReader.

Seeds are the shared vectors plus frames our own encoder builds from randomly perturbed decoded
vectors. Mutations: bit flips, byte insert/delete/overwrite, truncation, splicing and length-field
tampering, with the checksum (and JT/T 808 escaping) recomputed for half the inputs so the body
parsers are reached. Checks: only ``ProtocolError`` escapes, no input is slow (soft per-input limit,
plus a hard ``faulthandler`` watchdog), the reader accounts for every byte it was fed, both
implementations agree, and RSS does not grow. Prints one JSON line; exits 1 on any failure.

    .venv/bin/python benchmarks/fuzz_codecs.py --count 1000000 --seed 1 --impl both
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import gc
import importlib
import json
import os
import random
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import msgspec

from gateway.codecs.common import BadFrame
from gateway.codecs.errors import ProtocolError

REPO: Final = Path(__file__).resolve().parents[1]
SHARED: Final = Path(os.environ.get("SILKGATE_SHARED", REPO.parent / "shared"))
PROTOCOLS: Final = ("gbt32960", "jt808")
IMPL_MODULES: Final = {"python": "reference", "cython": "_accel"}
INTERESTING_BYTES: Final = (0x00, 0x01, 0x7D, 0x7E, 0x7F, 0x80, 0x23, 0x24, 0xFE, 0xFF)
INTERESTING_WORDS: Final = (0, 1, 0x7F, 0x80, 0xFF, 0x3FF, 0x400, 0x7FFF, 0x8000, 0xFFFB, 0xFFFE, 0xFFFF)

# --------------------------------------------------------------------------------------------
# Framing helpers: the "logical" view of a frame is what the checksum covers, so a mutated view
# can be wrapped back into a frame whose checksum (and escaping) is right.


def xor(data: bytes | bytearray) -> int:
    """XOR of all bytes."""
    acc = 0
    for b in data:
        acc ^= b
    return acc


def gbt_unwrap(frame: bytes) -> bytearray:
    """GB/T 32960: the logical view is the whole frame (start bytes .. BCC)."""
    return bytearray(frame)


def gbt_wrap(view: bytearray) -> bytes:
    """Recompute the BCC (XOR of offset 2 up to the last data byte) into the last byte."""
    if len(view) >= 3:
        view[-1] = xor(view[2:-1])
    return bytes(view)


def gbt_tamper_length(view: bytearray, rng: random.Random) -> None:
    """Set the data-unit length WORD (offset 22) to a wrong, boundary or consistent value."""
    if len(view) < 24:
        return
    actual = max(0, len(view) - 25)
    value = rng.choice(
        (actual, actual + rng.randint(1, 4), max(0, actual - rng.randint(1, 4)), rng.randint(0, 0xFFFF))
        + INTERESTING_WORDS
    )
    struct.pack_into(">H", view, 22, value & 0xFFFF)


def jt_unescape(frame: bytes) -> bytearray | None:
    """JT/T 808: header+body+checksum between the 0x7E flags, unescaped; None if not a frame."""
    if len(frame) < 2 or frame[0] != 0x7E or frame[-1] != 0x7E:
        return None
    out = bytearray()
    inner = frame[1:-1]
    i = 0
    while i < len(inner):
        b = inner[i]
        if b == 0x7D:
            if i + 1 >= len(inner) or inner[i + 1] not in (1, 2):
                return None
            out.append(0x7D if inner[i + 1] == 1 else 0x7E)
            i += 2
        else:
            out.append(b)
            i += 1
    return out


def jt_unwrap(frame: bytes) -> bytearray:
    view = jt_unescape(frame)
    return view if view is not None else bytearray(frame)


def jt_wrap(view: bytearray) -> bytes:
    """Recompute the XOR checksum into the last byte, escape, and add the 0x7E flags."""
    if len(view) >= 1:
        view[-1] = xor(view[:-1])
    escaped = bytes(view).replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")
    return b"\x7e" + escaped + b"\x7e"


def jt_tamper_length(view: bytearray, rng: random.Random) -> None:
    """Change the body-attribute WORD: body length bits 0-9, encryption, subpackage, version."""
    if len(view) < 4:
        return
    attrs = struct.unpack_from(">H", view, 2)[0]
    what = rng.randrange(5)
    if what == 0:
        attrs = (attrs & ~0x3FF) | rng.randint(0, 0x3FF)
    elif what == 1:
        attrs = (attrs & ~0x3FF) | ((attrs & 0x3FF) + rng.choice((-2, -1, 1, 2))) & 0x3FF
    elif what == 2:
        attrs ^= 1 << 13  # subpackage
    elif what == 3:
        attrs ^= 1 << 14  # 2019 version flag
    else:
        attrs ^= rng.choice((1 << 10, 1 << 11, 1 << 12, 1 << 15))
    struct.pack_into(">H", view, 2, attrs & 0xFFFF)


@dataclass(frozen=True)
class Framing:
    """How to get at, and restore, the checksummed part of one protocol's frames."""

    start: bytes
    unwrap: Callable[[bytes], bytearray]
    wrap: Callable[[bytearray], bytes]
    tamper_length: Callable[[bytearray, random.Random], None]


FRAMINGS: Final = {
    "gbt32960": Framing(b"##", gbt_unwrap, gbt_wrap, gbt_tamper_length),
    "jt808": Framing(b"\x7e", jt_unwrap, jt_wrap, jt_tamper_length),
}

# --------------------------------------------------------------------------------------------
# Byte-level mutations.


def mutate(data: bytearray, rng: random.Random, framing: Framing, donors: Sequence[bytes]) -> None:
    """Apply one random mutation to ``data`` in place."""
    n = len(data)
    op = rng.randrange(12)
    if op == 0 and n:  # bit flip
        data[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif op == 1 and n:  # random byte
        data[rng.randrange(n)] = rng.randrange(256)
    elif op == 2 and n:  # interesting byte
        data[rng.randrange(n)] = rng.choice(INTERESTING_BYTES)
    elif op == 3:  # insert bytes
        pos = rng.randint(0, n)
        data[pos:pos] = rng.randbytes(rng.randint(1, 8))
    elif op == 4 and n:  # delete a range
        pos = rng.randrange(n)
        del data[pos : pos + rng.randint(1, 8)]
    elif op == 5 and n:  # truncate
        del data[rng.randint(0, n - 1) :]
    elif op == 6:  # append garbage
        data += rng.randbytes(rng.randint(1, 16))
    elif op == 7 and n >= 2:  # interesting WORD / DWORD
        pos = rng.randrange(n - 1)
        if n - pos >= 4 and rng.random() < 0.3:
            struct.pack_into(">I", data, pos, rng.choice((0, 0xFFFFFFFE, 0xFFFFFFFF, 0x80000000)))
        else:
            struct.pack_into(">H", data, pos, rng.choice(INTERESTING_WORDS))
    elif op == 8 and n:  # duplicate a slice
        a = rng.randrange(n)
        b = min(n, a + rng.randint(1, 32))
        pos = rng.randint(0, n)
        data[pos:pos] = data[a:b]
    elif op == 9 and donors:  # splice with another seed
        donor = rng.choice(donors)
        cut = rng.randint(0, n)
        dcut = rng.randint(0, len(donor))
        data[cut:] = donor[dcut:]
    elif op == 10:  # length-field tampering
        framing.tamper_length(data, rng)
    elif op == 11 and n:  # a random byte count somewhere (count fields of bodies)
        data[rng.randrange(n)] = rng.choice((0, 1, 2, 3, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF))


# --------------------------------------------------------------------------------------------
# Seeds: the shared vectors and our encoder's frames from randomly perturbed decoded vectors.


def load_vector_frames(protocol: str) -> list[bytes]:
    with (SHARED / "vectors" / f"{protocol}.json").open(encoding="utf-8") as fh:
        vectors: list[dict[str, Any]] = json.load(fh)
    return [bytes.fromhex(v["hex"]) for v in vectors]


def _perturb(value: Any, rng: random.Random, depth: int = 0) -> Any:
    """A same-typed random variant of a decoded message value (struct, list, scalar)."""
    if isinstance(value, msgspec.Struct):
        changes: dict[str, Any] = {}
        for name in value.__struct_fields__:
            if rng.random() < 0.5:
                continue
            changes[name] = _perturb(getattr(value, name), rng, depth + 1)
        return msgspec.structs.replace(value, **changes) if changes else value
    if isinstance(value, bool):
        return rng.random() < 0.5
    if isinstance(value, int):
        return rng.choice((value, 0, 1, value + 1, max(0, value - 1), rng.randint(0, 255)))
    if isinstance(value, float):
        return rng.choice((value, 0.0, round(value * rng.uniform(0, 2), 1)))
    if isinstance(value, str):
        if rng.random() < 0.5:
            return value
        return "".join(rng.choice("ABCDEFGH0123456789") for _ in range(len(value)))
    if isinstance(value, bytes):
        return rng.randbytes(len(value)) if rng.random() < 0.5 else value
    if isinstance(value, tuple | list):
        items = [_perturb(v, rng, depth + 1) for v in value]
        if items and rng.random() < 0.2:
            items.pop(rng.randrange(len(items)))
        elif items and rng.random() < 0.2:
            items.append(items[rng.randrange(len(items))])
        return type(value)(items)
    return value


def encoder_frames(protocol: str, seeds: Sequence[bytes], rng: random.Random, n: int) -> list[bytes]:
    """Up to ``n`` frames built by our reference encoder from perturbed decoded vectors."""
    ref = importlib.import_module(f"gateway.codecs.{protocol}.reference")
    decoded = []
    for raw in seeds:
        try:
            decoded.append(ref.decode_frame(raw))
        except ProtocolError:
            continue
    out: list[bytes] = []
    if not decoded:
        return out
    for _ in range(n * 4):
        if len(out) >= n:
            break
        try:
            frame = ref.encode_frame(_perturb(rng.choice(decoded), rng))
        except Exception:  # an ill-typed or out-of-range perturbation: not a seed
            continue
        out.append(frame)
    return out


# --------------------------------------------------------------------------------------------
# Running one input through the targets.


class FuzzFailure(Exception):
    """A contract violation found by the fuzzer."""

    def __init__(self, kind: str, protocol: str, impl: str, data: bytes, detail: str) -> None:
        super().__init__(f"{kind} in {protocol}/{impl}: {detail}")
        self.kind = kind
        self.protocol = protocol
        self.impl = impl
        self.data = data
        self.detail = detail


Outcome = tuple[str, Any]


def run_decode(mod: ModuleType, data: bytes, protocol: str, impl: str) -> Outcome:
    """decode_frame outcome: ("ok", frame) or ("err", reason); anything else is a failure."""
    try:
        return ("ok", mod.decode_frame(data))
    except ProtocolError as exc:
        return ("err", exc.reason)
    except Exception:
        raise FuzzFailure(
            "decode_frame raised", protocol, impl, data, traceback.format_exc(limit=-3)
        ) from None


def run_reader(
    mod: ModuleType, data: bytes, chunks: Sequence[int], max_size: int | None, protocol: str, impl: str
) -> list[Any]:
    """Feed ``data`` in the given chunk sizes, drain, decode each frame, check byte accounting."""
    events: list[Any] = []
    try:
        reader = mod.FrameReader() if max_size is None else mod.FrameReader(max_size)
        pos = 0
        for size in chunks:
            reader.feed(data[pos : pos + size])
            pos += size
            while (ev := reader.next_event()) is not None:
                events.append(ev)
        reader.feed(data[pos:])
        events.extend(reader)
        buffered = reader.buffered
    except Exception:
        raise FuzzFailure(
            "FrameReader raised", protocol, impl, data, traceback.format_exc(limit=-3)
        ) from None
    out: list[Any] = []
    accounted = buffered
    for ev in events:
        if isinstance(ev, bytes | bytearray):
            accounted += len(ev)
            out.append(("frame", bytes(ev), run_decode(mod, bytes(ev), protocol, impl)))
        elif isinstance(ev, BadFrame):
            accounted += len(ev.raw)
            out.append(("bad", ev.raw, ev.reason))
        else:
            raise FuzzFailure("FrameReader event type", protocol, impl, data, repr(type(ev)))
    if accounted != len(data):
        raise FuzzFailure(
            "FrameReader byte accounting",
            protocol,
            impl,
            data,
            f"fed {len(data)} bytes, frames+bad+buffered = {accounted}; events {events!r}",
        )
    return out


@dataclass
class Fuzzer:
    """The campaign state: seeds per protocol, implementations under test, findings."""

    impls: dict[str, dict[str, ModuleType]]  # protocol -> impl name -> module
    seeds: dict[str, list[bytes]]
    rng: random.Random
    time_limit: float
    keep_going: bool = False
    failures: list[FuzzFailure] = field(default_factory=list)
    slowest: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)

    def make_input(self) -> tuple[str, bytes]:
        """One fuzz input and the protocol it was derived from."""
        rng = self.rng
        protocol = rng.choice(PROTOCOLS)
        framing = FRAMINGS[protocol]
        r = rng.random()
        if r < 0.03:  # pure noise, sometimes behind the start bytes
            noise = rng.randbytes(rng.randint(0, 300))
            return protocol, (framing.start + noise) if rng.random() < 0.5 else noise
        seeds = self.seeds[protocol]
        seed = rng.choice(seeds)
        if r < 0.08:  # several frames glued, with garbage between (stream resync)
            parts = [rng.choice(seeds) for _ in range(rng.randint(2, 4))]
            glue = [rng.randbytes(rng.randint(0, 3)) for _ in parts]
            return protocol, b"".join(g + p for g, p in zip(glue, parts, strict=True))
        checksummed = rng.random() < 0.5
        data = framing.unwrap(seed) if checksummed else bytearray(seed)
        for _ in range(1 + int(rng.expovariate(0.7))):
            mutate(data, rng, framing, seeds)
        return protocol, framing.wrap(data) if checksummed else bytes(data)

    def run_one(self, protocol: str, data: bytes) -> None:
        """All targets of ``protocol`` (and, for noise, nothing else) on one input."""
        rng = self.rng
        chunks = [rng.randint(1, 64) for _ in range(rng.randint(0, 4))]
        if len(data) < 80 and rng.random() < 0.1:
            chunks = [1] * len(data)  # byte by byte
        max_size = rng.choice((None, None, None, 64, 1024))
        results: dict[str, tuple[Outcome, list[Any]]] = {}
        start = time.perf_counter()
        for impl, mod in self.impls[protocol].items():
            dec = run_decode(mod, data, protocol, impl)
            events = run_reader(mod, data, chunks, max_size, protocol, impl)
            results[impl] = (dec, events)
            key = f"{protocol}/{dec[0]}" if dec[0] == "ok" else f"{protocol}/{dec[1]}"
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
        elapsed = time.perf_counter() - start
        self.slowest = max(self.slowest, elapsed)
        if elapsed > self.time_limit:
            raise FuzzFailure("slow input", protocol, "+".join(results), data, f"{elapsed:.3f} s")
        if len(results) == 2:
            (a_name, a), (b_name, b) = results.items()
            if a != b:
                raise FuzzFailure(
                    "implementations disagree",
                    protocol,
                    f"{a_name} vs {b_name}",
                    data,
                    f"{a_name}: {_short(a)}\n{b_name}: {_short(b)}",
                )


def _short(value: object, limit: int = 1500) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc, else peak RSS)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_impls(impl: str) -> dict[str, dict[str, ModuleType]]:
    names = ("python", "cython") if impl == "both" else (impl,)
    return {
        p: {n: importlib.import_module(f"gateway.codecs.{p}.{IMPL_MODULES[n]}") for n in names}
        for p in PROTOCOLS
    }


def build_seeds(rng: random.Random, encoder_seeds: int) -> dict[str, list[bytes]]:
    seeds: dict[str, list[bytes]] = {}
    for p in PROTOCOLS:
        vectors = load_vector_frames(p)
        seeds[p] = vectors + encoder_frames(p, vectors, rng, encoder_seeds)
    return seeds


@dataclass
class Report:
    """What a campaign found: the JSON summary plus the failures."""

    summary: dict[str, Any]
    failures: list[FuzzFailure]


def fuzz(
    count: int,
    seed: int = 0,
    impl: str = "both",
    *,
    time_limit: float = 1.0,
    hard_limit: float = 60.0,
    max_rss_growth_mb: float = 64.0,
    keep_going: bool = False,
    encoder_seeds: int = 200,
    current_file: str | None = None,
) -> Report:
    """Run ``count`` inputs; the importable entry point (the smoke test calls this)."""
    rng = random.Random(seed)
    fuzzer = Fuzzer(load_impls(impl), build_seeds(rng, encoder_seeds), rng, time_limit, keep_going)
    fd = os.open(current_file, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644) if current_file else -1
    warmup = min(count // 10, 20_000)
    rss_before = rss_mb()
    start = time.perf_counter()
    done = 0
    try:
        for i in range(count):
            if i % 1000 == 0 and hard_limit > 0:
                faulthandler.dump_traceback_later(hard_limit, exit=True)
            if i == warmup:
                gc.collect()
                rss_before = rss_mb()
            protocol, data = fuzzer.make_input()
            if fd >= 0:  # so a hard hang leaves the input behind
                os.pwrite(fd, struct.pack(">I", len(data)) + data, 0)
            try:
                fuzzer.run_one(protocol, data)
            except FuzzFailure as failure:
                fuzzer.failures.append(failure)
                if not keep_going or len(fuzzer.failures) >= 50:
                    done = i + 1
                    break
            done = i + 1
    finally:
        if hard_limit > 0:
            faulthandler.cancel_dump_traceback_later()
        if fd >= 0:
            os.close(fd)
    seconds = time.perf_counter() - start
    gc.collect()
    growth = rss_mb() - rss_before
    if growth > max_rss_growth_mb:
        fuzzer.failures.append(
            FuzzFailure("memory growth", "*", impl, b"", f"RSS grew {growth:.1f} MiB")
        )
    summary = {
        "bench": "fuzz_codecs",
        "impl": impl,
        "inputs": done,
        "seconds": round(seconds, 2),
        "per_s": round(done / seconds) if seconds > 0 else 0,
        "errors": len(fuzzer.failures),
        "rss_growth_mb": round(growth, 2),
        "seed": seed,
        "slowest_input_ms": round(fuzzer.slowest * 1000, 2),
        "seeds": {p: len(s) for p, s in fuzzer.seeds.items()},
        "outcomes": dict(sorted(fuzzer.outcomes.items())),
    }
    return Report(summary, fuzzer.failures)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1_000_000, help="number of inputs")
    parser.add_argument("--seed", type=int, default=0, help="random seed (runs are repeatable)")
    parser.add_argument("--impl", choices=("python", "cython", "both"), default="both")
    parser.add_argument("--time-limit", type=float, default=1.0, help="seconds per input (soft)")
    parser.add_argument("--hard-limit", type=float, default=60.0, help="watchdog seconds per 1000")
    parser.add_argument("--max-rss-growth-mb", type=float, default=64.0)
    parser.add_argument("--keep-going", action="store_true", help="collect up to 50 failures")
    parser.add_argument(
        "--current-file",
        default=os.path.join(tempfile.gettempdir(), f"fuzz_codecs.{os.getpid()}.current"),
        help="the input in flight (4-byte length + bytes), left behind if the watchdog fires",
    )
    args = parser.parse_args(argv)
    print(f"fuzz_codecs: input in flight kept in {args.current_file}", file=sys.stderr)
    report = fuzz(
        args.count,
        args.seed,
        args.impl,
        time_limit=args.time_limit,
        hard_limit=args.hard_limit,
        max_rss_growth_mb=args.max_rss_growth_mb,
        keep_going=args.keep_going,
        current_file=args.current_file,
    )
    for failure in report.failures:
        print(f"FAILURE {failure.kind} [{failure.protocol}/{failure.impl}]", file=sys.stderr)
        print(f"  input hex: {failure.data.hex().upper()}", file=sys.stderr)
        print("  " + failure.detail.replace("\n", "\n  "), file=sys.stderr)
    print(json.dumps(report.summary))
    if not report.failures:
        with contextlib.suppress(OSError):
            os.remove(args.current_file)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
