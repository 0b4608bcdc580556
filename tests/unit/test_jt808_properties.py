"""Hypothesis properties: decode(encode(m)) == m for every JT/T 808 body type in both versions,
escaping round trips, and no exception but ProtocolError on arbitrary input."""

from __future__ import annotations

import contextlib
import datetime as dt
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.codecs.common import BadFrame, DeviceTime
from gateway.codecs.errors import ProtocolError
from gateway.codecs.jt808 import constants as c
from gateway.codecs.jt808.messages import (
    BODY_TYPES,
    AdditionalItem,
    AlarmEventId,
    AnalogValues,
    AreaAlarm,
    Authenticate,
    BatchLocation,
    Body,
    CabinTemperature,
    CanBusData,
    CanItem,
    CanReceiveTime,
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
    PlatformResendRequest,
    QueryAllParams,
    QueryParams,
    QueryParamsResponse,
    QueryServerTime,
    RawBody,
    RawItem,
    Register,
    RegisterResponse,
    RouteTimeAlarm,
    SatelliteCount,
    ServerTime,
    SetParams,
    SignalStrength,
    TachographSpeed,
    TerminalControl,
    TerminalGeneralResponse,
    TerminalParam,
    TerminalResendRequest,
    TextMessage,
    TransparentDownlink,
    TransparentUplink,
    TyrePressure,
)
from gateway.codecs.jt808.reference import make_can_time, make_device_time, make_server_time

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcxyz0123456789-_.粤京沪川鲁苏浙"


def gbk_text(max_bytes: int) -> st.SearchStrategy[str]:
    """Text without NUL or trailing spaces (stripped on decode) that fits ``max_bytes``."""
    return st.text(ALPHABET, max_size=max_bytes).filter(lambda s: len(s.encode("gbk")) <= max_bytes)


def scaled(bits: st.SearchStrategy[int], factor: float) -> st.SearchStrategy[float]:
    return bits.map(lambda n: n / factor)


# ------------------------------------------------------------------------------ values

instants = st.datetimes(
    min_value=dt.datetime(2000, 1, 2),
    max_value=dt.datetime(2099, 12, 30),
    timezones=st.just(dt.UTC),
)
device_times = st.one_of(
    instants.map(make_device_time),
    st.sampled_from(["FFFFFFFFFFFF", "241301000000", "2402300000A0"]).map(
        lambda h: DeviceTime(raw=bytes.fromhex(h), utc=None)
    ),
)
times_of_day = st.times().map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
can_times = st.one_of(
    times_of_day.map(make_can_time),
    st.just(CanReceiveTime(raw=bytes.fromhex("2599990000"), time=None)),
)

# ----------------------------------------------------------------------------- items

KNOWN_IDS = sorted(c.ITEM_LENGTHS)
odd_length_items = st.sampled_from(KNOWN_IDS).flatmap(
    lambda i: (
        st.binary(max_size=12)
        .filter(lambda b: len(b) not in c.ITEM_LENGTHS[i])
        .map(lambda b: RawItem(item_id=i, data=b))
    )
)
unknown_ids = st.integers(0, 0xFF).filter(lambda i: i not in c.ITEM_LENGTHS and i != 0xE0)
items: st.SearchStrategy[AdditionalItem] = st.one_of(
    scaled(u32, 10).map(lambda v: Odometer(km=v)),
    scaled(u16, 10).map(lambda v: FuelLevel(litres=v)),
    scaled(u16, 10).map(lambda v: TachographSpeed(kmh=v)),
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
    st.integers(0, 4).flatmap(
        lambda n: st.integers(0, 256**n - 1).map(lambda v: CustomItemsLength(value=v, size=n))
    ),
    st.builds(RawItem, item_id=unknown_ids, data=st.binary(max_size=30)),
    odd_length_items,
)


@st.composite
def locations(draw: st.DrawFn, max_items: int = 6) -> Location:
    status = draw(u32)
    lat, lon = draw(u32) / 1e6, draw(u32) / 1e6
    return Location(
        alarm_flags=draw(u32),
        status_flags=status,
        latitude=-lat if status & c.STATUS_SOUTH else lat,
        longitude=-lon if status & c.STATUS_WEST else lon,
        altitude_m=draw(u16),
        speed_kmh=draw(u16) / 10,
        direction=draw(u16),
        time=draw(device_times),
        items=tuple(draw(st.lists(items, max_size=max_items))),
    )


