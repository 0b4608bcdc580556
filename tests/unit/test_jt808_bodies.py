"""JT/T 808 bodies: hand-built wire bytes for every message type and additional item."""

from __future__ import annotations

import datetime as dt
from types import ModuleType

import pytest

from gateway.codecs.common import DeviceTime
from gateway.codecs.errors import ProtocolError, Reason
from gateway.codecs.jt808 import constants as c
from gateway.codecs.jt808 import reference
from gateway.codecs.jt808.messages import (
    AlarmEventId,
    AnalogValues,
    AreaAlarm,
    Authenticate,
    Body,
    CabinTemperature,
    CanBusData,
    CanItem,
    CustomItemsLength,
    ExtendedSignals,
    Frame,
    FuelLevel,
    IoStatus,
    Location,
    Odometer,
    OverspeedAlarm,
    PlatformResendRequest,
    QueryServerTime,
    RawItem,
    Register,
    RegisterResponse,
    RouteTimeAlarm,
    SatelliteCount,
    ServerTime,
    SignalStrength,
    TachographSpeed,
    TerminalGeneralResponse,
    TerminalResendRequest,
    TransparentDownlink,
    TyrePressure,
)

# 2013 location basic block: alarm 1, status south+west, 22.5 / 113.25, 12 m, 60.5 km/h, 90 deg,
# 2024-02-29 08:00:00 GMT+8
BASIC = bytes.fromhex("000000010000000C015752A006C00ED0000C025D005A240229080000")


def frame_bytes(jt808: ModuleType, msg_id: int, body: bytes, version: int = 2013) -> bytes:
    if version == 2019:
        header = msg_id.to_bytes(2, "big") + (0x4000 | len(body)).to_bytes(2, "big") + b"\x01"
        header += bytes(10)
    else:
        header = msg_id.to_bytes(2, "big") + len(body).to_bytes(2, "big") + bytes(6)
    payload = header + b"\x00\x05" + body
    escaped: bytes = jt808.escape(payload + bytes((jt808.checksum(payload),)))
    return b"\x7e" + escaped + b"\x7e"


def decode_body(jt808: ModuleType, msg_id: int, body: bytes, version: int = 2013) -> Body:
    raw = frame_bytes(jt808, msg_id, body, version)
    frame: Frame = jt808.decode_frame(raw)
    assert jt808.encode_frame(frame) == raw  # every hand-built body re-encodes exactly
    return frame.body


def body_error(jt808: ModuleType, msg_id: int, body: bytes, version: int = 2013) -> Reason:
    with pytest.raises(ProtocolError) as exc:
        jt808.decode_frame(frame_bytes(jt808, msg_id, body, version))
    reason: Reason = exc.value.reason
    return reason


def test_location_basic(jt808: ModuleType) -> None:
    loc = decode_body(jt808, 0x0200, BASIC)
    assert isinstance(loc, Location)
    assert (loc.latitude, loc.longitude) == (-22.5, -113.25)
    assert (loc.altitude_m, loc.speed_kmh, loc.direction) == (12, 60.5, 90)
    assert loc.time == DeviceTime(
        raw=bytes.fromhex("240229080000"), utc=dt.datetime(2024, 2, 29, 0, 0, tzinfo=dt.UTC)
    )
    assert loc.items == () and loc.odometer_km is None


ITEMS: list[tuple[str, object]] = [
    ("0104000003E8", Odometer(km=100.0)),
    ("02020064", FuelLevel(litres=10.0)),
    ("03020259", TachographSpeed(kmh=60.1)),
    ("04020007", AlarmEventId(event_id=7)),
    ("051E" + "64" * 4 + "FF" * 26, TyrePressure(pressures=(100,) * 4 + (None,) * 26)),
    ("0602FFF6", CabinTemperature(celsius=-10)),
    ("110100", OverspeedAlarm(location_type=0)),
    ("11050200000010", OverspeedAlarm(location_type=2, area_id=16)),
    ("1206030000002001", AreaAlarm(location_type=3, area_id=32, direction=1)),
    ("130700000005012C00", RouteTimeAlarm(section_id=5, drive_time_s=300, result=0)),
    ("250400000003", ExtendedSignals(flags=3)),
    ("2A020101", IoStatus(flags=0x0101)),
    ("2B0400020001", AnalogValues(ad0=1, ad1=2)),
    ("30011F", SignalStrength(value=31)),
    ("31010C", SatelliteCount(count=12)),
    ("E00105", CustomItemsLength(value=5, size=1)),
    ("E303AABBCC", RawItem(item_id=0xE3, data=b"\xaa\xbb\xcc")),
    ("D50100", RawItem(item_id=0xD5, data=b"\x00")),
    ("0103000001", RawItem(item_id=0x01, data=b"\x00\x00\x01")),  # wrong length kept raw
    ("1102AABB", RawItem(item_id=0x11, data=b"\xaa\xbb")),
    ("EE00", RawItem(item_id=0xEE, data=b"")),
]


