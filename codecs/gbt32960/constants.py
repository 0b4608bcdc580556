"""GB/T 32960.3 identifiers: commands, info types per edition, flags, alarm bits, parameters."""

from __future__ import annotations

from typing import Final

V2016: Final = 2016
V2025: Final = 2025

START_2016: Final = b"##"
START_2025: Final = b"$$"
START_BY_VERSION: Final[dict[int, bytes]] = {V2016: START_2016, V2025: START_2025}
VERSION_BY_START_BYTE: Final[dict[int, int]] = {0x23: V2016, 0x24: V2025}

HEADER_SIZE: Final = 24  # start(2) command response vin(17) encryption length(2)
VIN_SIZE: Final = 17
TIME_SIZE: Final = 6
MAX_DATA_LENGTH: Final = 65531
DEFAULT_MAX_FRAME: Final = HEADER_SIZE + MAX_DATA_LENGTH + 1

# Commands.
CMD_VEHICLE_LOGIN: Final = 0x01
CMD_REALTIME: Final = 0x02
CMD_REISSUE: Final = 0x03
CMD_VEHICLE_LOGOUT: Final = 0x04
CMD_PLATFORM_LOGIN: Final = 0x05
CMD_PLATFORM_LOGOUT: Final = 0x06
CMD_HEARTBEAT: Final = 0x07
CMD_TIME_SYNC: Final = 0x08
CMD_ACTIVATION: Final = 0x09  # 2025
CMD_ACTIVATION_RESPONSE: Final = 0x0A  # 2025
CMD_KEY_SYNC: Final = 0x0B  # 2025
CMD_PARAM_QUERY: Final = 0x80
CMD_PARAM_SET: Final = 0x81
CMD_CONTROL: Final = 0x82

# Response flags.
RESP_SUCCESS: Final = 0x01
RESP_ERROR: Final = 0x02
RESP_VIN_DUPLICATE: Final = 0x03
RESP_VIN_UNKNOWN: Final = 0x04
RESP_SIGNATURE_INVALID: Final = 0x05  # 2025
RESP_STRUCTURE_INVALID: Final = 0x06  # 2025
RESP_DECRYPTION_FAILED: Final = 0x07  # 2025
RESP_COMMAND: Final = 0xFE  # a command packet, not a response

# Encryption codes.
ENC_NONE: Final = 0x01
ENC_RSA: Final = 0x02
ENC_AES128: Final = 0x03
ENC_SM2: Final = 0x04  # 2025
ENC_SM4: Final = 0x05  # 2025
ENC_ABNORMAL: Final = 0xFE
ENC_INVALID: Final = 0xFF
ENCRYPTED: Final = frozenset({ENC_RSA, ENC_AES128, ENC_SM2, ENC_SM4})

# Sentinels by width in bytes: (abnormal, invalid).
SENTINELS: Final[dict[int, tuple[int, int]]] = {
    1: (0xFE, 0xFF),
    2: (0xFFFE, 0xFFFF),
    4: (0xFFFFFFFE, 0xFFFFFFFF),
}
# Some terminals fill a whole abnormal block with 0xFE bytes (vector GB-14), so a WORD/DWORD of
# 0xFEFE / 0xFEFEFEFE is read as abnormal too; encoding writes the standard sentinel instead.
FILL_ABNORMAL: Final[dict[int, int]] = {1: 0xFE, 2: 0xFEFE, 4: 0xFEFEFEFE}
BRAKE_ON_NO_TRAVEL: Final = 0x65  # 2016 brake pedal byte
NO_LIST_COUNTS: Final = frozenset({0xFE, 0xFF})  # alarm list counts meaning "no list"

# Realtime info types, 2016.
INFO16_VEHICLE: Final = 0x01
INFO16_MOTORS: Final = 0x02
INFO16_FUEL_CELL: Final = 0x03
INFO16_ENGINE: Final = 0x04
INFO16_POSITION: Final = 0x05
INFO16_EXTREMES: Final = 0x06
INFO16_ALARM: Final = 0x07
INFO16_CELL_VOLTAGES: Final = 0x08
INFO16_TEMPS: Final = 0x09

# Realtime info types, 2025.
INFO25_VEHICLE: Final = 0x01
INFO25_MOTORS: Final = 0x02
INFO25_FUEL_CELL_ENGINE: Final = 0x03
INFO25_ENGINE: Final = 0x04
INFO25_POSITION: Final = 0x05
INFO25_ALARM: Final = 0x06
INFO25_CELL_VOLTAGES: Final = 0x07
INFO25_TEMPS: Final = 0x08
INFO25_FUEL_CELL_STACKS: Final = 0x30
INFO25_SUPER_CAP: Final = 0x31
INFO25_SUPER_CAP_EXTREMES: Final = 0x32
INFO_SIGNATURE: Final = 0xFF  # 2025 signature marker, ends the block list

CUSTOM_FIRST: Final = 0x80
CUSTOM_LAST: Final = 0xFE

# Current offsets in raw units of 0.1 A.
CURRENT_OFFSET_RAW: Final[dict[int, int]] = {V2016: 10000, V2025: 30000}

