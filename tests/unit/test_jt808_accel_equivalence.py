"""The Cython accelerator against the pure-Python reference: equal Structs, equal bytes, and the
same ProtocolError (reason, offset, message, raw) on random valid, mutated and garbage input."""

from __future__ import annotations

import datetime as dt
import importlib.machinery
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.codecs.common import DeviceTime
from gateway.codecs.errors import ProtocolError
from gateway.codecs.jt808 import _accel, reference
from gateway.codecs.jt808.messages import (
    AdditionalItem,
    AlarmEventId,
    AnalogValues,
    AreaAlarm,
    BatchLocation,
    Body,
    CabinTemperature,
    CustomItemsLength,
    ExtendedSignals,
    Frame,
    FuelLevel,
    Heartbeat,
    IoStatus,
    Location,
    Logout,
    Odometer,
    OverspeedAlarm,
    PlatformGeneralResponse,
    QueryParams,
    QueryParamsResponse,
    QueryServerTime,
    RawBody,
    RawItem,
    RouteTimeAlarm,
    SatelliteCount,
    SetParams,
    SignalStrength,
    TachographSpeed,
    TerminalControl,
    TerminalGeneralResponse,
    TerminalParam,
    TextMessage,
    TransparentUplink,
    TyrePressure,
)

FAST = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """What a call did: its result, the full ProtocolError, or the type of any other error."""
    try:
        return ("ok", fn(*args))
    except ProtocolError as exc:
        return ("protocol_error", exc.reason, exc.offset, exc.message, exc.raw)
    except Exception as exc:
        return ("other", type(exc))


def same(name: str, *args: Any) -> tuple[Any, ...]:
    """Call ``name`` in both implementations and assert they did the same thing."""
    expected = outcome(getattr(reference, name), *args)
    assert outcome(getattr(_accel, name), *args) == expected
    return expected


def same_encode(msg: Frame) -> None:
    """encode_frame agrees; the ``cannot encode: <exc>`` message wording may differ."""
    expected, actual = outcome(reference.encode_frame, msg), outcome(_accel.encode_frame, msg)
    if expected[0] == "protocol_error" and expected[3].startswith("cannot encode:"):
        assert actual[:3] == expected[:3], (actual, expected)
        assert actual[3].startswith("cannot encode:")
    else:
        assert actual == expected


# ------------------------------------------------------------------------- strategies

