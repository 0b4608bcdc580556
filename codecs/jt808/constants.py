"""JT/T 808 constants: message ids, result codes, alarm/status bit names, additional items."""

from __future__ import annotations

from typing import Final

# ------------------------------------------------------------------------------ framing

FLAG: Final = 0x7E
ESCAPE: Final = 0x7D
HEADER_SIZE_2013: Final = 12
HEADER_SIZE_2019: Final = 17
PACKET_ITEMS_SIZE: Final = 4  # total packets WORD + packet index WORD
PHONE_DIGITS: Final[dict[int, int]] = {2013: 12, 2019: 20}
MAX_BODY: Final = 0x3FF

ATTR_LENGTH_MASK: Final = 0x03FF
ATTR_ENCRYPTION_SHIFT: Final = 10
ATTR_ENCRYPTION_MASK: Final = 0x7
ENCRYPTION_RSA: Final = 0x1
ATTR_SUBPACKAGE: Final = 1 << 13
ATTR_VERSION_2019: Final = 1 << 14
ATTR_RESERVED_SHIFT: Final = 15

#: Largest escaped frame: two flags + every byte of the largest (2019, subpackaged) header,
#: body and checksum escaped.
DEFAULT_MAX_FRAME: Final = 2 + 2 * (HEADER_SIZE_2019 + PACKET_ITEMS_SIZE + MAX_BODY + 1)

#: 0x8004 carries a BCD time whose zone the sources do not agree on (UTC or GMT+8). We read
#: and write it as UTC; flip this if field devices prove otherwise.
SERVER_TIME_IS_UTC: Final = True

# ---------------------------------------------------------------------------- message ids

TERMINAL_GENERAL_RESPONSE: Final = 0x0001
PLATFORM_GENERAL_RESPONSE: Final = 0x8001
HEARTBEAT: Final = 0x0002
LOGOUT: Final = 0x0003
QUERY_SERVER_TIME: Final = 0x0004
SERVER_TIME: Final = 0x8004
TERMINAL_RESEND_REQUEST: Final = 0x0005
PLATFORM_RESEND_REQUEST: Final = 0x8003
REGISTER: Final = 0x0100
REGISTER_RESPONSE: Final = 0x8100
AUTHENTICATE: Final = 0x0102
LOCATION: Final = 0x0200
BATCH_LOCATION: Final = 0x0704
CAN_BUS_DATA: Final = 0x0705
TRANSPARENT_UPLINK: Final = 0x0900
TRANSPARENT_DOWNLINK: Final = 0x8900
SET_PARAMS: Final = 0x8103
QUERY_ALL_PARAMS: Final = 0x8104
QUERY_PARAMS: Final = 0x8106
QUERY_PARAMS_RESPONSE: Final = 0x0104
TERMINAL_CONTROL: Final = 0x8105
TEXT_MESSAGE: Final = 0x8300

# --------------------------------------------------------------------------- result codes

RESULT_OK: Final = 0
RESULT_FAIL: Final = 1
RESULT_BAD_MESSAGE: Final = 2
RESULT_UNSUPPORTED: Final = 3
RESULT_ALARM_CONFIRMED: Final = 4  # 0x8001 only

REGISTER_OK: Final = 0
REGISTER_VEHICLE_REGISTERED: Final = 1
REGISTER_VEHICLE_UNKNOWN: Final = 2
REGISTER_TERMINAL_REGISTERED: Final = 3
REGISTER_TERMINAL_UNKNOWN: Final = 4

BATCH_NORMAL: Final = 0
BATCH_BLIND_AREA: Final = 1

PLATE_COLOR_NONE: Final = 0  # no plate: the plate field carries the VIN

# ------------------------------------------------------------- 0x8105 / 0x8300 commands

#: 0x8105 command words; 1 and 2 take ';'-separated parameters, the others none.
CONTROL_UPGRADE: Final = 1
CONTROL_CONNECT_SERVER: Final = 2
CONTROL_POWER_OFF: Final = 3
CONTROL_RESET: Final = 4
CONTROL_FACTORY_RESET: Final = 5
CONTROL_CLOSE_DATA: Final = 6
CONTROL_CLOSE_WIRELESS: Final = 7
CONTROL_PARAM_SEPARATOR: Final = ";"

#: 0x8300 flag bits. 2013: bit 0 emergency, bit 4 advertising screen. 2019: bits 0-1 are a
#: priority (1 service, 2 urgent, 3 notice) and bit 4 is reserved.
TEXT_FLAG_EMERGENCY: Final = 1 << 0
TEXT_FLAG_DISPLAY: Final = 1 << 2
TEXT_FLAG_TTS: Final = 1 << 3
TEXT_FLAG_AD_SCREEN: Final = 1 << 4
TEXT_FLAG_CAN_FAULT: Final = 1 << 5  # 0 navigation information, 1 CAN fault code
TEXT_PRIORITY_MASK: Final = 0x03
TEXT_PRIORITY_SERVICE: Final = 1
TEXT_PRIORITY_URGENT: Final = 2
TEXT_PRIORITY_NOTICE: Final = 3
#: 0x8300 (2019) text type BYTE; 2019 bodies encoded without one get TEXT_TYPE_NOTICE.
TEXT_TYPE_NOTICE: Final = 1
TEXT_TYPE_SERVICE: Final = 2

# ------------------------------------------------------------------ 0x0200 fixed layouts

LOCATION_BASIC_SIZE: Final = 28
STATUS_SOUTH: Final = 1 << 2
STATUS_WEST: Final = 1 << 3

# -------------------------------------------------------------------- additional items

