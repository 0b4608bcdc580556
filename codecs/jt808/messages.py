"""JT/T 808 (2013 and 2019) messages as msgspec Structs, shared by both implementations.

A :class:`Frame` carries the header fields and a typed ``body``: one Struct per message id
(see ``BODY_TYPES``), or :class:`RawBody` for encrypted, unknown or partial (subpackaged) bodies.
Values are in human units; the wire-level details needed for an exact re-encode (item order,
raw additional items, raw BCD times) are kept.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, TypeAlias

import msgspec

from gateway.codecs.common import DeviceTime

__all__ = [
    "BODY_TYPES",
    "AdditionalItem",
    "AlarmEventId",
    "AnalogValues",
    "AreaAlarm",
    "Authenticate",
    "BatchLocation",
    "Body",
    "CabinTemperature",
    "CanBusData",
    "CanItem",
    "CanReceiveTime",
    "CustomItemsLength",
    "ExtendedSignals",
    "Frame",
    "FuelLevel",
    "Heartbeat",
    "IoStatus",
    "Location",
    "Logout",
    "Odometer",
    "OverspeedAlarm",
    "PlatformGeneralResponse",
    "PlatformResendRequest",
    "QueryAllParams",
    "QueryParams",
    "QueryParamsResponse",
    "QueryServerTime",
    "RawBody",
    "RawItem",
    "Register",
    "RegisterResponse",
    "RouteTimeAlarm",
    "SatelliteCount",
    "ServerTime",
    "SetParams",
    "SignalStrength",
    "TachographSpeed",
    "TerminalControl",
    "TerminalGeneralResponse",
    "TerminalParam",
    "TerminalResendRequest",
    "TextMessage",
    "TransparentDownlink",
    "TransparentUplink",
    "TyrePressure",
]


class _Msg(msgspec.Struct, frozen=True, gc=False, kw_only=True, tag=True):
    """Base of every body and item: frozen, no GC tracking, tagged by class name."""


# --------------------------------------------------------------------------- location items


class Odometer(_Msg, frozen=True):
    """Additional item 0x01: odometer in km (DWORD x 0.1 km)."""

    km: float


class FuelLevel(_Msg, frozen=True):
    """Additional item 0x02: fuel level in litres (WORD x 0.1 L)."""

    litres: float


class TachographSpeed(_Msg, frozen=True):
    """Additional item 0x03: speed from the tachograph in km/h (WORD x 0.1 km/h)."""

    kmh: float


class AlarmEventId(_Msg, frozen=True):
    """Additional item 0x04: id of an alarm event that needs manual confirmation (WORD)."""

    event_id: int


class TyrePressure(_Msg, frozen=True):
    """Additional item 0x05 (2019): 30 tyre pressure bytes, front to back; 0xFF -> None."""

    pressures: tuple[int | None, ...]


class CabinTemperature(_Msg, frozen=True):
    """Additional item 0x06 (2019): cabin temperature in degrees Celsius (signed WORD)."""

    celsius: int


class OverspeedAlarm(_Msg, frozen=True):
    """Additional item 0x11: location type (0 none) and, for types 1-4, the area/route id."""

    location_type: int
    area_id: int | None = None


class AreaAlarm(_Msg, frozen=True):
    """Additional item 0x12: area/route in-out alarm (type, area id, direction 0 in / 1 out)."""

    location_type: int
    area_id: int
    direction: int


class RouteTimeAlarm(_Msg, frozen=True):
    """Additional item 0x13: road-section drive time (section id, seconds, 0 short / 1 long)."""

    section_id: int
    drive_time_s: int
    result: int


class ExtendedSignals(_Msg, frozen=True):
    """Additional item 0x25: extended vehicle signal status bits (DWORD)."""

    flags: int


class IoStatus(_Msg, frozen=True):
    """Additional item 0x2A: IO status bits (WORD)."""

    flags: int


class AnalogValues(_Msg, frozen=True):
    """Additional item 0x2B: analog inputs, AD0 from bits 0-15, AD1 from bits 16-31."""

    ad0: int
    ad1: int


class SignalStrength(_Msg, frozen=True):
    """Additional item 0x30: wireless network signal strength (BYTE)."""

    value: int


class SatelliteCount(_Msg, frozen=True):
    """Additional item 0x31: GNSS satellites in use (BYTE)."""

    count: int


class CustomItemsLength(_Msg, frozen=True):
    """Additional item 0xE0: length of the custom items that follow, ``size`` bytes wide."""

    value: int
    size: int


class RawItem(_Msg, frozen=True):
    """An additional item kept as sent: vendor ids (0xE1-0xFF), unknown ids, odd lengths."""

    item_id: int
    data: bytes


AdditionalItem: TypeAlias = (
    Odometer
    | FuelLevel
    | TachographSpeed
    | AlarmEventId
    | TyrePressure
    | CabinTemperature
    | OverspeedAlarm
    | AreaAlarm
    | RouteTimeAlarm
    | ExtendedSignals
    | IoStatus
    | AnalogValues
    | SignalStrength
    | SatelliteCount
    | CustomItemsLength
    | RawItem
)


# --------------------------------------------------------------------------------- bodies


class RawBody(_Msg, frozen=True):
    """A body kept undecoded: encrypted, unknown message id, or one packet of a subpackage set."""

    data: bytes


class TerminalGeneralResponse(_Msg, frozen=True):
    """0x0001: terminal's answer to a platform message (result 0 ok, 1 fail, 2 bad, 3 unsupp.)."""

    reply_serial: int
    reply_msg_id: int
    result: int