bcd_pairs = st.integers(0, 99).map(lambda v: (v // 10) << 4 | v % 10)
# Mostly calendar-like BCD (bad days, hour 24, Feb 29 included), sometimes any byte.
raw_times = st.lists(st.one_of(bcd_pairs, bcd_pairs, u8), min_size=6, max_size=6).map(bytes)
device_times = st.one_of(
    raw_times.map(lambda raw: DeviceTime(raw=raw, utc=None)),
    st.datetimes(dt.datetime(2000, 1, 2), dt.datetime(2099, 12, 30), timezones=st.just(dt.UTC)).map(
        lambda t: DeviceTime(raw=b"", utc=t)
    ),
)

items: st.SearchStrategy[AdditionalItem] = st.one_of(
    u32.map(lambda v: Odometer(km=v / 10)),
    u16.map(lambda v: FuelLevel(litres=v / 10)),
    u16.map(lambda v: TachographSpeed(kmh=v / 10)),
    u16.map(lambda v: AlarmEventId(event_id=v)),
    st.lists(st.one_of(st.none(), st.integers(0, 254)), min_size=30, max_size=30).map(
        lambda p: TyrePressure(pressures=tuple(p))
    ),
    st.integers(-0x8000, 0x7FFF).map(lambda v: CabinTemperature(celsius=v)),
    st.builds(OverspeedAlarm, location_type=u8, area_id=st.one_of(st.none(), u32)),
    st.builds(AreaAlarm, location_type=u8, area_id=u32, direction=u8),
    st.builds(RouteTimeAlarm, section_id=u32, drive_time_s=u16, result=u8),
    u32.map(lambda v: ExtendedSignals(flags=v)),
    u16.map(lambda v: IoStatus(flags=v)),
    st.builds(AnalogValues, ad0=u16, ad1=u16),
    u8.map(lambda v: SignalStrength(value=v)),
    u8.map(lambda v: SatelliteCount(count=v)),
    st.integers(0, 12).flatmap(
        lambda n: st.integers(0, 256**n - 1).map(lambda v: CustomItemsLength(value=v, size=n))
    ),
    # any id with any length: vendor ids, and known ids of unexpected lengths
    st.builds(RawItem, item_id=u8, data=st.binary(max_size=40)),
)


@st.composite
def locations(draw: st.DrawFn, max_items: int = 5) -> Location:
    status = draw(u32)
    lat, lon = draw(u32), draw(u32)
    return Location(
        alarm_flags=draw(u32),
        status_flags=status,
        latitude=(-lat if status & 4 else lat) / 1e6,
        longitude=(-lon if status & 8 else lon) / 1e6,
        altitude_m=draw(u16),
        speed_kmh=draw(u16) / 10,
        direction=draw(u16),
        time=draw(device_times),
        items=tuple(draw(st.lists(items, max_size=max_items))),
    )


bodies: st.SearchStrategy[tuple[int, Body]] = st.one_of(
    locations().map(lambda b: (0x0200, b)),
    st.builds(
        BatchLocation,
        batch_type=u8,
        items=st.lists(locations(max_items=2), max_size=3).map(tuple),
    ).map(lambda b: (0x0704, b)),
    st.builds(TerminalGeneralResponse, reply_serial=u16, reply_msg_id=u16, result=u8).map(
        lambda b: (0x0001, b)
    ),
    st.builds(PlatformGeneralResponse, reply_serial=u16, reply_msg_id=u16, result=u8).map(
        lambda b: (0x8001, b)
    ),
    st.sampled_from([(0x0002, Heartbeat()), (0x0003, Logout()), (0x0004, QueryServerTime())]),
    st.builds(TransparentUplink, kind=u8, content=st.binary(max_size=50)).map(
        lambda b: (0x0900, b)
    ),
    # platform commands and the 0x0104 answer
    st.lists(st.builds(TerminalParam, param_id=u32, data=st.binary(max_size=8)), max_size=4)
    .map(tuple)
    .flatmap(
        lambda p: st.sampled_from(
            [(0x8103, SetParams(params=p)), (0x0104, QueryParamsResponse(reply_serial=7, params=p))]
        )
    ),
    st.builds(QueryParams, param_ids=st.lists(u32, max_size=8).map(tuple)).map(
        lambda b: (0x8106, b)
    ),
    st.builds(TerminalControl, command=u8, params=st.lists(st.text(max_size=6)).map(tuple)).map(
        lambda b: (0x8105, b)
    ),
    st.builds(TextMessage, flags=u8, text=st.text(max_size=20), text_type=st.none() | u8).map(
        lambda b: (0x8300, b)
    ),
    st.tuples(
        st.sampled_from([0x0200, 0x0704, 0x0F01]), st.builds(RawBody, data=st.binary(max_size=64))
    ),
)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    """Valid-looking frames: any header layout, bodies weighted to the native message ids."""
    version = draw(st.sampled_from([2013, 2019]))
    msg_id, body = draw(bodies)
    total = draw(st.one_of(st.none(), st.just(1), u16))
    return Frame(
        version=version,
        msg_id=msg_id,
        phone=draw(st.text("0123456789", min_size=1, max_size=12 if version == 2013 else 20)),
        serial=draw(u16),
        body=body,
        protocol_version=draw(st.one_of(st.none(), u8)) if version == 2019 else None,
        encryption=draw(st.sampled_from([0, 0, 0, 1, 7])),
        packet_total=total,
        packet_index=None if total is None else draw(st.one_of(st.just(1), u16)),
        reserved=draw(st.integers(0, 1)),
    )


def wire(msg: Frame) -> bytes | None:
    try:
        return reference.encode_frame(msg)
    except ProtocolError:
        return None  # e.g. a body over 1023 bytes


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A frame with a few edits, before (checksum fixed) or after escaping."""
    raw = wire(draw(frames())) or bytes.fromhex("7E0002000004304832546500B7CA7E")
    payload = bytearray(reference.unescape(raw[1:-1])[:-1])
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        i = draw(st.integers(0, len(payload)))
        if kind == "set" and i < len(payload):
            payload[i] = draw(u8)
        elif kind == "insert":
            payload[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del payload[i : i + draw(st.integers(1, 4))]
        else:
            del payload[i:]
    check = reference.checksum(bytes(payload))
    if draw(st.booleans()):
        check ^= draw(st.integers(0, 0xFF))
    out = bytearray(b"\x7e" + reference.escape(bytes(payload) + bytes((check,))) + b"\x7e")
    for _ in range(draw(st.integers(0, 2))):  # raw damage: stray flags, escapes, bytes
        i = draw(st.integers(0, len(out) - 1))
        out[i] = draw(st.sampled_from([0x7E, 0x7D, 0x00, 0x01, 0x02, 0xFF]))
    return bytes(out)


# ------------------------------------------------------------------------------ tests


@FAST
@given(msg=frames())
def test_valid_frames_agree(msg: Frame) -> None:
    same_encode(msg)
    raw = wire(msg)
    if raw is not None:
        result = same("decode_frame", raw)
        assert result[0] != "other"
        if result[0] == "ok":
            assert _accel.encode_frame(result[1]) == raw


@FAST
@given(raw=mutated())
def test_mutated_frames_agree(raw: bytes) -> None:
    result = same("decode_frame", raw)
    assert result[0] != "other"


@FAST
@given(blob=st.binary(max_size=80))
def test_garbage_agrees(blob: bytes) -> None:
    for candidate in (blob, b"\x7e" + blob + b"\x7e"):
        assert same("decode_frame", candidate)[0] != "other"
    same("unescape", blob, 3)
    same("escape", blob)
    same("checksum", blob)
    for name in ("decode_location", "decode_batch_location", "decode_additional_items"):
        same(name, blob, 2019)
    for msg_id in (0x0200, 0x0704, 0x0001, 0x8001, 0x0002, 0x0003, 0x0004, 0x0900, 0x0F01):
        same("decode_body", msg_id, blob, 2013)
    for msg_id in (0x8103, 0x8104, 0x8106, 0x0104, 0x8105, 0x8300):
        for version in (2013, 2019):
            same("decode_body", msg_id, blob, version)


@settings(FAST, max_examples=200)
@given(
    pieces=st.lists(
        st.one_of(mutated(), st.binary(max_size=20), st.sampled_from([b"\x7e", b"\x7e\x7e"])),
        max_size=8,
    ),
    max_frame=st.one_of(st.none(), st.integers(15, 120)),
    data=st.data(),
)
def test_reader_agrees(pieces: list[bytes], max_frame: int | None, data: st.DataObject) -> None:
    stream = b"".join(p[1:] if data.draw(st.booleans()) else p for p in pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    args = () if max_frame is None else (max_frame,)
    readers = reference.FrameReader(*args), _accel.FrameReader(*args)
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        events = []
        for reader in readers:
            reader.feed(stream[a:b])
            events.append(list(reader))
        assert events[1] == events[0]
        assert readers[1].buffered == readers[0].buffered
    assert readers[1].next_event() is readers[0].next_event() is None


finite_or_not = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**40), 2**40),
)
any_int = st.one_of(u8, u16, u32, st.integers(-(2**70), 2**70))


@FAST
@given(data=st.data())
def test_out_of_range_encodes_agree(data: st.DataObject) -> None:
    """Values a Struct can hold but the wire cannot: the same error class and reason."""
    item = data.draw(
        st.one_of(
            st.builds(Odometer, km=finite_or_not),
            st.builds(FuelLevel, litres=finite_or_not),
            st.builds(AlarmEventId, event_id=any_int),
            st.builds(AnalogValues, ad0=any_int, ad1=any_int),
            st.builds(AreaAlarm, location_type=any_int, area_id=any_int, direction=any_int),
            st.builds(RouteTimeAlarm, section_id=any_int, drive_time_s=any_int, result=any_int),
            st.builds(SignalStrength, value=any_int),
            st.builds(CustomItemsLength, value=any_int, size=st.integers(0, 300)),
            st.builds(RawItem, item_id=any_int, data=st.binary(max_size=300)),
            st.builds(
                TyrePressure,
                pressures=st.lists(st.one_of(st.none(), any_int), max_size=32).map(tuple),
            ),
        )
    )
    loc = Location(
        alarm_flags=data.draw(any_int),
        status_flags=data.draw(u32),
        latitude=data.draw(finite_or_not),
        longitude=data.draw(finite_or_not),
        altitude_m=data.draw(any_int),
        speed_kmh=data.draw(finite_or_not),
        direction=data.draw(u16),
        time=data.draw(device_times),
        items=(item,),
    )
    choices: list[Body] = [
        loc,
        BatchLocation(batch_type=data.draw(any_int), items=(loc,)),
        PlatformGeneralResponse(reply_serial=data.draw(any_int), reply_msg_id=1, result=0),
    ]
    body = data.draw(st.sampled_from(choices))
    msg_id = {Location: 0x0200, BatchLocation: 0x0704}.get(type(body), 0x8001)
    msg = Frame(
        version=data.draw(st.sampled_from([2013, 2019])),
        msg_id=data.draw(st.sampled_from([msg_id, msg_id, 0x0001, -1, 0x10000])),
        phone=data.draw(st.sampled_from(["13912344329", "", "12a", "1" * 21, "١٢٣"])),
        serial=data.draw(any_int),
        body=body,
        packet_total=data.draw(st.one_of(st.none(), any_int)),
        packet_index=data.draw(st.one_of(st.none(), any_int)),
    )
    same_encode(msg)


def test_negative_zero_coordinates() -> None:
    """0 with the south/west bits: +0.0 as in the reference (``-0 / 1e6``)."""
    frame = reference.encode_frame(
        Frame(
            version=2013,
            msg_id=0x0200,
            phone="1",
            serial=1,
            body=Location(
                alarm_flags=0,
                status_flags=0xC,
                latitude=0.0,
                longitude=0.0,
                altitude_m=0,
                speed_kmh=0.0,
                direction=0,
                time=DeviceTime(raw=bytes(6), utc=None),
            ),
        )
    )
    body = _accel.decode_frame(frame).body
    assert isinstance(body, Location)
    assert math.copysign(1, body.latitude) == math.copysign(1, body.longitude) == 1


def test_vectors_agree(jt_vectors: list[dict[str, Any]]) -> None:
    stream = b""
    for v in jt_vectors:
        raw = bytes.fromhex(v["hex"])
        stream += raw
        for chunk in (raw, bytearray(raw), memoryview(raw)):
            result = same("decode_frame", chunk)
            if result[0] == "ok":
                same_encode(result[1])
    reader_events = []
    for module in (reference, _accel):
        reader = module.FrameReader()
        reader.feed(stream)
        reader_events.append(list(reader))
    assert reader_events[1] == reader_events[0]


def test_accelerator_is_selected(tmp_path: Path) -> None:
    """Without SILKGATE_NO_EXTENSIONS the package exports the compiled extension's functions."""
    env = {k: v for k, v in os.environ.items() if k != "SILKGATE_NO_EXTENSIONS"}
    code = (
        "import gateway.codecs.jt808 as j, gateway.codecs.jt808._accel as a; "
        "print(j.IMPLEMENTATION, j.decode_frame is a.decode_frame, "
        "j.FrameReader is a.FrameReader, a.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,  # not the checkout, whose gateway/ folder would shadow the install
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[:3] == ["cython", "True", "True"]
    assert out[3].endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert _accel.__file__ is not None
    assert _accel.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