# ---------------------------------------------------------------------------- bodies


def register(version: int) -> st.SearchStrategy[Register]:
    maker, model, ident = (5, 20, 7) if version == 2013 else (11, 30, 30)
    return st.builds(
        Register,
        province=u16,
        city=u16,
        maker=gbk_text(maker),
        model=gbk_text(model),
        terminal_id=gbk_text(ident),
        plate_color=u8,
        plate=gbk_text(20),
    )


def authenticate(version: int) -> st.SearchStrategy[Authenticate]:
    if version == 2013:
        return st.builds(Authenticate, auth_code=gbk_text(60))
    return st.builds(
        Authenticate, auth_code=gbk_text(60), imei=gbk_text(15), software_version=gbk_text(20)
    )


register_responses = st.one_of(
    st.builds(RegisterResponse, reply_serial=u16, result=st.just(0), auth_code=gbk_text(40)),
    st.builds(RegisterResponse, reply_serial=u16, result=st.integers(1, 255)),
)
can_items = st.builds(
    CanItem,
    channel=st.integers(0, 1),
    frame_type=st.integers(0, 1),
    collection_method=st.integers(0, 1),
    can_id=st.integers(0, c.CAN_ID_MASK),
    data=st.binary(min_size=8, max_size=8),
)
packet_ids = st.lists(u16, max_size=40).map(tuple)
terminal_params = st.lists(
    st.builds(TerminalParam, param_id=u32, data=st.binary(max_size=20)), max_size=10
).map(tuple)
# ALPHABET has no ';' (the separator); ("",) encodes as no parameters, i.e. ()
control_params = st.lists(gbk_text(12), max_size=8).map(tuple).filter(lambda t: t != ("",))


def bodies(version: int) -> st.SearchStrategy[tuple[int, Body]]:
    """(message id, body) for every message type, laid out for ``version``."""
    pairs: list[tuple[int, st.SearchStrategy[Any]]] = [
        (0x0001, st.builds(TerminalGeneralResponse, reply_serial=u16, reply_msg_id=u16, result=u8)),
        (0x8001, st.builds(PlatformGeneralResponse, reply_serial=u16, reply_msg_id=u16, result=u8)),
        (0x0002, st.just(Heartbeat())),
        (0x0003, st.just(Logout())),
        (0x0004, st.just(QueryServerTime())),
        (0x8004, instants.map(lambda t: ServerTime(time=make_server_time(t)))),
        (0x0100, register(version)),
        (0x8100, register_responses),
        (0x0102, authenticate(version)),
        (0x0200, locations()),
        (
            0x0704,
            st.builds(
                BatchLocation,
                batch_type=st.integers(0, 1),
                items=st.lists(locations(max_items=3), max_size=3).map(tuple),
            ),
        ),
        (
            0x0705,
            st.builds(
                CanBusData,
                receive_time=can_times,
                items=st.lists(can_items, max_size=20).map(tuple),
            ),
        ),
        (0x0900, st.builds(TransparentUplink, kind=u8, content=st.binary(max_size=200))),
        (0x8900, st.builds(TransparentDownlink, kind=u8, content=st.binary(max_size=200))),
        (0x8003, st.builds(PlatformResendRequest, original_serial=u16, packet_ids=packet_ids)),
        (0x0005, st.builds(TerminalResendRequest, original_serial=u16, packet_ids=packet_ids)),
        (0x8103, st.builds(SetParams, params=terminal_params)),
        (0x8104, st.just(QueryAllParams())),
        (0x8106, st.builds(QueryParams, param_ids=st.lists(u32, max_size=40).map(tuple))),
        (0x0104, st.builds(QueryParamsResponse, reply_serial=u16, params=terminal_params)),
        (0x8105, st.builds(TerminalControl, command=u8, params=control_params)),
        (
            0x8300,
            st.builds(
                TextMessage,
                flags=u8,
                text=gbk_text(200),
                text_type=u8 if version == 2019 else st.none(),
            ),
        ),
        (
            0x0F01,
            st.builds(RawBody, data=st.binary(max_size=100)),
        ),
    ]
    assert {m for m, _ in pairs} >= set(BODY_TYPES)
    return st.one_of(*(_with_id(m, s) for m, s in pairs))