class PlatformGeneralResponse(_Msg, frozen=True):
    """0x8001: platform's answer to a terminal message (as 0x0001, plus 4 alarm confirmed)."""

    reply_serial: int
    reply_msg_id: int
    result: int


class Heartbeat(_Msg, frozen=True):
    """0x0002: terminal heartbeat (empty body)."""


class Logout(_Msg, frozen=True):
    """0x0003: terminal logout / deregistration (empty body)."""


class QueryServerTime(_Msg, frozen=True):
    """0x0004 (2019): terminal asks for the server time (empty body)."""


class ServerTime(_Msg, frozen=True):
    """0x8004 (2019): server time, BCD[6]; the zone is ``constants.SERVER_TIME_IS_UTC``."""

    time: DeviceTime


class Register(_Msg, frozen=True):
    """0x0100: terminal registration. ``plate`` holds the VIN when ``plate_color`` is 0."""

    province: int
    city: int
    maker: str
    model: str
    terminal_id: str
    plate_color: int
    plate: str


class RegisterResponse(_Msg, frozen=True):
    """0x8100: registration result (0 ok, 1-4 refusals); ``auth_code`` only with result 0."""

    reply_serial: int
    result: int
    auth_code: str | None = None


class Authenticate(_Msg, frozen=True):
    """0x0102: authentication; ``imei`` and ``software_version`` exist in 2019 only."""

    auth_code: str
    imei: str | None = None
    software_version: str | None = None


class Location(_Msg, frozen=True):
    """0x0200: location report (also one item of 0x0704).

    Latitude/longitude in degrees, negative when status bit 2 (south) / bit 3 (west) is set;
    ``items`` are the additional items in wire order.
    """

    alarm_flags: int
    status_flags: int
    latitude: float
    longitude: float
    altitude_m: int
    speed_kmh: float
    direction: int
    time: DeviceTime
    items: tuple[AdditionalItem, ...] = ()

    @property
    def odometer_km(self) -> float | None:
        """The first 0x01 item's value, if any."""
        for item in self.items:
            if isinstance(item, Odometer):
                return item.km
        return None

    @property
    def fuel_l(self) -> float | None:
        """The first 0x02 item's value, if any."""
        for item in self.items:
            if isinstance(item, FuelLevel):
                return item.litres
        return None


class BatchLocation(_Msg, frozen=True):
    """0x0704: batch of location reports; ``batch_type`` 0 normal, 1 blind-area reissue."""

    batch_type: int
    items: tuple[Location, ...]


class CanReceiveTime(_Msg, frozen=True):
    """Receive time of the first CAN item (BCD hhmmss + ms); ``time`` None if not valid."""

    raw: bytes
    time: dt.time | None


class CanItem(_Msg, frozen=True):
    """One CAN frame: channel (0 CAN1, 1 CAN2), frame type (0 std, 1 ext), collection method
    (0 raw, 1 average), 29-bit id, 8 data bytes."""

    channel: int
    frame_type: int
    collection_method: int
    can_id: int
    data: bytes


class CanBusData(_Msg, frozen=True):
    """0x0705: CAN bus data upload."""

    receive_time: CanReceiveTime
    items: tuple[CanItem, ...]


class TransparentUplink(_Msg, frozen=True):
    """0x0900: data passed through from terminal to platform (type + content)."""

    kind: int
    content: bytes


