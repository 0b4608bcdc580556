"""The GB/T 32960 Cython accelerator gives exactly the reference's results.

Frames are built at byte level (every realtime info type of both editions, sentinel-heavy field
bytes, custom blocks, unknown-type and signature tails), then mutated and re-checksummed so the
body-level error paths run too. For each input both implementations must return equal Structs or
raise ProtocolError with the same reason, offset and raw bytes; encoders must agree on decoded
messages and on messages with out-of-range fields; FrameReaders must yield the same events.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gateway.codecs.gbt32960 as gbt
from gateway.codecs import _select
from gateway.codecs.common import BadFrame
from gateway.codecs.errors import ProtocolError
from gateway.codecs.gbt32960 import _accel, reference
from gateway.codecs.gbt32960 import messages as m

SHARED = Path(os.environ.get("SILKGATE_SHARED", Path(__file__).resolve().parents[3] / "shared"))
VECTORS: list[bytes] = [
    bytes.fromhex(v["hex"])
    for v in json.loads((SHARED / "vectors" / "gbt32960.json").read_text(encoding="utf-8"))
]
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
Draw = Any  # hypothesis' DrawFn

# --------------------------------------------------------------------------- outcomes


def decoded(fn: Callable[[bytes], Any], data: bytes) -> tuple[str, Any]:
    """("ok", result) or ("error", (reason, offset, raw)); any other exception propagates."""
    try:
        return "ok", fn(data)
    except ProtocolError as exc:
        return "error", (exc.reason, exc.offset, exc.raw)


def encoded(fn: Callable[[m.Frame], bytes], msg: m.Frame) -> tuple[str, Any]:
    """Like :func:`decoded`; a non-protocol exception (bad Python types) compares by type."""
    try:
        return "ok", fn(msg)
    except ProtocolError as exc:
        return "error", exc.reason
    except Exception as exc:  # both must fail the same way on nonsense field types
        return "exception", type(exc).__name__


def assert_same_decode(frame: bytes) -> tuple[str, Any]:
    ref = decoded(reference.decode_frame, frame)
    acc = decoded(_accel.decode_frame, frame)
    assert acc == ref
    if acc[0] == "error":
        assert acc[1][2] == frame  # the raw frame rides on the error
    return acc


# --------------------------------------------------------------------------- byte-level frames

# Field bytes biased towards sentinels (0xFE, 0xFF, hence 0xFFFE, 0xFEFE, ...), the brake
# pedal's 0x65 and 0. Two binary draws per field group keep generation cheap.
BYTE = st.one_of(st.integers(0, 255), st.sampled_from([0x00, 0x01, 0x65, 0xFE, 0xFF]))
_SPECIAL = bytes([0xFE] * 40 + [0xFF] * 40 + [0x65] * 8 + [0x00] * 8)


def _biased(values: bytes, picks: bytes) -> bytes:
    return bytes(
        _SPECIAL[p] if p < len(_SPECIAL) else v for v, p in zip(values, picks, strict=True)
    )


def raw(n: int) -> Any:
    return st.binary(min_size=2 * n, max_size=2 * n).map(lambda vp: _biased(vp[:n], vp[n:]))


@st.composite
def counted(draw: Draw, count_size: int, item_size: int, max_items: int) -> bytes:
    """A BYTE/WORD count followed by that many items."""
    n: int = draw(st.integers(0, max_items))
    items: bytes = draw(raw(n * item_size))
    return n.to_bytes(count_size, "big") + items


@st.composite
def repeated(draw: Draw, part: Any, max_items: int) -> bytes:
    """A BYTE count followed by that many parts."""
    n = draw(st.integers(0, max_items))
    return bytes((n,)) + b"".join(draw(part) for _ in range(n))


@st.composite
def concat(draw: Draw, *parts: Any) -> bytes:
    return b"".join(draw(p) for p in parts)


@st.composite
def fault_list(draw: Draw, item_size: int) -> bytes:
    """Count + DWORD codes / BYTE pairs, or a 0xFE / 0xFF count meaning "no list"."""
    n = draw(st.sampled_from([0, 0, 1, 2, 3, 0xFE, 0xFF]))
    return bytes((n,)) + (draw(raw(n * item_size)) if n < 0xFE else b"")


def block_bodies(v16: bool) -> dict[int, Any]:
    """Info type -> strategy for a well-formed block body of that edition."""
    alarm = [raw(1), raw(4), *[fault_list(4)] * 4]
    common = {
        0x01: raw(20 if v16 else 18),
        0x02: counted(1, 12 if v16 else 10, 3),
        0x04: raw(5 if v16 else 2),
        0x05: raw(9 if v16 else 10),
    }
    if v16:
        return common | {
            0x03: concat(raw(6), counted(2, 1, 5), raw(10)),
            0x06: raw(14),
            0x07: concat(*alarm),
            0x08: repeated(concat(raw(9), counted(1, 2, 6)), 2),
            0x09: repeated(concat(raw(1), counted(2, 1, 6)), 2),
        }
    return common | {
        0x03: raw(12),
        0x06: concat(*alarm, fault_list(2)),
        0x07: repeated(concat(raw(5), counted(2, 2, 6)), 2),
        0x08: repeated(concat(raw(1), counted(2, 1, 6)), 2),
        0x30: repeated(concat(raw(10), counted(2, 1, 4)), 2),
        0x31: concat(raw(5), counted(2, 2, 4), counted(2, 1, 4)),
        0x32: raw(18),
    }


CALENDAR_TIME = st.tuples(
    st.integers(0, 99),
    st.integers(1, 12),
    st.integers(1, 31),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
).map(bytes)
TIMES = st.one_of(CALENDAR_TIME, CALENDAR_TIME, raw(6))


@st.composite
def realtime_body(draw: Draw, v16: bool) -> bytes:
    """time + typed blocks + custom blocks, optionally ended by an unknown type or signature."""
    bodies = block_bodies(v16)
    out = bytearray(draw(TIMES))
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.integers(0, 5)) == 0:
            info_type = draw(st.integers(0x80, 0xFE))
            out += bytes((info_type,)) + draw(counted(2, 1, 8))
        else:
            info_type = draw(st.sampled_from(sorted(bodies)))
            out += bytes((info_type,)) + draw(bodies[info_type])
    tail = draw(st.sampled_from(["none", "unknown", "signature"]))
    if tail == "unknown":
        unknown = [t for t in range(0x80) if t not in bodies] + ([0xFF] if v16 else [])
        out += bytes((draw(st.sampled_from(unknown)),)) + draw(st.binary(max_size=8))
    elif tail == "signature" and not v16:
        out += b"\xff" + draw(raw(1)) + draw(counted(2, 1, 8)) + draw(counted(2, 1, 8))
    return bytes(out)


def frame_bytes(
    start: bytes, command: int, response: int, vin: bytes, enc: int, body: bytes
) -> bytes:
    inner = bytes((command, response)) + vin + bytes((enc,)) + len(body).to_bytes(2, "big") + body
    return start + inner + bytes((reference.bcc(inner),))


VINS = st.one_of(
    st.text("ABCDEFGHJKLMNPRSTUVWXYZ0123456789", min_size=17, max_size=17).map(str.encode),
    st.text("ABC123", max_size=16).map(lambda s: s.encode().ljust(17, b"\x00")),
    st.binary(min_size=17, max_size=17),
)


@st.composite
def frames(draw: Draw) -> bytes:
    """A well-formed frame: mostly realtime/reissue, else any command with a short body."""
    v16 = draw(st.booleans())
    command = draw(st.one_of(st.sampled_from([0x02, 0x02, 0x03]), st.integers(0, 255)))
    response = draw(st.one_of(st.just(0xFE), st.integers(0, 255)))
    enc = draw(st.sampled_from([0x01, 0x01, 0x01, 0xFE, 0xFF, 0x02, 0x03, 0x04, 0x05]))
    body = draw(
        st.one_of(
            realtime_body(v16),
            realtime_body(v16),
            st.sampled_from([b"", b"\x12\x06\x17\x0c\x05\x02"]),
            st.binary(max_size=40),
        )
    )
    return frame_bytes(b"##" if v16 else b"$$", command, response, draw(VINS), enc, body)


def refit(frame: bytes) -> bytes:
    """Fix the length field and the BCC so that a mutated body reaches the body decoders."""
    if len(frame) < 25:
        return frame
    out = bytearray(frame)
    out[22:24] = min(len(frame) - 25, 0xFFFF).to_bytes(2, "big")
    out[-1] = reference.bcc(out[2:-1])
    return bytes(out)


@st.composite
def mutated(draw: Draw, base: Any) -> bytes:
    """A frame with a few random byte edits, re-checksummed most of the time."""
    frame = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(frame)))
        edit = draw(st.sampled_from(["set", "set", "cut", "insert", "delete"]))
        if edit == "set" and at < len(frame):
            frame[at] = draw(BYTE)
        elif edit == "cut":
            del frame[at:]
        elif edit == "insert":
            frame[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif at < len(frame):
            del frame[at]
    return refit(bytes(frame)) if draw(st.integers(0, 4)) else bytes(frame)


VECTOR_FRAMES = st.sampled_from(VECTORS)
ANY_FRAME = st.one_of(frames(), VECTOR_FRAMES)

# --------------------------------------------------------------------------- decode / encode


def test_every_vector_is_equal() -> None:
    for frame in VECTORS:
        status, msg = assert_same_decode(frame)
        assert status == "ok"
        # Not always == frame: an all-0xFE filled block re-encodes with standard sentinels.
        wire = _accel.encode_frame(msg)
        assert wire == reference.encode_frame(msg)
        assert _accel.decode_frame(wire) == msg
        assert _accel.encode_body(msg.body, msg.version) == wire[24:-1]
        args = (frame[:-1], 24, msg.version, msg.command, msg.response, msg.encryption)
        assert _accel.decode_body(*args) == reference.decode_body(*args) == msg.body


@settings(FAST, max_examples=300)
@given(frame=frames())
def test_valid_frames_decode_and_encode_equal(frame: bytes) -> None:
    status, msg = assert_same_decode(frame)
    if status == "ok":
        wire = encoded(reference.encode_frame, msg)
        assert encoded(_accel.encode_frame, msg) == wire
        if wire[0] == "ok":
            assert _accel.decode_frame(wire[1]) == msg


@settings(FAST, max_examples=800)
@given(frame=mutated(ANY_FRAME))
def test_mutated_frames_same_result_or_reason(frame: bytes) -> None:
    assert_same_decode(frame)


@settings(FAST, max_examples=400)
@given(
    data=st.one_of(
        st.binary(max_size=60),
        st.binary(max_size=60).map(lambda b: b"##" + b),
        st.binary(max_size=60).map(lambda b: refit(b"$$" + b)),
    )
)
def test_garbage_same_reason(data: bytes) -> None:
    assert_same_decode(data)


# Values an encoder may be handed in a field: in and out of range, wrong types, non-finite.
ODD_VALUES = st.one_of(
    st.none(),
    st.integers(-(2**33), 2**33),
    st.integers(-(2**70), 2**70),
    st.floats(-1e12, 1e12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.just(b"\x01\x02"),
    st.just([1, 2]),
)


@settings(FAST, max_examples=200)
@given(frame=frames(), data=st.data())
def test_encoders_agree_on_odd_field_values(frame: bytes, data: st.DataObject) -> None:
    try:
        msg = reference.decode_frame(frame)
    except ProtocolError:
        return
    body = msg.body
    if isinstance(body, m.RealtimeData) and body.blocks:
        i = data.draw(st.integers(0, len(body.blocks) - 1))
        block = body.blocks[i]
        names = [f.name for f in msgspec.structs.fields(block) if f.name != "quality"]
        if names:
            name = data.draw(st.sampled_from(names))
            block = msgspec.structs.replace(block, **{name: data.draw(ODD_VALUES)})
        blocks = [*body.blocks[:i], block, *body.blocks[i + 1 :]]
        msg = msgspec.structs.replace(msg, body=m.RealtimeData(time=body.time, blocks=blocks))
    header = data.draw(st.sampled_from(["version", "command", "response", "vin", "encryption", ""]))
    if header:
        odd = data.draw(st.one_of(ODD_VALUES, st.text(max_size=20)))
        msg = msgspec.structs.replace(msg, **{header: odd})
    assert encoded(_accel.encode_frame, msg) == encoded(reference.encode_frame, msg)


# --------------------------------------------------------------------------- stream reader

STREAM_ITEMS = st.one_of(
    ANY_FRAME,
    mutated(ANY_FRAME),
    st.binary(max_size=30),
    st.sampled_from([b"#", b"$", b"##", b"$$", b"###", b"$$$", b"#$", b"##$"]),
)


@settings(FAST, max_examples=150)
@given(
    items=st.lists(STREAM_ITEMS, min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 3000), max_size=10),
    max_frame=st.one_of(st.none(), st.integers(2, 700)),
)
def test_readers_yield_the_same_events(
    items: list[bytes], cuts: list[int], max_frame: int | None
) -> None:
    stream = b"".join(items)
    readers: list[Any] = []
    for impl in (reference, _accel):
        readers.append(impl.FrameReader() if max_frame is None else impl.FrameReader(max_frame))
    start = 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        chunk = stream[start:cut]
        start = max(start, cut)
        events: list[list[bytes | BadFrame]] = []
        for reader in readers:
            reader.feed(chunk)
            events.append(list(reader))
        assert events[0] == events[1]
        assert readers[0].buffered == readers[1].buffered
        assert readers[0].next_event() is None and readers[1].next_event() is None


@settings(FAST, max_examples=300)
@given(data=st.binary(max_size=300))
def test_bcc_equal(data: bytes) -> None:
    want = reference.bcc(data)
    assert _accel.bcc(data) == want
    assert _accel.bcc(bytearray(data)) == want
    assert _accel.bcc(memoryview(data)) == want


# --------------------------------------------------------------------------- selection


def test_the_package_selects_the_extension() -> None:
    if _select.extensions_disabled():
        pytest.skip(f"{_select.NO_EXTENSIONS_ENV} is set")
    assert gbt.IMPLEMENTATION == "cython"
    assert gbt.decode_frame is _accel.decode_frame
    assert gbt.FrameReader.__module__ == "gateway.codecs.gbt32960._accel"
    assert _accel.decode_frame.__module__ == "gateway.codecs.gbt32960._accel"
    assert (_accel.__file__ or "").endswith(".so")
