"""JT/T 808 terminal parameters (0x8103 / 0x0104 items): the id -> type table and the value
helpers that turn Python values into item bytes and back.

The table follows JT/T 808-2013 table 12 plus the 2019 additions (0x0023-0x0026, 0x0032); one
table serves both versions (ids 2019 marks reserved, such as the 0x0018 / 0x0019 ports, keep
their 2013 type). Values stay in the standard's integer units (``ParamSpec.unit``, e.g. the
odometer in 0.1 km): a parameter is set in the units the terminal stores. STRING values are
GBK; a terminal's trailing NULs are stripped on decode. Ids not in the table, and values that do
not fit their type (wrong width, not GBK), stay raw bytes. Both codec implementations carry
parameter values as bytes (``TerminalParam.data``), so this module is their one type table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Final, NamedTuple, TypeAlias

from gateway.codecs.errors import ProtocolError, Reason
from gateway.codecs.jt808.messages import TerminalParam

__all__ = [
    "PARAMS",
    "PARAM_IDS",
    "ParamKind",
    "ParamSpec",
    "ParamValue",
    "decode_param_value",
    "encode_param_value",
    "param_items",
    "param_spec",
    "param_values",
]

#: A parameter's Python value: int (BYTE/WORD/DWORD), str (STRING) or bytes (BYTE[n], unknown
#: ids, values that do not fit their type).
ParamValue: TypeAlias = int | str | bytes


class ParamKind(StrEnum):
    """Wire type of a parameter value."""

    BYTE = "BYTE"
    WORD = "WORD"
    DWORD = "DWORD"
    STRING = "STRING"  # GBK, any length up to 255 bytes
    BYTES = "BYTES"  # BYTE[size], kept as bytes


class ParamSpec(NamedTuple):
    """One parameter: a snake_case name, its wire type, the value size in bytes (0: any, for
    STRING) and the unit of the integer value."""

    name: str
    kind: ParamKind
    size: int
    unit: str = ""


def _dword(name: str, unit: str = "") -> ParamSpec:
    return ParamSpec(name, ParamKind.DWORD, 4, unit)


def _word(name: str, unit: str = "") -> ParamSpec:
    return ParamSpec(name, ParamKind.WORD, 2, unit)


def _byte(name: str) -> ParamSpec:
    return ParamSpec(name, ParamKind.BYTE, 1)


def _string(name: str) -> ParamSpec:
    return ParamSpec(name, ParamKind.STRING, 0)


def _bytes(name: str, size: int) -> ParamSpec:
    return ParamSpec(name, ParamKind.BYTES, size)


# Ids used by the gateway and the simulator by name.
PARAM_HEARTBEAT_INTERVAL: Final = 0x0001
PARAM_TCP_TIMEOUT: Final = 0x0002
PARAM_MAIN_SERVER: Final = 0x0013
PARAM_BACKUP_SERVER: Final = 0x0017
PARAM_SERVER_TCP_PORT: Final = 0x0018
PARAM_SERVER_UDP_PORT: Final = 0x0019
PARAM_REPORT_STRATEGY: Final = 0x0020
PARAM_REPORT_INTERVAL: Final = 0x0029
PARAM_REPORT_DISTANCE: Final = 0x002C
PARAM_MAX_SPEED: Final = 0x0055
PARAM_ODOMETER: Final = 0x0080
PARAM_PROVINCE: Final = 0x0081
PARAM_CITY: Final = 0x0082
PARAM_PLATE: Final = 0x0083
PARAM_PLATE_COLOR: Final = 0x0084

#: CAN id collection settings: 0x0110 in the table, 0x0111-0x01FF by :func:`param_spec`.
_CAN_ID_FIRST: Final = 0x0110
_CAN_ID_LAST: Final = 0x01FF

#: Parameter id -> spec (JT/T 808-2013 table 12, 2019 table 14).
PARAMS: Final[dict[int, ParamSpec]] = {
    0x0001: _dword("heartbeat_interval_s", "s"),
    0x0002: _dword("tcp_timeout_s", "s"),
    0x0003: _dword("tcp_retries"),
    0x0004: _dword("udp_timeout_s", "s"),
    0x0005: _dword("udp_retries"),
    0x0006: _dword("sms_timeout_s", "s"),
    0x0007: _dword("sms_retries"),
    0x0010: _string("main_apn"),
    0x0011: _string("main_dial_user"),
    0x0012: _string("main_dial_password"),
    0x0013: _string("main_server_address"),  # 2019: "host:port", ';' between servers
    0x0014: _string("backup_apn"),
    0x0015: _string("backup_dial_user"),
    0x0016: _string("backup_dial_password"),
    0x0017: _string("backup_server_address"),
    0x0018: _dword("server_tcp_port"),  # 2019: reserved (the port is in the address)
    0x0019: _dword("server_udp_port"),  # 2019: reserved
    0x001A: _string("ic_auth_main_server"),
    0x001B: _dword("ic_auth_tcp_port"),
    0x001C: _dword("ic_auth_udp_port"),
    0x001D: _string("ic_auth_backup_server"),
    0x0020: _dword("report_strategy"),  # 0 by time, 1 by distance, 2 both
    0x0021: _dword("report_scheme"),  # 0 by ACC, 1 by login then ACC
    0x0022: _dword("report_interval_no_driver_s", "s"),
    0x0023: _string("slave_apn"),  # 0x0023-0x0026: 2019
    0x0024: _string("slave_dial_user"),
    0x0025: _string("slave_dial_password"),
    0x0026: _string("slave_server_address"),
    0x0027: _dword("report_interval_sleep_s", "s"),
    0x0028: _dword("report_interval_emergency_s", "s"),
    0x0029: _dword("report_interval_s", "s"),
    0x002C: _dword("report_distance_m", "m"),
    0x002D: _dword("report_distance_no_driver_m", "m"),
    0x002E: _dword("report_distance_sleep_m", "m"),
    0x002F: _dword("report_distance_emergency_m", "m"),
    0x0030: _dword("turn_angle_deg", "deg"),
    0x0031: _word("fence_radius_m", "m"),
    0x0032: _bytes("illegal_driving_period", 4),  # 2019: start hh mm, end hh mm
    0x0040: _string("platform_phone"),
    0x0041: _string("reset_phone"),
    0x0042: _string("factory_reset_phone"),
    0x0043: _string("platform_sms_phone"),
    0x0044: _string("sms_alarm_phone"),
    0x0045: _dword("call_answer_strategy"),
    0x0046: _dword("max_call_time_s", "s"),
    0x0047: _dword("max_call_time_month_s", "s"),
    0x0048: _string("monitor_phone"),
    0x0049: _string("privileged_sms_phone"),
    0x0050: _dword("alarm_mask"),  # bits as the 0x0200 alarm flags
    0x0051: _dword("alarm_sms_switch"),
    0x0052: _dword("alarm_photo_switch"),
    0x0053: _dword("alarm_photo_store"),
    0x0054: _dword("key_alarm_flags"),
    0x0055: _dword("max_speed_kmh", "km/h"),
    0x0056: _dword("overspeed_duration_s", "s"),
    0x0057: _dword("continuous_driving_limit_s", "s"),
    0x0058: _dword("daily_driving_limit_s", "s"),
    0x0059: _dword("min_rest_s", "s"),
    0x005A: _dword("max_parking_s", "s"),
    0x005B: _word("overspeed_warning_delta", "0.1 km/h"),
    0x005C: _word("fatigue_warning_delta_s", "s"),
    0x005D: _word("collision_alarm"),  # b7-b0 collision time (ms), b15-b8 acceleration 0.1 g
    0x005E: _word("rollover_angle_deg", "deg"),
    0x0064: _dword("timed_photo"),
    0x0065: _dword("distance_photo"),
    0x0070: _dword("image_quality"),
    0x0071: _dword("brightness"),
    0x0072: _dword("contrast"),
    0x0073: _dword("saturation"),
    0x0074: _dword("chroma"),
    0x0080: _dword("odometer", "0.1 km"),
    0x0081: _word("province"),
    0x0082: _word("city"),
    0x0083: _string("plate"),
    0x0084: _byte("plate_color"),
    0x0090: _byte("gnss_mode"),
    0x0091: _byte("gnss_baud_rate"),
    0x0092: _byte("gnss_output_rate"),
    0x0093: _dword("gnss_collect_interval_s", "s"),
    0x0094: _byte("gnss_upload_mode"),
    0x0095: _dword("gnss_upload_setting"),
    0x0100: _dword("can1_collect_interval_ms", "ms"),
    0x0101: _word("can1_upload_interval_s", "s"),
    0x0102: _dword("can2_collect_interval_ms", "ms"),
    0x0103: _word("can2_upload_interval_s", "s"),
    _CAN_ID_FIRST: _bytes("can_id_collect", 8),
}

#: Parameter name -> id, for the ids in :data:`PARAMS`.
PARAM_IDS: Final[dict[str, int]] = {spec.name: pid for pid, spec in PARAMS.items()}

_CAN_ID_OTHER: Final = _bytes("can_id_collect_other", 8)
_INT_KINDS: Final = frozenset({ParamKind.BYTE, ParamKind.WORD, ParamKind.DWORD})


def param_spec(param_id: int) -> ParamSpec | None:
    """The spec of ``param_id``, or None for reserved, vendor (0xF000-0xFFFF) and unknown ids."""
    spec = PARAMS.get(param_id)
    if spec is None and _CAN_ID_FIRST < param_id <= _CAN_ID_LAST:
        return _CAN_ID_OTHER
    return spec


def encode_param_value(param_id: int, value: ParamValue) -> bytes:
    """The item bytes of ``value``: an int for BYTE/WORD/DWORD ids (range-checked), a str for
    STRING ids (GBK), bytes for any id (written as given; the only form for unknown ids)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    spec = param_spec(param_id)
    what = f"parameter 0x{param_id:04X}"
    if spec is None:
        raise ProtocolError(Reason.BAD_VALUE, f"{what} is not in the table: give bytes")
    if spec.kind is ParamKind.STRING and isinstance(value, str):
        try:
            return value.encode("gbk")
        except UnicodeEncodeError as exc:
            raise ProtocolError(Reason.BAD_VALUE, f"{what}: {value!r} is not GBK") from exc
    if spec.kind in _INT_KINDS and isinstance(value, int):
        if not 0 <= value < 1 << 8 * spec.size:
            raise ProtocolError(Reason.BAD_VALUE, f"{what}: {value} does not fit a {spec.kind}")
        return value.to_bytes(spec.size, "big")
    raise ProtocolError(
        Reason.BAD_VALUE, f"{what} ({spec.name}) is a {spec.kind}, not {type(value).__name__}"
    )


def decode_param_value(param_id: int, data: bytes) -> ParamValue:
    """The value of an item: int / str by the id's type, else (unknown id, BYTE[n], a width
    that does not match, text that is not GBK) the bytes themselves."""
    spec = param_spec(param_id)
    if spec is None or spec.kind is ParamKind.BYTES:
        return data
    if spec.kind is ParamKind.STRING:
        try:
            return data.rstrip(b"\x00").decode("gbk")
        except UnicodeDecodeError:
            return data
    if len(data) != spec.size:
        return data
    return int.from_bytes(data, "big")


def param_items(values: Mapping[int, ParamValue]) -> tuple[TerminalParam, ...]:
    """0x8103 / 0x0104 items for ``{param id: value}``, in the mapping's order."""
    return tuple(
        TerminalParam(param_id=pid, data=encode_param_value(pid, value))
        for pid, value in values.items()
    )


def param_values(params: Iterable[TerminalParam]) -> dict[int, ParamValue]:
    """``{param id: value}`` of decoded items (a repeated id: the last one wins)."""
    return {p.param_id: decode_param_value(p.param_id, p.data) for p in params}