def _with_id(msg_id: int, bodies: st.SearchStrategy[Body]) -> st.SearchStrategy[tuple[int, Body]]:
    return bodies.map(lambda body: (msg_id, body))


BODIES = {v: bodies(v) for v in (2013, 2019)}


@st.composite
def frames(draw: st.DrawFn, version: int | None = None) -> Frame:
    v = draw(st.sampled_from([2013, 2019])) if version is None else version
    msg_id, body = draw(BODIES[v])
    packet: tuple[int | None, int | None] = draw(st.sampled_from([(None, None), (1, 1)]))
    encryption = 0
    if isinstance(body, RawBody):
        msg_id = draw(st.sampled_from([msg_id, 0x0200, 0x0704]))
        encryption = draw(st.integers(0, 7))
        if encryption == 0 and msg_id != 0x0F01:  # a typed id keeps a raw body only in packets
            total = draw(st.integers(2, 0xFFFF))
            packet = (total, draw(st.integers(1, total)))
    return Frame(
        version=v,
        msg_id=msg_id,
        phone=draw(st.text("0123456789", min_size=c.PHONE_DIGITS[v], max_size=c.PHONE_DIGITS[v])),
        serial=draw(u16),
        body=body,
        protocol_version=draw(u8) if v == 2019 else None,
        encryption=encryption,
        packet_total=packet[0],
        packet_index=packet[1],
        reserved=draw(st.integers(0, 1)),
    )


FRAMES = {v: frames(v) for v in (2013, 2019)}


# -------------------------------------------------------------------------- properties


@pytest.mark.parametrize("version", [2013, 2019])
@SETTINGS
@given(data=st.data())
def test_frame_round_trip(jt808: ModuleType, version: int, data: st.DataObject) -> None:
    msg = data.draw(FRAMES[version])
    raw = jt808.encode_frame(msg)
    assert raw[0] == raw[-1] == 0x7E and raw.count(b"\x7e") == 2
    assert jt808.decode_frame(raw) == msg
    assert jt808.encode_frame(jt808.decode_frame(raw)) == raw


@SETTINGS
@given(payload=st.binary(max_size=300))
def test_escape_round_trip(jt808: ModuleType, payload: bytes) -> None:
    escaped = jt808.escape(payload)
    assert b"\x7e" not in escaped
    assert jt808.unescape(escaped) == payload
    assert len(escaped) == len(payload) + payload.count(b"\x7e") + payload.count(b"\x7d")


@settings(SETTINGS, max_examples=40)
@given(msgs=st.lists(frames(), min_size=1, max_size=4), data=st.data())
def test_reader_any_chunking(jt808: ModuleType, msgs: list[Frame], data: st.DataObject) -> None:
    raws = [jt808.encode_frame(m) for m in msgs]
    stream = b"".join(raws)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    reader = jt808.FrameReader()
    out: list[bytes | BadFrame] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        reader.feed(stream[a:b])
        out.extend(reader)
    assert out == raws


@SETTINGS
@given(blob=st.binary(max_size=120))
def test_arbitrary_input_only_protocol_errors(jt808: ModuleType, blob: bytes) -> None:
    for candidate in (blob, b"\x7e" + blob + b"\x7e"):
        with contextlib.suppress(ProtocolError):
            jt808.decode_frame(candidate)
    reader = jt808.FrameReader(max_frame_size=64)
    reader.feed(blob + b"\x7e")
    for event in reader:
        if isinstance(event, bytes):
            with contextlib.suppress(ProtocolError):
                jt808.decode_frame(event)


@SETTINGS
@given(msg=frames(), data=st.data())
def test_corrupted_frames_only_protocol_errors(
    jt808: ModuleType, msg: Frame, data: st.DataObject
) -> None:
    payload = bytearray(jt808.unescape(jt808.encode_frame(msg)[1:-1])[:-1])
    i = data.draw(st.integers(0, len(payload) - 1))
    payload[i] = data.draw(u8)
    payload = payload[: data.draw(st.integers(0, len(payload)))]
    raw = b"\x7e" + jt808.escape(bytes(payload) + bytes((jt808.checksum(payload),))) + b"\x7e"
    with contextlib.suppress(ProtocolError):
        jt808.decode_frame(raw)