ITEM_ODOMETER: Final = 0x01
ITEM_FUEL: Final = 0x02
ITEM_TACHOGRAPH_SPEED: Final = 0x03
ITEM_ALARM_EVENT_ID: Final = 0x04
ITEM_TYRE_PRESSURE: Final = 0x05
ITEM_CABIN_TEMPERATURE: Final = 0x06
ITEM_OVERSPEED: Final = 0x11
ITEM_AREA_ALARM: Final = 0x12
ITEM_ROUTE_TIME: Final = 0x13
ITEM_EXTENDED_SIGNALS: Final = 0x25
ITEM_IO_STATUS: Final = 0x2A
ITEM_ANALOG: Final = 0x2B
ITEM_SIGNAL_STRENGTH: Final = 0x30
ITEM_SATELLITES: Final = 0x31
ITEM_CUSTOM_LENGTH: Final = 0xE0

#: Allowed value lengths of the fixed-size items; any other length keeps the item raw.
ITEM_LENGTHS: Final[dict[int, frozenset[int]]] = {
    ITEM_ODOMETER: frozenset({4}),
    ITEM_FUEL: frozenset({2}),
    ITEM_TACHOGRAPH_SPEED: frozenset({2}),
    ITEM_ALARM_EVENT_ID: frozenset({2}),
    ITEM_TYRE_PRESSURE: frozenset({30}),
    ITEM_CABIN_TEMPERATURE: frozenset({2}),
    ITEM_OVERSPEED: frozenset({1, 5}),
    ITEM_AREA_ALARM: frozenset({6}),
    ITEM_ROUTE_TIME: frozenset({7}),
    ITEM_EXTENDED_SIGNALS: frozenset({4}),
    ITEM_IO_STATUS: frozenset({2}),
    ITEM_ANALOG: frozenset({4}),
    ITEM_SIGNAL_STRENGTH: frozenset({1}),
    ITEM_SATELLITES: frozenset({1}),
}
TYRE_PRESSURE_INVALID: Final = 0xFF

# ------------------------------------------------------------------------ 0x0705 CAN id

CAN_CHANNEL_BIT: Final = 31
CAN_FRAME_TYPE_BIT: Final = 30
CAN_COLLECTION_BIT: Final = 29
CAN_ID_MASK: Final = (1 << 29) - 1
CAN_DATA_SIZE: Final = 8

# ------------------------------------------------------------------------- alarm bits

_ALARM_COMMON: Final[dict[int, str]] = {
    0: "emergency",
    1: "overspeed",
    2: "fatigue_driving",
    4: "gnss_module_fault",
    5: "gnss_antenna_open",
    6: "gnss_antenna_short",
    7: "main_power_undervoltage",
    8: "main_power_lost",
    9: "lcd_fault",
    10: "tts_fault",
    11: "camera_fault",
    12: "ic_card_module_fault",
    13: "overspeed_prewarning",
    14: "fatigue_prewarning",
    18: "daily_driving_overtime",
    19: "overtime_parking",
    20: "area_in_out",
    21: "route_in_out",
    22: "road_section_time",
    23: "route_deviation",
    24: "vss_fault",
    25: "fuel_abnormal",
    26: "theft",
    27: "illegal_ignition",
    28: "illegal_displacement",
    30: "rollover_warning",
}

ALARM_BITS_2013: Final[dict[int, str]] = {
    **_ALARM_COMMON,
    3: "danger_warning",
    29: "collision_warning",
    31: "illegal_door_open",
}

ALARM_BITS_2019: Final[dict[int, str]] = {
    **_ALARM_COMMON,
    3: "dangerous_driving",
    15: "illegal_driving",
    16: "tyre_pressure_warning",
    17: "right_turn_blind_zone",
    29: "collision_rollover",
}

#: Alarm bits the terminal clears once the platform acknowledges them (0x8001 result 4).
ALARM_ACK_CLEARED: Final = frozenset({20, 21, 22, 27, 28})

# ------------------------------------------------------------------------ status bits

_STATUS_COMMON: Final[dict[int, str]] = {
    0: "acc_on",
    1: "positioned",
    2: "south",
    3: "west",
    4: "out_of_service",
    5: "coordinates_encrypted",
    10: "fuel_circuit_cut",
    11: "electric_circuit_cut",
    12: "doors_locked",
    13: "door1_open",
    14: "door2_open",
    15: "door3_open",
    16: "door4_open",
    17: "door5_open",
    18: "gps",
    19: "beidou",
    20: "glonass",
    21: "galileo",
}

STATUS_BITS_2013: Final[dict[int, str]] = dict(_STATUS_COMMON)
STATUS_BITS_2019: Final[dict[int, str]] = {
    **_STATUS_COMMON,
    6: "aeb_warning",
    7: "lane_departure_warning",
    22: "moving",
}

STATUS_LOAD_SHIFT: Final = 8
#: Status bits 8-9: 00 empty, 01 half, 11 full (10 is not defined).
LOAD_STATES: Final[dict[int, str]] = {0: "empty", 1: "half", 2: "reserved", 3: "full"}


def _bit_names(flags: int, table: dict[int, str]) -> list[str]:
    return [name for bit, name in sorted(table.items()) if flags >> bit & 1]


def alarm_names(flags: int, version: int) -> list[str]:
    """Names of the alarm bits set in ``flags`` for protocol ``version`` (2013 or 2019)."""
    return _bit_names(flags, ALARM_BITS_2019 if version >= 2019 else ALARM_BITS_2013)


def status_names(flags: int, version: int) -> list[str]:
    """Names of the status bits set in ``flags``, plus ``load_<state>`` unless empty."""
    names = _bit_names(flags, STATUS_BITS_2019 if version >= 2019 else STATUS_BITS_2013)
    load = LOAD_STATES[flags >> STATUS_LOAD_SHIFT & 0x3]
    if load != "empty":
        names.append(f"load_{load}")
    return names
