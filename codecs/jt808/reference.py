"""Pure-Python reference codec for JT/T 808 (2013 and 2019).

Public names (the Cython accelerator exposes the same ones):

* framing: ``FrameReader``, ``decode_frame``, ``encode_frame``, ``escape``, ``unescape``,
  ``checksum``, ``DEFAULT_MAX_FRAME``;
* bodies: ``decode_body(msg_id, body, version)`` / ``encode_body(body, version)`` and, per
  message, ``decode_<name>(body: bytes, version: int) -> Struct`` /
  ``encode_<name>(msg, version) -> bytes`` for ``terminal_general_response`` (0x0001),
  ``platform_general_response`` (0x8001), ``heartbeat`` (0x0002), ``logout`` (0x0003),
  ``query_server_time`` (0x0004), ``server_time`` (0x8004), ``register`` (0x0100),
  ``register_response`` (0x8100), ``authenticate`` (0x0102), ``location`` (0x0200),
  ``batch_location`` (0x0704), ``can_bus_data`` (0x0705), ``transparent_uplink`` (0x0900),
  ``transparent_downlink`` (0x8900), ``platform_resend_request`` (0x8003),
  ``terminal_resend_request`` (0x0005), ``set_params`` (0x8103), ``query_all_params``
  (0x8104), ``query_params`` (0x8106), ``query_params_response`` (0x0104),
  ``terminal_control`` (0x8105), ``text_message`` (0x8300); ``decode_additional_items`` /
  ``encode_additional_items``; ``BODY_CODECS`` maps message id -> (decoder, encoder);
* values: ``make_device_time``, ``make_server_time``, ``make_can_time``.

Error offsets: escaping and flag errors count in the raw frame; header and body errors count
in the unescaped frame (first header byte = 1, so they match the raw frame when nothing was
escaped). Per-body decoders count from the start of their body.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Iterator
from functools import reduce
from operator import xor
from typing import Any, Final

from gateway.codecs.common import BadFrame, DeviceTime, gmt8_to_utc, utc_to_gmt8_fields
from gateway.codecs.errors import ProtocolError, Reason
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

DEFAULT_MAX_FRAME: Final = c.DEFAULT_MAX_FRAME
_FLAG_BYTE: Final = b"\x7e"
_MIN_FRAME: Final = 2 + c.HEADER_SIZE_2013 + 1  # flags + shortest header + checksum

# ============================================================================ byte helpers


class _Reader:
    """Bounds-checked big-endian reads over ``data``; offsets reported as ``base + pos``."""

    __slots__ = ("base", "data", "pos")

    def __init__(self, data: bytes, base: int = 0) -> None:
        self.data = data
        self.pos = 0
        self.base = base

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.remaining:
            raise ProtocolError(
                Reason.TRUNCATED, f"{what}: need {n} bytes, have {self.remaining}", self.offset
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "big")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "big")

    def rest(self) -> bytes:
        return self.take(self.remaining, "rest")

    def finish(self, what: str) -> None:
        if self.remaining:
            raise ProtocolError(
                Reason.TRAILING_BYTES, f"{what}: {self.remaining} bytes left over", self.offset
            )


def _text(raw: bytes, what: str, offset: int) -> str:
    """GBK text with trailing NUL padding stripped."""
    try:
        return raw.rstrip(b"\x00").decode("gbk")
    except UnicodeDecodeError as exc:
        raise ProtocolError(Reason.BAD_VALUE, f"{what}: not GBK text", offset + exc.start) from exc


def _fixed_text(raw: bytes, what: str, offset: int) -> str:
    """GBK text of a fixed-width field, trailing NUL/space padding stripped."""
    return _text(raw.rstrip(b"\x00 "), what, offset)


def _pack_text(value: str) -> bytes:
    return value.encode("gbk")


def _pack_fixed(value: str, width: int, what: str) -> bytes:
    raw = value.encode("gbk")
    if len(raw) > width:
        raise ProtocolError(Reason.BAD_LENGTH, f"{what}: {len(raw)} bytes, field holds {width}")
    return raw.ljust(width, b"\x00")


def _bcd_digits(raw: bytes) -> str | None:
    """Decimal digits of packed BCD, or None if a nibble is above 9."""
    digits = raw.hex()
    return digits if digits.isdigit() else None


def _pack_bcd(digits: str, size: int, what: str) -> bytes:
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 2 * size:
        raise ProtocolError(Reason.BAD_VALUE, f"{what}: {digits!r} is not <= {2 * size} digits")
    return bytes.fromhex(digits.rjust(2 * size, "0"))


def _u(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big")


# ================================================================================ times


def _device_time(raw: bytes) -> DeviceTime:
    """BCD YYMMDDhhmmss GMT+8 -> DeviceTime (utc None when not a calendar time)."""
    digits = _bcd_digits(raw)
    if digits is None:
        return DeviceTime(raw=raw, utc=None)
    y, mo, d, h, mi, s = (int(digits[i : i + 2]) for i in range(0, 12, 2))
    return DeviceTime(raw=raw, utc=gmt8_to_utc(2000 + y, mo, d, h, mi, s))


def _server_time(raw: bytes) -> DeviceTime:
    """0x8004 BCD time, read as UTC or GMT+8 per ``constants.SERVER_TIME_IS_UTC``."""
    if not c.SERVER_TIME_IS_UTC:
        return _device_time(raw)
    digits = _bcd_digits(raw)
    if digits is None:
        return DeviceTime(raw=raw, utc=None)
    y, mo, d, h, mi, s = (int(digits[i : i + 2]) for i in range(0, 12, 2))
    try:
        return DeviceTime(raw=raw, utc=dt.datetime(2000 + y, mo, d, h, mi, s, tzinfo=dt.UTC))
    except ValueError:
        return DeviceTime(raw=raw, utc=None)


def _bcd_time_fields(fields: tuple[int, ...]) -> bytes:
    year = fields[0]
    if not 2000 <= year <= 2099:
        raise ProtocolError(Reason.BAD_TIME, f"year {year} does not fit BCD YY")
    return bytes.fromhex("".join(f"{v % 100:02d}" for v in fields))


def make_device_time(utc: dt.datetime) -> DeviceTime:
    """DeviceTime for a UTC instant, as a terminal would send it (GMT+8 BCD, whole seconds)."""
    raw = _bcd_time_fields(utc_to_gmt8_fields(utc))
    return _device_time(raw)


def make_server_time(utc: dt.datetime) -> DeviceTime:
    """DeviceTime for the 0x8004 body, honouring ``constants.SERVER_TIME_IS_UTC``."""
    if not c.SERVER_TIME_IS_UTC:
        return make_device_time(utc)
    t = utc.astimezone(dt.UTC)
    raw = _bcd_time_fields((t.year, t.month, t.day, t.hour, t.minute, t.second))
    return _server_time(raw)


def _pack_time(value: DeviceTime, make: Callable[[dt.datetime], DeviceTime]) -> bytes:
    """The raw BCD if it is 6 bytes, else the BCD of ``utc``."""
    if len(value.raw) == 6:
        return value.raw
    if value.utc is None:
        raise ProtocolError(Reason.BAD_TIME, "DeviceTime has neither 6 raw bytes nor utc")
    return make(value.utc).raw


def _can_time(raw: bytes) -> CanReceiveTime:
    digits = _bcd_digits(raw)
    value: dt.time | None = None
    if digits is not None:
        h, mi, s, ms = int(digits[0:2]), int(digits[2:4]), int(digits[4:6]), int(digits[6:10])
        if h < 24 and mi < 60 and s < 60 and ms < 1000:
            value = dt.time(h, mi, s, ms * 1000)
    return CanReceiveTime(raw=raw, time=value)


def make_can_time(t: dt.time) -> CanReceiveTime:
    """CanReceiveTime for a time of day (millisecond precision)."""
    digits = f"{t.hour:02d}{t.minute:02d}{t.second:02d}{t.microsecond // 1000:04d}"
    return _can_time(bytes.fromhex(digits))


# ========================================================================== simple bodies


def _general(body: bytes) -> tuple[int, int, int]:
    r = _Reader(body)
    out = (r.u16("reply serial"), r.u16("reply msg id"), r.u8("result"))
    r.finish("general response")
    return out


def decode_terminal_general_response(body: bytes, version: int) -> TerminalGeneralResponse:
    serial, msg_id, result = _general(body)
    return TerminalGeneralResponse(reply_serial=serial, reply_msg_id=msg_id, result=result)


def encode_terminal_general_response(msg: TerminalGeneralResponse, version: int) -> bytes:
    return struct.pack(">HHB", msg.reply_serial, msg.reply_msg_id, msg.result)


def decode_platform_general_response(body: bytes, version: int) -> PlatformGeneralResponse:
    serial, msg_id, result = _general(body)
    return PlatformGeneralResponse(reply_serial=serial, reply_msg_id=msg_id, result=result)


def encode_platform_general_response(msg: PlatformGeneralResponse, version: int) -> bytes:
    return struct.pack(">HHB", msg.reply_serial, msg.reply_msg_id, msg.result)


def _empty(body: bytes, what: str) -> None:
    _Reader(body).finish(what)


def decode_heartbeat(body: bytes, version: int) -> Heartbeat:
    _empty(body, "heartbeat")
    return Heartbeat()


def encode_heartbeat(msg: Heartbeat, version: int) -> bytes:
    return b""


def decode_logout(body: bytes, version: int) -> Logout:
    _empty(body, "logout")
    return Logout()


def encode_logout(msg: Logout, version: int) -> bytes:
    return b""


def decode_query_server_time(body: bytes, version: int) -> QueryServerTime:
    _empty(body, "query server time")
    return QueryServerTime()


def encode_query_server_time(msg: QueryServerTime, version: int) -> bytes:
    return b""


def decode_server_time(body: bytes, version: int) -> ServerTime:
    r = _Reader(body)
    time = _server_time(r.take(6, "server time"))
    r.finish("server time")
    return ServerTime(time=time)


def encode_server_time(msg: ServerTime, version: int) -> bytes:
    return _pack_time(msg.time, make_server_time)


# ======================================================================= register / auth

#: (maker, model, terminal id) widths per version.
_REGISTER_WIDTHS: Final[dict[int, tuple[int, int, int]]] = {2013: (5, 20, 7), 2019: (11, 30, 30)}


def _register_widths(version: int) -> tuple[int, int, int]:
    return _REGISTER_WIDTHS[2019 if version >= 2019 else 2013]


def decode_register(body: bytes, version: int) -> Register:
    r = _Reader(body)
    province, city = r.u16("province"), r.u16("city")
    fields: list[str] = []
    for width, what in zip(
        _register_widths(version), ("maker", "model", "terminal id"), strict=True
    ):
        start = r.offset
        fields.append(_fixed_text(r.take(width, what), what, start))
    color = r.u8("plate colour")
    start = r.offset
    plate = _text(r.rest(), "plate", start)
    maker, model, terminal_id = fields
    return Register(
        province=province,
        city=city,
        maker=maker,
        model=model,
        terminal_id=terminal_id,
        plate_color=color,
        plate=plate,
    )


def encode_register(msg: Register, version: int) -> bytes:
    w_maker, w_model, w_id = _register_widths(version)
    return b"".join(
        (
            struct.pack(">HH", msg.province, msg.city),
            _pack_fixed(msg.maker, w_maker, "maker"),
            _pack_fixed(msg.model, w_model, "model"),
            _pack_fixed(msg.terminal_id, w_id, "terminal id"),
            _u(msg.plate_color, 1),
            _pack_text(msg.plate),
        )
    )


def decode_register_response(body: bytes, version: int) -> RegisterResponse:
    r = _Reader(body)
    serial, result = r.u16("reply serial"), r.u8("result")
    start = r.offset
    rest = r.rest()
    if result == c.REGISTER_OK:
        code: str | None = _text(rest, "auth code", start)
    else:  # a refusal carries no code; padding a platform appended anyway reads as none
        code = (_text(rest, "auth code", start) or None) if rest else None
    return RegisterResponse(reply_serial=serial, result=result, auth_code=code)


def encode_register_response(msg: RegisterResponse, version: int) -> bytes:
    # The auth code follows a successful registration; bytes a platform appended to a refusal
    # were decoded into auth_code too and are written back, so decoding is reversible.
    code = _pack_text(msg.auth_code) if msg.auth_code is not None else b""
    return struct.pack(">HB", msg.reply_serial, msg.result) + code


_IMEI_SIZE: Final = 15
_SOFTWARE_VERSION_SIZE: Final = 20


def decode_authenticate(body: bytes, version: int) -> Authenticate:
    if version < 2019:
        return Authenticate(auth_code=_text(body, "auth code", 0))
    r = _Reader(body)
    size = r.u8("auth code length")
    code = _text(r.take(size, "auth code"), "auth code", 1)
    start = r.offset
    imei = _fixed_text(r.take(_IMEI_SIZE, "imei"), "imei", start)
    start = r.offset
    software = _fixed_text(r.take(_SOFTWARE_VERSION_SIZE, "software"), "software", start)
    r.finish("authenticate")
    return Authenticate(auth_code=code, imei=imei, software_version=software)


def encode_authenticate(msg: Authenticate, version: int) -> bytes:
    code = _pack_text(msg.auth_code)
    if version < 2019:
        return code
    if len(code) > 0xFF:
        raise ProtocolError(Reason.BAD_LENGTH, f"auth code of {len(code)} bytes")
    return b"".join(
        (
            _u(len(code), 1),
            code,
            _pack_fixed(msg.imei or "", _IMEI_SIZE, "imei"),
            _pack_fixed(msg.software_version or "", _SOFTWARE_VERSION_SIZE, "software version"),
        )
    )


# ==================================================================== additional items


def _decode_item(item_id: int, value: bytes) -> AdditionalItem:
    """One typed additional item, or RawItem for vendor/unknown ids and unexpected lengths."""
    # 2019-only ids (0x05, 0x06) are decoded in 2013 frames too: they are unused there.
    allowed = c.ITEM_LENGTHS.get(item_id)
    if allowed is not None and len(value) not in allowed:
        return RawItem(item_id=item_id, data=value)
    n = int.from_bytes(value, "big")
    match item_id:
        case c.ITEM_ODOMETER:
            return Odometer(km=n / 10)
        case c.ITEM_FUEL:
            return FuelLevel(litres=n / 10)
        case c.ITEM_TACHOGRAPH_SPEED:
            return TachographSpeed(kmh=n / 10)
        case c.ITEM_ALARM_EVENT_ID:
            return AlarmEventId(event_id=n)
        case c.ITEM_TYRE_PRESSURE:
            return TyrePressure(
                pressures=tuple(None if b == c.TYRE_PRESSURE_INVALID else b for b in value)
            )
        case c.ITEM_CABIN_TEMPERATURE:
            return CabinTemperature(celsius=int.from_bytes(value, "big", signed=True))
        case c.ITEM_OVERSPEED:
            area = int.from_bytes(value[1:], "big") if len(value) == 5 else None
            return OverspeedAlarm(location_type=value[0], area_id=area)
        case c.ITEM_AREA_ALARM:
            kind, area, direction = struct.unpack(">BIB", value)
            return AreaAlarm(location_type=kind, area_id=area, direction=direction)
        case c.ITEM_ROUTE_TIME:
            section, seconds, result = struct.unpack(">IHB", value)
            return RouteTimeAlarm(section_id=section, drive_time_s=seconds, result=result)
        case c.ITEM_EXTENDED_SIGNALS:
            return ExtendedSignals(flags=n)
        case c.ITEM_IO_STATUS:
            return IoStatus(flags=n)
        case c.ITEM_ANALOG:
            return AnalogValues(ad0=n & 0xFFFF, ad1=n >> 16)
        case c.ITEM_SIGNAL_STRENGTH:
            return SignalStrength(value=n)
        case c.ITEM_SATELLITES:
            return SatelliteCount(count=n)
        case c.ITEM_CUSTOM_LENGTH:
            return CustomItemsLength(value=n, size=len(value))
    return RawItem(item_id=item_id, data=value)


def _encode_item(item: AdditionalItem) -> tuple[int, bytes]:
    """(item id, value bytes) of one additional item."""
    match item:
        case Odometer(km=km):
            return c.ITEM_ODOMETER, _u(round(km * 10), 4)
        case FuelLevel(litres=litres):
            return c.ITEM_FUEL, _u(round(litres * 10), 2)
        case TachographSpeed(kmh=kmh):
            return c.ITEM_TACHOGRAPH_SPEED, _u(round(kmh * 10), 2)
        case AlarmEventId(event_id=event_id):
            return c.ITEM_ALARM_EVENT_ID, _u(event_id, 2)
        case TyrePressure(pressures=pressures):
            values = (c.TYRE_PRESSURE_INVALID if p is None else p for p in pressures)
            return c.ITEM_TYRE_PRESSURE, bytes(values)
        case CabinTemperature(celsius=celsius):
            return c.ITEM_CABIN_TEMPERATURE, celsius.to_bytes(2, "big", signed=True)
        case OverspeedAlarm(location_type=kind, area_id=area):
            extra = b"" if area is None else _u(area, 4)
            return c.ITEM_OVERSPEED, _u(kind, 1) + extra
        case AreaAlarm(location_type=kind, area_id=area, direction=direction):
            return c.ITEM_AREA_ALARM, struct.pack(">BIB", kind, area, direction)
        case RouteTimeAlarm(section_id=section, drive_time_s=seconds, result=result):
            return c.ITEM_ROUTE_TIME, struct.pack(">IHB", section, seconds, result)
        case ExtendedSignals(flags=flags):
            return c.ITEM_EXTENDED_SIGNALS, _u(flags, 4)
        case IoStatus(flags=flags):
            return c.ITEM_IO_STATUS, _u(flags, 2)
        case AnalogValues(ad0=ad0, ad1=ad1):
            return c.ITEM_ANALOG, _u(ad1 << 16 | ad0, 4)
        case SignalStrength(value=value):
            return c.ITEM_SIGNAL_STRENGTH, _u(value, 1)
        case SatelliteCount(count=count):
            return c.ITEM_SATELLITES, _u(count, 1)
        case CustomItemsLength(value=value, size=size):
            return c.ITEM_CUSTOM_LENGTH, _u(value, size)
        case RawItem(item_id=item_id, data=data):
            return item_id, data
    raise TypeError(f"not an additional item: {item!r}")


def decode_additional_items(data: bytes, version: int, base: int = 0) -> tuple[AdditionalItem, ...]:
    """Items of (id BYTE, length BYTE, value) in wire order; an item past the end: TRUNCATED."""
    r = _Reader(data, base)
    items: list[AdditionalItem] = []
    while r.remaining:
        item_id = r.u8("item id")
        size = r.u8(f"length of item 0x{item_id:02X}")
        items.append(_decode_item(item_id, r.take(size, f"item 0x{item_id:02X}")))
    return tuple(items)


def encode_additional_items(items: tuple[AdditionalItem, ...], version: int) -> bytes:
    out = bytearray()
    for item in items:
        item_id, value = _encode_item(item)
        if len(value) > 0xFF:
            raise ProtocolError(Reason.BAD_LENGTH, f"item 0x{item_id:02X} of {len(value)} bytes")
        out += bytes((item_id, len(value)))
        out += value
    return bytes(out)


# ============================================================================== location

_BASIC: Final = struct.Struct(">IIIIHHH")


def decode_location(body: bytes, version: int, base: int = 0) -> Location:
    r = _Reader(body, base)
    alarm, status, lat, lon, altitude, speed, direction = _BASIC.unpack(
        r.take(_BASIC.size, "location basic block")
    )
    time = _device_time(r.take(6, "location time"))
    start = r.offset
    items = decode_additional_items(r.rest(), version, start)
    return Location(
        alarm_flags=alarm,
        status_flags=status,
        latitude=-lat / 1e6 if status & c.STATUS_SOUTH else lat / 1e6,
        longitude=-lon / 1e6 if status & c.STATUS_WEST else lon / 1e6,
        altitude_m=altitude,
        speed_kmh=speed / 10,
        direction=direction,
        time=time,
        items=items,
    )


def encode_location(msg: Location, version: int) -> bytes:
    basic = _BASIC.pack(
        msg.alarm_flags,
        msg.status_flags,
        round(abs(msg.latitude) * 1e6),
        round(abs(msg.longitude) * 1e6),
        msg.altitude_m,
        round(msg.speed_kmh * 10),
        msg.direction,
    )
    time = _pack_time(msg.time, make_device_time)
    return basic + time + encode_additional_items(msg.items, version)


def decode_batch_location(body: bytes, version: int) -> BatchLocation:
    r = _Reader(body)
    count, batch_type = r.u16("batch count"), r.u8("batch type")
    items: list[Location] = []
    for i in range(count):
        size = r.u16(f"length of batch item {i}")
        start = r.offset
        items.append(decode_location(r.take(size, f"batch item {i}"), version, start))
    r.finish("batch location")
    return BatchLocation(batch_type=batch_type, items=tuple(items))


def encode_batch_location(msg: BatchLocation, version: int) -> bytes:
    out = bytearray(struct.pack(">HB", len(msg.items), msg.batch_type))
    for item in msg.items:
        data = encode_location(item, version)
        out += _u(len(data), 2)
        out += data
    return bytes(out)


# =================================================================================== CAN


def _can_item(raw: bytes) -> CanItem:
    ident = int.from_bytes(raw[:4], "big")
    return CanItem(
        channel=ident >> c.CAN_CHANNEL_BIT & 1,
        frame_type=ident >> c.CAN_FRAME_TYPE_BIT & 1,
        collection_method=ident >> c.CAN_COLLECTION_BIT & 1,
        can_id=ident & c.CAN_ID_MASK,
        data=raw[4:],
    )


def decode_can_bus_data(body: bytes, version: int) -> CanBusData:
    r = _Reader(body)
    count = r.u16("CAN item count")
    receive_time = _can_time(r.take(5, "CAN receive time"))
    items = tuple(_can_item(r.take(4 + c.CAN_DATA_SIZE, f"CAN item {i}")) for i in range(count))
    r.finish("CAN bus data")
    return CanBusData(receive_time=receive_time, items=items)


def _pack_can_item(item: CanItem) -> bytes:
    if item.can_id > c.CAN_ID_MASK or len(item.data) != c.CAN_DATA_SIZE:
        raise ProtocolError(Reason.BAD_VALUE, "CAN id over 29 bits or data not 8 bytes")
    ident = (
        (item.channel & 1) << c.CAN_CHANNEL_BIT
        | (item.frame_type & 1) << c.CAN_FRAME_TYPE_BIT
        | (item.collection_method & 1) << c.CAN_COLLECTION_BIT
        | item.can_id
    )
    return _u(ident, 4) + item.data


def encode_can_bus_data(msg: CanBusData, version: int) -> bytes:
    raw_time = msg.receive_time.raw
    if len(raw_time) != 5:
        if msg.receive_time.time is None:
            raise ProtocolError(Reason.BAD_TIME, "CAN receive time has no value")
        raw_time = make_can_time(msg.receive_time.time).raw
    items = b"".join(_pack_can_item(item) for item in msg.items)
    return _u(len(msg.items), 2) + raw_time + items


# ======================================================================= transparent


def decode_transparent_uplink(body: bytes, version: int) -> TransparentUplink:
    r = _Reader(body)
    return TransparentUplink(kind=r.u8("transparent type"), content=r.rest())


def encode_transparent_uplink(msg: TransparentUplink, version: int) -> bytes:
    return _u(msg.kind, 1) + msg.content


def decode_transparent_downlink(body: bytes, version: int) -> TransparentDownlink:
    r = _Reader(body)
    return TransparentDownlink(kind=r.u8("transparent type"), content=r.rest())


def encode_transparent_downlink(msg: TransparentDownlink, version: int) -> bytes:
    return _u(msg.kind, 1) + msg.content


# ==================================================================== resend requests


def _resend(body: bytes, version: int) -> tuple[int, tuple[int, ...]]:
    r = _Reader(body)
    serial = r.u16("original serial")
    count = r.u16("packet count") if version >= 2019 else r.u8("packet count")
    ids = tuple(r.u16(f"packet id {i}") for i in range(count))
    r.finish("resend request")
    return serial, ids


def _pack_resend(serial: int, ids: tuple[int, ...], version: int) -> bytes:
    count = _u(len(ids), 2 if version >= 2019 else 1)
    return _u(serial, 2) + count + b"".join(_u(i, 2) for i in ids)


def decode_platform_resend_request(body: bytes, version: int) -> PlatformResendRequest:
    serial, ids = _resend(body, version)
    return PlatformResendRequest(original_serial=serial, packet_ids=ids)


def encode_platform_resend_request(msg: PlatformResendRequest, version: int) -> bytes:
    return _pack_resend(msg.original_serial, msg.packet_ids, version)


def decode_terminal_resend_request(body: bytes, version: int) -> TerminalResendRequest:
    serial, ids = _resend(body, version)
    return TerminalResendRequest(original_serial=serial, packet_ids=ids)


def encode_terminal_resend_request(msg: TerminalResendRequest, version: int) -> bytes:
    return _pack_resend(msg.original_serial, msg.packet_ids, version)


# ===================================================================== platform commands


def _decode_params(r: _Reader, count: int) -> tuple[TerminalParam, ...]:
    """``count`` items of (id DWORD, length BYTE, value)."""
    params: list[TerminalParam] = []
    for i in range(count):
        param_id = r.u32(f"id of parameter {i}")
        what = f"parameter 0x{param_id:04X}"
        size = r.u8(f"length of {what}")
        params.append(TerminalParam(param_id=param_id, data=r.take(size, what)))
    return tuple(params)


def _pack_count(n: int, what: str) -> bytes:
    if n > 0xFF:
        raise ProtocolError(Reason.BAD_LENGTH, f"{n} {what} (a BYTE count holds 255)")
    return _u(n, 1)


def _pack_params(params: tuple[TerminalParam, ...]) -> bytes:
    out = bytearray(_pack_count(len(params), "parameters"))
    for p in params:
        if len(p.data) > 0xFF:
            raise ProtocolError(
                Reason.BAD_LENGTH, f"parameter 0x{p.param_id:04X} of {len(p.data)} bytes"
            )
        out += _u(p.param_id, 4)
        out += _u(len(p.data), 1)
        out += p.data
    return bytes(out)


def decode_set_params(body: bytes, version: int) -> SetParams:
    r = _Reader(body)
    params = _decode_params(r, r.u8("parameter count"))
    r.finish("set params")
    return SetParams(params=params)


def encode_set_params(msg: SetParams, version: int) -> bytes:
    return _pack_params(msg.params)


def decode_query_all_params(body: bytes, version: int) -> QueryAllParams:
    _empty(body, "query all params")
    return QueryAllParams()


def encode_query_all_params(msg: QueryAllParams, version: int) -> bytes:
    return b""


def decode_query_params(body: bytes, version: int) -> QueryParams:
    r = _Reader(body)
    count = r.u8("parameter count")
    ids = tuple(r.u32(f"parameter id {i}") for i in range(count))
    r.finish("query params")
    return QueryParams(param_ids=ids)


def encode_query_params(msg: QueryParams, version: int) -> bytes:
    count = _pack_count(len(msg.param_ids), "parameter ids")
    return count + b"".join(_u(i, 4) for i in msg.param_ids)


def decode_query_params_response(body: bytes, version: int) -> QueryParamsResponse:
    r = _Reader(body)
    serial = r.u16("reply serial")
    params = _decode_params(r, r.u8("parameter count"))
    r.finish("query params response")
    return QueryParamsResponse(reply_serial=serial, params=params)


def encode_query_params_response(msg: QueryParamsResponse, version: int) -> bytes:
    return _u(msg.reply_serial, 2) + _pack_params(msg.params)


def decode_terminal_control(body: bytes, version: int) -> TerminalControl:
    r = _Reader(body)
    command = r.u8("command word")
    start = r.offset
    text = _text(r.rest(), "control parameters", start)
    params = tuple(text.split(c.CONTROL_PARAM_SEPARATOR)) if text else ()
    return TerminalControl(command=command, params=params)


def encode_terminal_control(msg: TerminalControl, version: int) -> bytes:
    # A ';' inside a parameter would split it on decode; ("",) writes what () writes.
    for p in msg.params:
        if c.CONTROL_PARAM_SEPARATOR in p:
            raise ProtocolError(Reason.BAD_VALUE, f"control parameter {p!r} contains ';'")
    return _u(msg.command, 1) + _pack_text(c.CONTROL_PARAM_SEPARATOR.join(msg.params))


def decode_text_message(body: bytes, version: int) -> TextMessage:
    r = _Reader(body)
    flags = r.u8("text flags")
    text_type = r.u8("text type") if version >= 2019 else None
    start = r.offset
    return TextMessage(flags=flags, text=_text(r.rest(), "text", start), text_type=text_type)


def encode_text_message(msg: TextMessage, version: int) -> bytes:
    out = _u(msg.flags, 1)
    if version >= 2019:  # 2019 has a text type BYTE (notice when unset); 2013 has none
        out += _u(c.TEXT_TYPE_NOTICE if msg.text_type is None else msg.text_type, 1)
    return out + _pack_text(msg.text)


# ========================================================================= body dispatch

BodyDecoder = Callable[[bytes, int], Body]
BodyEncoder = Callable[[Any, int], bytes]

#: Message id -> (decode_<name>, encode_<name>).
BODY_CODECS: Final[dict[int, tuple[BodyDecoder, BodyEncoder]]] = {
    c.TERMINAL_GENERAL_RESPONSE: (
        decode_terminal_general_response,
        encode_terminal_general_response,
    ),
    c.PLATFORM_GENERAL_RESPONSE: (
        decode_platform_general_response,
        encode_platform_general_response,
    ),
    c.HEARTBEAT: (decode_heartbeat, encode_heartbeat),
    c.LOGOUT: (decode_logout, encode_logout),
    c.QUERY_SERVER_TIME: (decode_query_server_time, encode_query_server_time),
    c.SERVER_TIME: (decode_server_time, encode_server_time),
    c.REGISTER: (decode_register, encode_register),
    c.REGISTER_RESPONSE: (decode_register_response, encode_register_response),
    c.AUTHENTICATE: (decode_authenticate, encode_authenticate),
    c.LOCATION: (decode_location, encode_location),
    c.BATCH_LOCATION: (decode_batch_location, encode_batch_location),
    c.CAN_BUS_DATA: (decode_can_bus_data, encode_can_bus_data),
    c.TRANSPARENT_UPLINK: (decode_transparent_uplink, encode_transparent_uplink),
    c.TRANSPARENT_DOWNLINK: (decode_transparent_downlink, encode_transparent_downlink),
    c.PLATFORM_RESEND_REQUEST: (decode_platform_resend_request, encode_platform_resend_request),
    c.TERMINAL_RESEND_REQUEST: (decode_terminal_resend_request, encode_terminal_resend_request),
    c.SET_PARAMS: (decode_set_params, encode_set_params),
    c.QUERY_ALL_PARAMS: (decode_query_all_params, encode_query_all_params),
    c.QUERY_PARAMS: (decode_query_params, encode_query_params),
    c.QUERY_PARAMS_RESPONSE: (decode_query_params_response, encode_query_params_response),
    c.TERMINAL_CONTROL: (decode_terminal_control, encode_terminal_control),
    c.TEXT_MESSAGE: (decode_text_message, encode_text_message),
}


def decode_body(msg_id: int, body: bytes, version: int) -> Body:
    """The typed body of ``msg_id``, or RawBody for ids this codec does not decode."""
    codec = BODY_CODECS.get(msg_id)
    return RawBody(data=body) if codec is None else codec[0](body, version)


def encode_body(msg_id: int, body: Body, version: int) -> bytes:
    """Body bytes; ``body`` must be RawBody or the Struct type of ``msg_id``."""
    if isinstance(body, RawBody):
        return body.data
    if BODY_TYPES.get(msg_id) is not type(body):
        raise ProtocolError(
            Reason.BAD_VALUE, f"{type(body).__name__} is not the body of 0x{msg_id:04X}"
        )
    return BODY_CODECS[msg_id][1](body, version)


# ============================================================================== framing


def checksum(data: bytes) -> int:
    """XOR of every byte (computed over the unescaped header and body)."""
    return reduce(xor, data, 0)


def escape(data: bytes) -> bytes:
    """0x7D -> 7D 01, then 0x7E -> 7D 02."""
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def unescape(data: bytes, offset: int = 0) -> bytes:
    """Reverse :func:`escape`; a 0x7D not followed by 01/02 is BAD_ESCAPE (offset + index)."""
    if data.count(b"\x7d") != data.count(b"\x7d\x01") + data.count(b"\x7d\x02"):
        i = data.find(b"\x7d")
        while i != -1 and data[i + 1 : i + 2] in (b"\x01", b"\x02"):
            i = data.find(b"\x7d", i + 2)
        raise ProtocolError(Reason.BAD_ESCAPE, "0x7D not followed by 01 or 02", offset + i, data)
    return data.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")


class _Header:
    """Header fields parsed from the unescaped data; ``body`` is what follows the header."""

    __slots__ = (
        "body",
        "body_offset",
        "encryption",
        "msg_id",
        "packet_index",
        "packet_total",
        "phone",
        "protocol_version",
        "reserved",
        "serial",
        "version",
    )

    def __init__(self, payload: bytes) -> None:
        r = _Reader(payload, base=1)
        self.msg_id = r.u16("message id")
        attrs = r.u16("body attributes")
        self.version = 2019 if attrs & c.ATTR_VERSION_2019 else 2013
        self.protocol_version = r.u8("protocol version") if self.version == 2019 else None
        start = r.offset
        size = c.PHONE_DIGITS[self.version] // 2
        phone = _bcd_digits(r.take(size, "phone"))
        if phone is None:
            raise ProtocolError(Reason.BAD_VALUE, "phone is not BCD", start)
        self.phone = phone
        self.serial = r.u16("serial")
        self.packet_total: int | None = None
        self.packet_index: int | None = None
        if attrs & c.ATTR_SUBPACKAGE:
            self.packet_total = r.u16("packet total")
            self.packet_index = r.u16("packet index")
        self.encryption = attrs >> c.ATTR_ENCRYPTION_SHIFT & c.ATTR_ENCRYPTION_MASK
        self.reserved = attrs >> c.ATTR_RESERVED_SHIFT
        self.body_offset = r.offset
        self.body = r.rest()
        length = attrs & c.ATTR_LENGTH_MASK
        if len(self.body) != length:
            raise ProtocolError(
                Reason.BAD_LENGTH,
                f"attributes say body length {length}, frame has {len(self.body)}",
                self.body_offset,
            )


def _unwrap(frame: bytes) -> bytes:
    """Check flags, unescape, verify the checksum; return the unescaped header + body."""
    if len(frame) < 3:
        raise ProtocolError(Reason.TRUNCATED, f"{len(frame)} bytes is not a frame", 0, frame)
    if frame[0] != c.FLAG or frame[-1] != c.FLAG:
        raise ProtocolError(Reason.BAD_START, "frame is not enclosed in 0x7E", 0, frame)
    inner = frame[1:-1]
    if _FLAG_BYTE in inner:
        raise ProtocolError(Reason.BAD_START, "0x7E inside a frame", 1 + inner.index(0x7E), frame)
    data = unescape(inner, 1)
    payload, received = data[:-1], data[-1]
    computed = checksum(payload)
    if computed != received:
        raise ProtocolError(
            Reason.BAD_CHECKSUM,
            f"checksum 0x{received:02X}, computed 0x{computed:02X}",
            len(frame) - 2,
            frame,
        )
    return payload


def _parse(frame: bytes) -> _Header:
    """Everything but the body: flags, escaping, checksum, header and body length."""
    payload = _unwrap(frame)
    try:
        return _Header(payload)
    except ProtocolError as exc:
        raise ProtocolError(exc.reason, exc.message, exc.offset, frame) from None


def _decodes_body(h: _Header) -> bool:
    """False for encrypted bodies and packets of a multi-packet set (kept raw)."""
    partial = h.packet_total is not None and (h.packet_total, h.packet_index) != (1, 1)
    return h.encryption == 0 and not partial


def decode_frame(frame: bytes) -> Frame:
    """Decode one whole raw frame (0x7E ... 0x7E, escaped); verifies everything."""
    h = _parse(bytes(frame))
    body: Body = RawBody(data=h.body)
    if _decodes_body(h):
        try:
            body = decode_body(h.msg_id, h.body, h.version)
        except ProtocolError as exc:
            raise ProtocolError(
                exc.reason, exc.message, exc.offset + h.body_offset, bytes(frame)
            ) from None
    return Frame(
        version=h.version,
        msg_id=h.msg_id,
        phone=h.phone,
        serial=h.serial,
        body=body,
        protocol_version=h.protocol_version,
        encryption=h.encryption,
        packet_total=h.packet_total,
        packet_index=h.packet_index,
        reserved=h.reserved,
    )


def _pack_header(msg: Frame, body_length: int) -> bytes:
    if body_length > c.MAX_BODY:
        raise ProtocolError(Reason.BAD_LENGTH, f"body of {body_length} bytes (max 1023)")
    v2019 = msg.version >= 2019
    subpackaged = msg.packet_total is not None
    attrs = (
        body_length
        | (msg.encryption & c.ATTR_ENCRYPTION_MASK) << c.ATTR_ENCRYPTION_SHIFT
        | (c.ATTR_SUBPACKAGE if subpackaged else 0)
        | (c.ATTR_VERSION_2019 if v2019 else 0)
        | (msg.reserved & 1) << c.ATTR_RESERVED_SHIFT
    )
    parts = [_u(msg.msg_id, 2), _u(attrs, 2)]
    if v2019:
        parts.append(_u(1 if msg.protocol_version is None else msg.protocol_version, 1))
    parts.append(_pack_bcd(msg.phone, c.PHONE_DIGITS[2019 if v2019 else 2013] // 2, "phone"))
    parts.append(_u(msg.serial, 2))
    if subpackaged:
        parts.append(struct.pack(">HH", msg.packet_total, msg.packet_index or 0))
    return b"".join(parts)


def encode_frame(msg: Frame) -> bytes:
    """Encode a Frame: body, header with the body length, checksum, escaping and flags."""
    try:
        body = encode_body(msg.msg_id, msg.body, msg.version)
        payload = _pack_header(msg, len(body)) + body
    except ProtocolError:
        raise
    except (struct.error, OverflowError, UnicodeEncodeError, ValueError) as exc:
        raise ProtocolError(Reason.BAD_VALUE, f"cannot encode: {exc}") from exc
    return _FLAG_BYTE + escape(payload + bytes((checksum(payload),))) + _FLAG_BYTE


# ========================================================================== stream reader

_SEEK: Final = 0  # before the first flag: bytes are garbage
_FRAME: Final = 1  # buffer starts with a flag
_SKIP: Final = 2  # inside an over-size frame: drop until the next flag


class FrameReader:
    """Split a byte stream into raw JT/T 808 frames (0x7E ... 0x7E, still escaped).

    0x7E is a delimiter: the bytes between two flags are a frame if they check out. A flag that
    closed a frame may also open the next (shared flags); ``7E 7E`` is an empty frame, ignored.
    Bytes between a closing flag and the next flag that do not form a frame are reported as
    garbage (without the flags, which belong to the frames around them).
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame_size < _MIN_FRAME:
            raise ValueError(f"max_frame_size must be at least {_MIN_FRAME}")
        self._max = max_frame_size
        self._buf = bytearray()
        self._scan = 0  # bytes of _buf already searched for a flag
        self._state = _SEEK
        self._shared = False  # the flag at _buf[0] also closed the previous segment

    @property
    def buffered(self) -> int:
        """Bytes held, waiting for more data."""
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def __iter__(self) -> Iterator[bytes | BadFrame]:
        while (event := self.next_event()) is not None:
            yield event

    def next_event(self) -> bytes | BadFrame | None:
        """The next frame or BadFrame, or None when more data is needed."""
        while True:
            event = self._next_in_frame() if self._state == _FRAME else self._next_outside()
            if event is not _AGAIN:
                return event  # type: ignore[return-value]

    def _cut(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self._scan = max(0, self._scan - n)
        return out

    def _find_flag(self, start: int) -> int:
        i = self._buf.find(c.FLAG, max(start, self._scan))
        self._scan = len(self._buf) if i == -1 else i
        return i

    def _next_outside(self) -> bytes | BadFrame | object | None:
        """SEEK / SKIP: report bytes up to the next flag (garbage or too_large tail)."""
        reason = Reason.GARBAGE if self._state == _SEEK else Reason.TOO_LARGE
        i = self._find_flag(0)
        if i == -1:
            if len(self._buf) < self._max:
                return None
            return BadFrame(self._cut(len(self._buf)), reason.value, 0, "no 0x7E flag")
        self._shared = self._state == _SKIP
        self._state = _FRAME
        if i == 0:
            return _AGAIN
        return BadFrame(self._cut(i), reason.value, 0, "bytes outside a frame")

    def _next_in_frame(self) -> bytes | BadFrame | object | None:
        """_buf[0] is a flag: find the closing flag and check the segment."""
        j = self._find_flag(1)
        if j == -1 or j + 1 > self._max:
            if j == -1 and len(self._buf) < self._max:
                return None
            self._state = _SKIP
            raw = self._cut(min(len(self._buf), self._max))
            return BadFrame(raw, Reason.TOO_LARGE.value, 0, f"frame over {self._max} bytes")
        if j == 1:  # 7E 7E: the second flag opens the next frame
            self._cut(1)
            self._shared = False
            return _AGAIN
        candidate = bytes(self._buf[: j + 1])
        shared, self._shared = self._shared, True
        self._cut(j)  # the closing flag may open the next frame
        error = _check(candidate)
        if error is None:
            return candidate
        if shared:
            return BadFrame(candidate[1:-1], Reason.GARBAGE.value, 0, error.message)
        return BadFrame(candidate, error.reason.value, error.offset, error.message)


_AGAIN: Final = object()


def _check(frame: bytes) -> ProtocolError | None:
    """Why ``frame`` is not a good frame (length, escaping, checksum, header), or None."""
    if len(frame) < _MIN_FRAME:
        return ProtocolError(Reason.TRUNCATED, f"{len(frame)} bytes is too short", 0, frame)
    try:
        _parse(frame)
    except ProtocolError as exc:
        return exc
    return None