# Names of the general-alarm flag bits.
ALARM_BITS_2016: Final[dict[int, str]] = {
    0: "temperature difference",
    1: "battery high temperature",
    2: "energy-storage over-voltage",
    3: "energy-storage under-voltage",
    4: "SOC low",
    5: "cell over-voltage",
    6: "cell under-voltage",
    7: "SOC high",
    8: "SOC jump",
    9: "energy-storage mismatch",
    10: "poor cell consistency",
    11: "insulation",
    12: "DC-DC temperature",
    13: "braking system",
    14: "DC-DC status",
    15: "drive-motor controller temperature",
    16: "high-voltage interlock",
    17: "drive-motor temperature",
    18: "energy-storage over-charge",
}
ALARM_BITS_2025: Final[dict[int, str]] = {
    **ALARM_BITS_2016,
    19: "motor over-speed",
    20: "motor over-current",
    21: "super-capacitor over-temperature",
    22: "super-capacitor over-pressure",
    23: "battery thermal event",
    24: "hydrogen leak",
    25: "hydrogen-system pressure abnormal",
    26: "hydrogen-system temperature abnormal",
    27: "fuel-cell stack over-temperature",
}
ALARM_BITS: Final[dict[int, dict[int, str]]] = {V2016: ALARM_BITS_2016, V2025: ALARM_BITS_2025}


def alarm_names(flags: int, version: int) -> list[str]:
    """Names of the general-alarm bits set in ``flags`` (unknown bits are skipped)."""
    names = ALARM_BITS[version]
    return [name for bit, name in names.items() if flags >> bit & 1]


# Parameters: id -> width in bytes (0 = variable: length from the preceding length id).
PARAM_STORAGE_PERIOD: Final = 0x01
PARAM_REPORT_PERIOD: Final = 0x02
PARAM_ALARM_REPORT_PERIOD: Final = 0x03
PARAM_DOMAIN_LENGTH: Final = 0x04
PARAM_DOMAIN: Final = 0x05
PARAM_PORT: Final = 0x06
PARAM_HARDWARE_VERSION: Final = 0x07
PARAM_FIRMWARE_VERSION: Final = 0x08
PARAM_HEARTBEAT_PERIOD: Final = 0x09
PARAM_TERMINAL_TIMEOUT: Final = 0x0A
PARAM_PLATFORM_TIMEOUT: Final = 0x0B
PARAM_RELOGIN_INTERVAL: Final = 0x0C
PARAM_PUBLIC_DOMAIN_LENGTH: Final = 0x0D
PARAM_PUBLIC_DOMAIN: Final = 0x0E
PARAM_PUBLIC_PORT: Final = 0x0F
PARAM_SAMPLING_CHECK: Final = 0x10

#: Variable-length parameters and the id that carries their length.
PARAM_LENGTH_ID: Final[dict[int, int]] = {
    PARAM_DOMAIN: PARAM_DOMAIN_LENGTH,
    PARAM_PUBLIC_DOMAIN: PARAM_PUBLIC_DOMAIN_LENGTH,
}
#: Parameters whose value is raw bytes of a fixed width (read-only versions).
PARAM_BYTES_WIDTH: Final[dict[int, int]] = {PARAM_HARDWARE_VERSION: 5, PARAM_FIRMWARE_VERSION: 5}

_PARAM_INT_WIDTHS_2016: Final[dict[int, int]] = {
    PARAM_STORAGE_PERIOD: 2,
    PARAM_REPORT_PERIOD: 2,
    PARAM_ALARM_REPORT_PERIOD: 2,
    PARAM_DOMAIN_LENGTH: 1,
    PARAM_PORT: 2,
    PARAM_HEARTBEAT_PERIOD: 1,
    PARAM_TERMINAL_TIMEOUT: 2,
    PARAM_PLATFORM_TIMEOUT: 2,
    PARAM_RELOGIN_INTERVAL: 1,
    PARAM_PUBLIC_DOMAIN_LENGTH: 1,
    PARAM_PUBLIC_PORT: 2,
    PARAM_SAMPLING_CHECK: 1,
}
#: Integer parameters: id -> width in bytes, per edition (2025 narrows 0x02 and 0x03 to BYTE).
PARAM_INT_WIDTHS: Final[dict[int, dict[int, int]]] = {
    V2016: _PARAM_INT_WIDTHS_2016,
    V2025: {**_PARAM_INT_WIDTHS_2016, PARAM_REPORT_PERIOD: 1, PARAM_ALARM_REPORT_PERIOD: 1},
}

# Terminal control commands.
CTRL_UPGRADE: Final = 0x01
CTRL_SHUTDOWN: Final = 0x02
CTRL_RESET: Final = 0x03
CTRL_FACTORY_RESET: Final = 0x04
CTRL_DISCONNECT: Final = 0x05
CTRL_WARNING: Final = 0x06
CTRL_SAMPLING_LINK: Final = 0x07

# Field sizes.
ICCID_SIZE: Final = 20
PACK_CODE_SIZE_2025: Final = 24
USERNAME_SIZE: Final = 12
PASSWORD_SIZE: Final = 20
CHIP_ID_SIZE: Final = 16
UPGRADE_IP_SIZE: Final = 6
UPGRADE_MANUFACTURER_SIZE: Final = 4
UPGRADE_VERSION_SIZE: Final = 5