@pytest.mark.parametrize(("wire", "item"), ITEMS, ids=[w[:2] for w, _ in ITEMS])
def test_additional_item(jt808: ModuleType, wire: str, item: object) -> None:
    for version in (2013, 2019):
        loc = decode_body(jt808, 0x0200, BASIC + bytes.fromhex(wire), version)
        assert isinstance(loc, Location)
        assert loc.items == (item,)


def test_items_in_order(jt808: ModuleType) -> None:
    wire = "".join(w for w, _ in ITEMS)
    loc = decode_body(jt808, 0x0200, BASIC + bytes.fromhex(wire))
    assert isinstance(loc, Location)
    assert list(loc.items) == [item for _, item in ITEMS]
    assert loc.odometer_km == 100.0 and loc.fuel_l == 10.0


@pytest.mark.parametrize("tail", ["01", "0104000003", "E305AABB"])
def test_item_past_end_is_truncated(jt808: ModuleType, tail: str) -> None:
    assert body_error(jt808, 0x0200, BASIC + bytes.fromhex(tail)) is Reason.TRUNCATED


def test_invalid_time_kept_raw(jt808: ModuleType) -> None:
    for bad in ("FFFFFFFFFFFF", "241301000000", "240230000000", "2402290000A0"):
        loc = decode_body(jt808, 0x0200, BASIC[:22] + bytes.fromhex(bad))
        assert isinstance(loc, Location)
        assert loc.time == DeviceTime(raw=bytes.fromhex(bad), utc=None)


def test_location_truncated(jt808: ModuleType) -> None:
    for size in (0, 4, 21, 27):
        assert body_error(jt808, 0x0200, BASIC[:size]) is Reason.TRUNCATED


def test_batch(jt808: ModuleType) -> None:
    item = BASIC + bytes.fromhex("0104000003E8")
    body = bytes.fromhex("000201") + b"".join(len(item).to_bytes(2, "big") + item for _ in "ab")
    batch = decode_body(jt808, 0x0704, body)
    assert batch == reference.decode_batch_location(body, 2013)
    assert body_error(jt808, 0x0704, body[:-1]) is Reason.TRUNCATED
    assert body_error(jt808, 0x0704, body + b"\x00") is Reason.TRAILING_BYTES


def test_can_bus_data(jt808: ModuleType) -> None:
    body = bytes.fromhex("00021230450123E00001000102030405060708000007FF0000000000000000")
    msg = decode_body(jt808, 0x0705, body)
    assert isinstance(msg, CanBusData)
    assert msg.receive_time.time == dt.time(12, 30, 45, 123_000)
    assert msg.items == (
        CanItem(
            channel=1,
            frame_type=1,
            collection_method=1,
            can_id=0x100,
            data=bytes.fromhex("0102030405060708"),
        ),
        CanItem(channel=0, frame_type=0, collection_method=0, can_id=0x7FF, data=bytes(8)),
    )
    odd = decode_body(jt808, 0x0705, bytes.fromhex("00002599990000"))
    assert isinstance(odd, CanBusData) and odd.receive_time.time is None
    assert body_error(jt808, 0x0705, body[:-1]) is Reason.TRUNCATED