class TransparentDownlink(_Msg, frozen=True):
    """0x8900: data passed through from platform to terminal (type + content)."""

    kind: int
    content: bytes


class PlatformResendRequest(_Msg, frozen=True):
    """0x8003: platform asks for the packets ``packet_ids`` of the set starting at the serial."""

    original_serial: int
    packet_ids: tuple[int, ...]


class TerminalResendRequest(_Msg, frozen=True):
    """0x0005 (2019): terminal asks for the packets ``packet_ids`` of a platform message."""

    original_serial: int
    packet_ids: tuple[int, ...]


class TerminalParam(_Msg, frozen=True):
    """One terminal parameter of 0x8103 / 0x0104: id DWORD and the value bytes as sent.

    ``gateway.codecs.jt808.params`` turns values into Python values and back by the id's type
    (``param_items`` / ``param_values``).
    """

    param_id: int
    data: bytes


class SetParams(_Msg, frozen=True):
    """0x8103: set terminal parameters (at most 255)."""

    params: tuple[TerminalParam, ...]


class QueryAllParams(_Msg, frozen=True):
    """0x8104: query every terminal parameter (empty body); answered by 0x0104."""


class QueryParams(_Msg, frozen=True):
    """0x8106: query the parameters ``param_ids`` (at most 255); answered by 0x0104."""

    param_ids: tuple[int, ...]


class QueryParamsResponse(_Msg, frozen=True):
    """0x0104: the terminal's parameters, answering the 0x8104 / 0x8106 of ``reply_serial``."""

    reply_serial: int
    params: tuple[TerminalParam, ...]


class TerminalControl(_Msg, frozen=True):
    """0x8105: terminal control ``command`` (``constants.CONTROL_*``) and its parameters,
    ';'-separated GBK text on the wire; ``()`` when absent."""

    command: int
    params: tuple[str, ...] = ()


class TextMessage(_Msg, frozen=True):
    """0x8300: text message. ``flags`` are ``constants.TEXT_FLAG_*`` / ``TEXT_PRIORITY_*``;
    ``text_type`` (1 notice, 2 service) exists in 2019 only (None in 2013)."""

    flags: int
    text: str
    text_type: int | None = None


Body: TypeAlias = (
    RawBody
    | TerminalGeneralResponse
    | PlatformGeneralResponse
    | Heartbeat
    | Logout
    | QueryServerTime
    | ServerTime
    | Register
    | RegisterResponse
    | Authenticate
    | Location
    | BatchLocation
    | CanBusData
    | TransparentUplink
    | TransparentDownlink
    | PlatformResendRequest
    | TerminalResendRequest
    | SetParams
    | QueryAllParams
    | QueryParams
    | QueryParamsResponse
    | TerminalControl
    | TextMessage
)

#: Message id -> body Struct type for every decoded message id.
BODY_TYPES: Final[dict[int, type[_Msg]]] = {
    0x0001: TerminalGeneralResponse,
    0x8001: PlatformGeneralResponse,
    0x0002: Heartbeat,
    0x0003: Logout,
    0x0004: QueryServerTime,
    0x8004: ServerTime,
    0x0100: Register,
    0x8100: RegisterResponse,
    0x0102: Authenticate,
    0x0200: Location,
    0x0704: BatchLocation,
    0x0705: CanBusData,
    0x0900: TransparentUplink,
    0x8900: TransparentDownlink,
    0x8003: PlatformResendRequest,
    0x0005: TerminalResendRequest,
    0x8103: SetParams,
    0x8104: QueryAllParams,
    0x8106: QueryParams,
    0x0104: QueryParamsResponse,
    0x8105: TerminalControl,
    0x8300: TextMessage,
}


class Frame(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One JT/T 808 message: header fields and the body.

    ``version`` is 2013 or 2019 (body attribute bit 14); ``protocol_version`` is the 2019 header
    byte (None in 2013); ``phone`` keeps every BCD digit (12 or 20); ``encryption`` is attribute
    bits 10-12; ``packet_total``/``packet_index`` are set only for subpackaged frames;
    ``reserved`` is attribute bit 15, kept for an exact re-encode.
    """

    version: int
    msg_id: int
    phone: str
    serial: int
    body: Body
    protocol_version: int | None = None
    encryption: int = 0
    packet_total: int | None = None
    packet_index: int | None = None
    reserved: int = 0