def test_general_response_and_errors(jt808: ModuleType) -> None:
    body = bytes.fromhex("0064020003")
    assert decode_body(jt808, 0x0001, body) == TerminalGeneralResponse(
        reply_serial=100, reply_msg_id=0x0200, result=3
    )
    assert body_error(jt808, 0x0001, body[:4]) is Reason.TRUNCATED
    assert body_error(jt808, 0x8001, body + b"\x00") is Reason.TRAILING_BYTES
    assert body_error(jt808, 0x0002, b"\x00") is Reason.TRAILING_BYTES


def test_server_time(jt808: ModuleType) -> None:
    assert decode_body(jt808, 0x0004, b"", 2019) == QueryServerTime()
    msg = decode_body(jt808, 0x8004, bytes.fromhex("250101120000"), 2019)
    want = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)
    if not c.SERVER_TIME_IS_UTC:
        want -= dt.timedelta(hours=8)
    assert msg == ServerTime(time=DeviceTime(raw=bytes.fromhex("250101120000"), utc=want))
    assert isinstance(msg, ServerTime) and reference.make_server_time(want) == msg.time


def test_register_vin_and_failure_response(jt808: ModuleType) -> None:
    body = (
        bytes.fromhex("002C0131")
        + b"ABCDE"
        + bytes(20)
        + b"1234567"
        + b"\x00"
        + b"LVIN0123456789012"
    )
    reg = decode_body(jt808, 0x0100, body)
    assert isinstance(reg, Register)
    assert (reg.plate_color, reg.plate, reg.maker, reg.model) == (
        0,
        "LVIN0123456789012",
        "ABCDE",
        "",
    )
    assert body_error(jt808, 0x0100, body[:30]) is Reason.TRUNCATED
    assert body_error(jt808, 0x0100, body[:-1] + b"\xff") is Reason.BAD_VALUE  # not GBK
    refused = decode_body(jt808, 0x8100, bytes.fromhex("000A03"))
    assert refused == RegisterResponse(reply_serial=10, result=3, auth_code=None)
    empty_ok = decode_body(jt808, 0x8100, bytes.fromhex("000A00"))
    assert empty_ok == RegisterResponse(reply_serial=10, result=0, auth_code="")


def test_authenticate_2019(jt808: ModuleType) -> None:
    body = b"\x06abc123" + b"861234567890123" + b"V1.2.3".ljust(20, b"\x00")
    auth = decode_body(jt808, 0x0102, body, 2019)
    assert auth == Authenticate(
        auth_code="abc123", imei="861234567890123", software_version="V1.2.3"
    )
    assert body_error(jt808, 0x0102, body[:-1], 2019) is Reason.TRUNCATED
    assert body_error(jt808, 0x0102, b"\x09abc", 2019) is Reason.TRUNCATED


def test_resend_request_count_width(jt808: ModuleType) -> None:
    msg = decode_body(jt808, 0x8003, bytes.fromhex("00100200020005"))
    assert msg == PlatformResendRequest(original_serial=16, packet_ids=(2, 5))
    msg = decode_body(jt808, 0x0005, bytes.fromhex("0010000200020005"), 2019)
    assert msg == TerminalResendRequest(original_serial=16, packet_ids=(2, 5))
    assert body_error(jt808, 0x8003, bytes.fromhex("0010030002"), 2019) is Reason.TRUNCATED


def test_transparent(jt808: ModuleType) -> None:
    assert decode_body(jt808, 0x8900, b"\xf1\x7e\x7d") == TransparentDownlink(
        kind=0xF1, content=b"\x7e\x7d"
    )
    assert body_error(jt808, 0x0900, b"") is Reason.TRUNCATED


def test_flag_names() -> None:
    assert c.alarm_names(1 << 3 | 1 << 29 | 1 << 31, 2013) == [
        "danger_warning",
        "collision_warning",
        "illegal_door_open",
    ]
    assert c.alarm_names(1 << 3 | 1 << 15 | 1 << 31, 2019) == [
        "dangerous_driving",
        "illegal_driving",
    ]
    assert c.status_names(0b11 | 3 << 8 | 1 << 22, 2019) == [
        "acc_on",
        "positioned",
        "moving",
        "load_full",
    ]
    assert c.status_names(1 << 22 | 1 << 8, 2013) == ["load_half"]
