"""Pure-Python reference codec for GB/T 32960.3 (2016 "##" and 2025 "$$").

Public API (same as ``_accel``): ``FrameReader``, ``decode_frame``, ``encode_frame``, ``bcc``,
``DEFAULT_MAX_FRAME``.

Per-body functions, reusable by the accelerator. Decoders take ``(data, offset, version)`` where
``data`` ends where the body ends (offsets are frame offsets) and return ``(struct, new_offset)``;
encoders take ``(struct, version)`` and return bytes:

* times: ``decode_time`` / ``encode_time``
* bodies: ``decode_time_only``, ``decode_vehicle_login`` (2016 and 2025),
  ``decode_vehicle_logout``, ``decode_platform_login``, ``decode_platform_logout``,
  ``decode_realtime``, ``decode_activation``, ``decode_activation_response``,
  ``decode_key_sync``, ``decode_param_query``, ``decode_param_values``, ``decode_control``,
  ``decode_upgrade_params``, and the matching ``encode_*``; ``decode_body`` / ``encode_body``
  dispatch on command and response flag
* realtime blocks (offset just after the info-type byte): ``decode_vehicle_data``,
  ``decode_drive_motors``, ``decode_fuel_cell``, ``decode_fuel_cell_engine``, ``decode_engine``,
  ``decode_position``, ``decode_extremes``, ``decode_alarm``, ``decode_cell_voltages``,
  ``decode_battery_temps``, ``decode_fuel_cell_stacks``, ``decode_super_cap``,
  ``decode_super_cap_extremes``, ``decode_signature``, and the matching ``encode_*`` (which
  return the block without its type byte); ``encode_block`` adds the type byte.
* strings: ``decode_text`` / ``encode_text`` (GBK, surrogateescape for exact round trips).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, Final

from gateway.codecs.common import ABNORMAL, INVALID, BadFrame, DeviceTime, gmt8_to_utc
from gateway.codecs.errors import ProtocolError, Reason
from gateway.codecs.gbt32960 import constants as C
from gateway.codecs.gbt32960 import layouts as L
from gateway.codecs.gbt32960.layouts import Field
from gateway.codecs.gbt32960.messages import (
    Activation,
    ActivationResponse,
    Alarm,
    BatteryTemps,
    Body,
    CellVoltages,
    Control,
    ControlWarning,
    CustomBlock,
    DriveMotors,
    Empty,
    Engine,
    Extremes,
    Frame,
    FuelCell,
    FuelCellEngine,
    FuelCellStack,
    FuelCellStacks,
    KeySync,
    Motor,
    PackTemps,
    PackVoltage,
    Param,
    ParamQuery,
    ParamValues,
    PlatformLogin,
    PlatformLogout,
    Position,
    RawBody,
    RealtimeBlock,
    RealtimeData,
    Signature,
    SuperCap,
    SuperCapExtremes,
    TimeOnly,
    Unparsed,
    UpgradeParams,
    VehicleData,
    VehicleLogin,
    VehicleLogin2025,
    VehicleLogout,
)

__all__ = [
    "DEFAULT_MAX_FRAME",
    "FrameReader",
    "bcc",
    "decode_body",
    "decode_frame",
    "encode_body",
    "encode_frame",
]

DEFAULT_MAX_FRAME: Final = C.DEFAULT_MAX_FRAME
_ENCODING: Final = "gbk"
_ERRORS: Final = "surrogateescape"

# --------------------------------------------------------------------------- primitives


def bcc(data: bytes | bytearray) -> int:
    """XOR of every byte of ``data`` (call it with command .. last data byte)."""
    n = len(data)
    if n == 0:
        return 0
    x = int.from_bytes(data, "little")
    while n > 1:  # fold the halves together: XOR of all bytes is preserved
        half = (n + 1) // 2
        x = (x & ((1 << (8 * half)) - 1)) ^ (x >> (8 * half))
        n = half
    return x


def _need(data: bytes, offset: int, size: int, what: str) -> None:
    """Raise TRUNCATED unless ``size`` bytes are available at ``offset``."""
    if offset + size > len(data):
        raise ProtocolError(
            Reason.TRUNCATED, f"{what}: need {size} bytes, have {len(data) - offset}", offset
        )


def _uint(data: bytes, offset: int, size: int, what: str) -> int:
    """Big-endian unsigned integer of ``size`` bytes, length-checked."""
    _need(data, offset, size, what)
    return int.from_bytes(data[offset : offset + size], "big")


def _take(data: bytes, offset: int, size: int, what: str) -> bytes:
    """``size`` raw bytes at ``offset``, length-checked."""
    _need(data, offset, size, what)
    return bytes(data[offset : offset + size])


def _put(value: int, size: int, what: str) -> bytes:
    """Big-endian encoding of ``value``; BAD_VALUE when it does not fit."""
    if not 0 <= value < 1 << (8 * size):
        raise ProtocolError(Reason.BAD_VALUE, f"{what}={value} does not fit in {size} bytes")
    return value.to_bytes(size, "big")


def decode_text(raw: bytes, *, fixed: bool = False) -> str:
    """GBK text; fixed-width fields lose their trailing NUL/space padding."""
    if fixed:
        raw = raw.rstrip(b"\x00 ")
    return raw.decode(_ENCODING, _ERRORS)


def encode_text(text: str, size: int | None = None, what: str = "text") -> bytes:
    """GBK bytes, NUL-padded to ``size`` for fixed-width fields."""
    try:
        raw = text.encode(_ENCODING, _ERRORS)
    except UnicodeError as exc:
        raise ProtocolError(Reason.BAD_VALUE, f"{what}: not GBK text ({exc})") from None
    if size is None:
        return raw
    if len(raw) > size:
        raise ProtocolError(Reason.BAD_VALUE, f"{what}: {len(raw)} bytes, field is {size}")
    return raw.ljust(size, b"\x00")


def _fixed_text(data: bytes, offset: int, size: int, what: str) -> tuple[str, int]:
    return decode_text(_take(data, offset, size, what), fixed=True), offset + size


def _prefixed(data: bytes, offset: int, what: str) -> tuple[bytes, int]:
    """WORD length + bytes."""
    n = _uint(data, offset, 2, f"{what} length")
    return _take(data, offset + 2, n, what), offset + 2 + n


def _put_prefixed(raw: bytes, what: str) -> bytes:
    return _put(len(raw), 2, f"{what} length") + raw


def _expect_end(data: bytes, offset: int, what: str) -> None:
    if offset != len(data):
        raise ProtocolError(
            Reason.TRAILING_BYTES, f"{len(data) - offset} bytes after the {what}", offset
        )


# --------------------------------------------------------------------------- time


def decode_time(data: bytes, offset: int, version: int = C.V2016) -> tuple[DeviceTime, int]:
    """6-byte GMT+8 time (YY MM DD hh mm ss) -> DeviceTime (utc None if not a calendar time)."""
    raw = _take(data, offset, C.TIME_SIZE, "time")
    utc = gmt8_to_utc(2000 + raw[0], raw[1], raw[2], raw[3], raw[4], raw[5])
    return DeviceTime(raw=raw, utc=utc), offset + C.TIME_SIZE


def encode_time(t: DeviceTime, version: int = C.V2016) -> bytes:
    """The 6 raw bytes of a DeviceTime."""
    if len(t.raw) != C.TIME_SIZE:
        raise ProtocolError(Reason.BAD_VALUE, f"time must be 6 raw bytes, got {len(t.raw)}")
    return bytes(t.raw)


# --------------------------------------------------------------------------- scaled fields


def _decode_fields(
    data: bytes,
    offset: int,
    spec: tuple[Field, ...],
    values: dict[str, Any],
    quality: dict[str, str],
) -> int:
    """Read ``spec`` at ``offset`` into ``values`` / ``quality``; return the new offset."""
    size = sum(f.size for f in spec)
    _need(data, offset, size, spec[0].name)
    for f in spec:
        raw = int.from_bytes(data[offset : offset + f.size], "big")
        offset += f.size
        abnormal, invalid = C.SENTINELS[f.size]
        if f.sentinel and (raw >= abnormal or raw == C.FILL_ABNORMAL[f.size]):
            values[f.name] = None
            quality[f.name] = INVALID if raw == invalid else ABNORMAL
        elif f.div:
            values[f.name] = (raw - f.offset) / f.div
        else:
            values[f.name] = raw - f.offset
    return offset


def _encode_fields(obj: Any, spec: tuple[Field, ...], quality: dict[str, str]) -> bytes:
    """Write the ``spec`` fields of ``obj``; None writes the sentinel its quality names."""
    out = bytearray()
    for f in spec:
        value = getattr(obj, f.name)
        if value is None:
            abnormal, invalid = C.SENTINELS[f.size]
            raw = abnormal if quality.get(f.name) == ABNORMAL else invalid
        elif f.div:
            raw = round(value * f.div) + f.offset
        else:
            raw = int(value) + f.offset
        out += _put(raw, f.size, f.name)
    return bytes(out)


def _count_items(data: bytes, offset: int, size: int, what: str) -> tuple[int, int]:
    return _uint(data, offset, size, f"{what} count"), offset + size


# --------------------------------------------------------------------------- 0x01 vehicle data

_VEHICLE_HEAD: Final = (
    Field("vehicle_state", 1),
    Field("charge_state", 1),
    Field("run_mode", 1),
    Field("speed_kmh", 2, 10),
    Field("odometer_km", 4, 10),
    Field("total_voltage_v", 2, 10),
)
_VEHICLE_MID: Final = (Field("soc_pct", 1), Field("dcdc_state", 1))


def _current(name: str, version: int) -> Field:
    return Field(name, 2, 10, C.CURRENT_OFFSET_RAW[version])


def _vehicle_spec(version: int) -> tuple[tuple[Field, ...], tuple[Field, ...]]:
    """(fields before the gear byte, fields after it)."""
    head = (*_VEHICLE_HEAD, _current("total_current_a", version), *_VEHICLE_MID)
    tail: tuple[Field, ...] = (Field("insulation_kohm", 2, sentinel=version != C.V2016),)
    if version == C.V2016:
        tail = (*tail, Field("accel_pct", 1))
    return head, tail


def decode_vehicle_data(data: bytes, offset: int, version: int) -> tuple[VehicleData, int]:
    """Whole-vehicle data (20 bytes in 2016, 18 in 2025)."""
    head, tail = _vehicle_spec(version)
    values: dict[str, Any] = {}
    quality: dict[str, str] = {}
    offset = _decode_fields(data, offset, head, values, quality)
    values["gear_byte"] = _uint(data, offset, 1, "gear")
    offset = _decode_fields(data, offset + 1, tail, values, quality)
    if version == C.V2016:
        brake = _uint(data, offset, 1, "brake pedal")
        offset += 1
        if brake == C.BRAKE_ON_NO_TRAVEL:
            values["brake_on"] = True
        elif brake >= 0xFE:
            quality["brake_pct"] = ABNORMAL if brake == 0xFE else INVALID
        else:
            values["brake_pct"] = brake
            values["brake_on"] = brake != 0
    return VehicleData(**values, quality=quality), offset


def encode_vehicle_data(block: VehicleData, version: int) -> bytes:
    """Whole-vehicle data without its type byte."""
    head, tail = _vehicle_spec(version)
    q = block.quality
    out = _encode_fields(block, head, q) + _put(block.gear_byte, 1, "gear_byte")
    out += _encode_fields(block, tail, q)
    if version == C.V2016:
        if block.brake_pct is not None:
            out += _put(block.brake_pct, 1, "brake_pct")
        elif block.brake_on:
            out += bytes((C.BRAKE_ON_NO_TRAVEL,))
        else:
            out += bytes((0xFE if q.get("brake_pct") == ABNORMAL else 0xFF,))
    return out


# --------------------------------------------------------------------------- 0x02 motors


def _motor_spec(version: int) -> tuple[Field, ...]:
    return L.MOTOR_2016 if version == C.V2016 else L.MOTOR_2025


def decode_drive_motors(data: bytes, offset: int, version: int) -> tuple[DriveMotors, int]:
    """Motor count, then 12 (2016) or 10 (2025) bytes per motor."""
    spec = _motor_spec(version)
    count, offset = _count_items(data, offset, 1, "motor")
    _need(data, offset, count * sum(f.size for f in spec), "motors")
    motors = []
    for _ in range(count):
        values: dict[str, Any] = {}
        quality: dict[str, str] = {}
        offset = _decode_fields(data, offset, spec, values, quality)
        motors.append(Motor(**values, quality=quality))
    return DriveMotors(motors=motors), offset


def encode_drive_motors(block: DriveMotors, version: int) -> bytes:
    """Drive motors without the type byte."""
    spec = _motor_spec(version)
    parts = [_put(len(block.motors), 1, "motor count")]
    parts += [_encode_fields(m, spec, m.quality) for m in block.motors]
    return b"".join(parts)


# --------------------------------------------------------------------------- 0x03 fuel cell


def _counted(
    data: bytes, offset: int, count_size: int, item_size: int, what: str
) -> tuple[bytes, int]:
    """A count of ``count_size`` bytes followed by that many items, returned raw."""
    count, offset = _count_items(data, offset, count_size, what)
    return _take(data, offset, count * item_size, what), offset + count * item_size


def _put_counted(raw: bytes, count_size: int, item_size: int, what: str) -> bytes:
    if len(raw) % item_size:
        raise ProtocolError(Reason.BAD_VALUE, f"{what}: {len(raw)} bytes, not whole items")
    return _put(len(raw) // item_size, count_size, f"{what} count") + raw


def decode_fuel_cell(data: bytes, offset: int, version: int) -> tuple[FuelCell, int]:
    """2016 fuel cell (probe count WORD + probe BYTEs in the middle)."""
    values: dict[str, Any] = {}
    quality: dict[str, str] = {}
    offset = _decode_fields(data, offset, L.FUEL_CELL_HEAD, values, quality)
    values["temps_raw"], offset = _counted(data, offset, 2, 1, "fuel-cell probes")
    offset = _decode_fields(data, offset, L.FUEL_CELL_TAIL, values, quality)
    return FuelCell(**values, quality=quality), offset


def encode_fuel_cell(block: FuelCell, version: int) -> bytes:
    """2016 fuel cell without the type byte."""
    q = block.quality
    return (
        _encode_fields(block, L.FUEL_CELL_HEAD, q)
        + _put_counted(block.temps_raw, 2, 1, "fuel-cell probes")
        + _encode_fields(block, L.FUEL_CELL_TAIL, q)
    )


def decode_fuel_cell_engine(data: bytes, offset: int, version: int) -> tuple[FuelCellEngine, int]:
    """2025 fuel-cell engine and hydrogen system."""
    values: dict[str, Any] = {}
    quality: dict[str, str] = {}
    offset = _decode_fields(data, offset, L.FUEL_CELL_ENGINE, values, quality)
    return FuelCellEngine(**values, quality=quality), offset


def encode_fuel_cell_engine(block: FuelCellEngine, version: int) -> bytes:
    """2025 fuel-cell engine without the type byte."""
    return _encode_fields(block, L.FUEL_CELL_ENGINE, block.quality)


# --------------------------------------------------------------------------- 0x04 engine


def _engine_spec(version: int) -> tuple[Field, ...]:
    return L.ENGINE_2016 if version == C.V2016 else L.ENGINE_2025


def decode_engine(data: bytes, offset: int, version: int) -> tuple[Engine, int]:
    """Engine: state, crank speed, consumption (2016) or crank speed only (2025)."""
    values: dict[str, Any] = {}
    quality: dict[str, str] = {}
    offset = _decode_fields(data, offset, _engine_spec(version), values, quality)
    return Engine(**values, quality=quality), offset


def encode_engine(block: Engine, version: int) -> bytes:
    """Engine without the type byte."""
    return _encode_fields(block, _engine_spec(version), block.quality)


# --------------------------------------------------------------------------- 0x05 position

_COORDS: Final = (Field("lon", 4, 1_000_000), Field("lat", 4, 1_000_000))


def decode_position(data: bytes, offset: int, version: int) -> tuple[Position, int]:
    """Status byte, (2025: coordinate system), lon, lat; south/west bits become signs."""
    values: dict[str, Any] = {}
    quality: dict[str, str] = {}
    status = _uint(data, offset, 1, "position status")
    offset += 1
    if version == C.V2025:
        offset = _decode_fields(data, offset, (Field("coord_system", 1),), values, quality)
    offset = _decode_fields(data, offset, _COORDS, values, quality)
    if status & 0x04 and values["lon"] is not None:
        values["lon"] = -values["lon"]
    if status & 0x02 and values["lat"] is not None:
        values["lat"] = -values["lat"]
    return Position(status=status, **values, quality=quality), offset


def encode_position(block: Position, version: int) -> bytes:
    """Position without the type byte (signs are dropped: the status byte carries them)."""
    out = _put(block.status, 1, "status")
    if version == C.V2025:
        out += _encode_fields(block, (Field("coord_system", 1),), block.quality)
    for f in _COORDS:
        value = getattr(block, f.name)
        if value is None:
            bad = block.quality.get(f.name) == ABNORMAL
            out += _put(0xFFFFFFFE if bad else 0xFFFFFFFF, 4, f.name)
        else:
            out += _put(round(abs(value) * f.div), 4, f.name)
    return out


# --------------------------------------------------------------------------- 0x06 extremes (2016)


def decode_extremes(data: bytes, offset: int, version: int) -> tuple[Extremes, int]:
    """2016 extreme values (14 bytes)."""
    values: dict[str, Any] = {}
    quality: dict[str, str] = {}
    offset = _decode_fields(data, offset, L.EXTREMES, values, quality)
    return Extremes(**values, quality=quality), offset


def encode_extremes(block: Extremes, version: int) -> bytes:
    """2016 extreme values without the type byte."""
    return _encode_fields(block, L.EXTREMES, block.quality)


# --------------------------------------------------------------------------- alarm

_FAULT_LISTS: Final = ("battery_faults", "motor_faults", "engine_faults", "other_faults")


def _decode_list(
    data: bytes, offset: int, name: str, item: int, quality: dict[str, str]
) -> tuple[bytes | None, int]:
    """Count BYTE + items; a count of 0xFE / 0xFF means no list (None + quality)."""
    count = _uint(data, offset, 1, f"{name} count")
    offset += 1
    if count in C.NO_LIST_COUNTS:
        quality[name] = ABNORMAL if count == 0xFE else INVALID
        return None, offset
    return _take(data, offset, count * item, name), offset + count * item


def decode_alarm(data: bytes, offset: int, version: int) -> tuple[Alarm, int]:
    """Alarm level, general flags, four fault-code lists, (2025) per-bit levels."""
    values: dict[str, Any] = {}
    quality: dict[str, str] = {}
    offset = _decode_fields(data, offset, (Field("level", 1),), values, quality)
    values["flags"] = _uint(data, offset, 4, "alarm flags")
    offset += 4
    for name in _FAULT_LISTS:
        raw, offset = _decode_list(data, offset, name, 4, quality)
        values[name] = (
            None
            if raw is None
            else [int.from_bytes(raw[i : i + 4], "big") for i in range(0, len(raw), 4)]
        )
    if version == C.V2025:
        raw, offset = _decode_list(data, offset, "bit_levels", 2, quality)
        values["bit_levels"] = (
            None if raw is None else [(raw[i], raw[i + 1]) for i in range(0, len(raw), 2)]
        )
    return Alarm(**values, quality=quality), offset


def _encode_list(items: list[bytes] | None, name: str, quality: dict[str, str]) -> bytes:
    if items is None:
        return bytes((0xFE if quality.get(name) == ABNORMAL else 0xFF,))
    if len(items) >= 0xFE:
        raise ProtocolError(Reason.BAD_VALUE, f"{name}: {len(items)} items, at most 253")
    return bytes((len(items),)) + b"".join(items)


def encode_alarm(block: Alarm, version: int) -> bytes:
    """Alarm data without the type byte."""
    q = block.quality
    out = _encode_fields(block, (Field("level", 1),), q) + _put(block.flags, 4, "flags")
    for name in _FAULT_LISTS:
        codes: list[int] | None = getattr(block, name)
        items = None if codes is None else [_put(c, 4, name) for c in codes]
        out += _encode_list(items, name, q)
    if version == C.V2025:
        levels = block.bit_levels
        pairs = (
            None if levels is None else [_put(i, 1, "bit") + _put(v, 1, "level") for i, v in levels]
        )
        out += _encode_list(pairs, "bit_levels", q)
    return out


# --------------------------------------------------------------------------- cell voltages

_PACK_V_2016_TAIL: Final = (Field("total_cells", 2), Field("first_cell", 2))


def _pack_head(version: int) -> tuple[Field, ...]:
    return (Field("number", 1), Field("voltage_v", 2, 10), _current("current_a", version))


def decode_cell_voltages(data: bytes, offset: int, version: int) -> tuple[CellVoltages, int]:
    """Pack count, then per pack: number, voltage, current, (2016 total, first), cells."""
    count, offset = _count_items(data, offset, 1, "pack")
    head = _pack_head(version)
    packs = []
    for _ in range(count):
        values: dict[str, Any] = {}
        quality: dict[str, str] = {}
        offset = _decode_fields(data, offset, head, values, quality)
        if version == C.V2016:
            offset = _decode_fields(data, offset, _PACK_V_2016_TAIL, values, quality)
            values["cells_raw"], offset = _counted(data, offset, 1, 2, "cells")
        else:
            values["cells_raw"], offset = _counted(data, offset, 2, 2, "cells")
        packs.append(PackVoltage(**values, quality=quality))
    return CellVoltages(packs=packs), offset


def encode_cell_voltages(block: CellVoltages, version: int) -> bytes:
    """Cell voltages without the type byte."""
    head = _pack_head(version)
    out = bytearray(_put(len(block.packs), 1, "pack count"))
    for p in block.packs:
        out += _encode_fields(p, head, p.quality)
        if version == C.V2016:
            out += _encode_fields(p, _PACK_V_2016_TAIL, p.quality)
            out += _put_counted(p.cells_raw, 1, 2, "cells")
        else:
            out += _put_counted(p.cells_raw, 2, 2, "cells")
    return bytes(out)


# --------------------------------------------------------------------------- temperatures


def decode_battery_temps(data: bytes, offset: int, version: int) -> tuple[BatteryTemps, int]:
    """Pack count, then per pack: number, probe count WORD, probe BYTEs."""
    count, offset = _count_items(data, offset, 1, "pack")
    packs = []
    for _ in range(count):
        values: dict[str, Any] = {}
        quality: dict[str, str] = {}
        offset = _decode_fields(data, offset, (Field("number", 1),), values, quality)
        temps, offset = _counted(data, offset, 2, 1, "probes")
        packs.append(PackTemps(**values, temps_raw=temps, quality=quality))
    return BatteryTemps(packs=packs), offset


def encode_battery_temps(block: BatteryTemps, version: int) -> bytes:
    """Probe temperatures without the type byte."""
    out = bytearray(_put(len(block.packs), 1, "pack count"))
    for p in block.packs:
        out += _encode_fields(p, (Field("number", 1),), p.quality)
        out += _put_counted(p.temps_raw, 2, 1, "probes")
    return bytes(out)


# --------------------------------------------------------------------------- 2025 0x30-0x32


def decode_fuel_cell_stacks(data: bytes, offset: int, version: int) -> tuple[FuelCellStacks, int]:
    """2025 fuel-cell stacks: count, then per stack fixed fields + probe temperatures."""
    count, offset = _count_items(data, offset, 1, "stack")
    stacks = []
    for _ in range(count):
        values: dict[str, Any] = {}
        quality: dict[str, str] = {}
        offset = _decode_fields(data, offset, L.STACK, values, quality)
        values["temps_raw"], offset = _counted(data, offset, 2, 1, "stack probes")
        stacks.append(FuelCellStack(**values, quality=quality))
    return FuelCellStacks(stacks=stacks), offset


def encode_fuel_cell_stacks(block: FuelCellStacks, version: int) -> bytes:
    """2025 fuel-cell stacks without the type byte."""
    out = bytearray(_put(len(block.stacks), 1, "stack count"))
    for s in block.stacks:
        out += _encode_fields(s, L.STACK, s.quality) + _put_counted(s.temps_raw, 2, 1, "probes")
    return bytes(out)


def decode_super_cap(data: bytes, offset: int, version: int) -> tuple[SuperCap, int]:
    """2025 super-capacitor: number, voltage, current, cell WORDs, probe BYTEs."""
    values: dict[str, Any] = {}
    quality: dict[str, str] = {}
    offset = _decode_fields(data, offset, L.SUPER_CAP, values, quality)
    values["cells_raw"], offset = _counted(data, offset, 2, 2, "super-cap cells")
    values["temps_raw"], offset = _counted(data, offset, 2, 1, "super-cap probes")
    return SuperCap(**values, quality=quality), offset


def encode_super_cap(block: SuperCap, version: int) -> bytes:
    """2025 super-capacitor without the type byte."""
    return (
        _encode_fields(block, L.SUPER_CAP, block.quality)
        + _put_counted(block.cells_raw, 2, 2, "cells")
        + _put_counted(block.temps_raw, 2, 1, "probes")
    )


def decode_super_cap_extremes(
    data: bytes, offset: int, version: int
) -> tuple[SuperCapExtremes, int]:
    """2025 super-capacitor extremes (24 bytes)."""
    values: dict[str, Any] = {}
    quality: dict[str, str] = {}
    offset = _decode_fields(data, offset, L.SUPER_CAP_EXTREMES, values, quality)
    return SuperCapExtremes(**values, quality=quality), offset


def encode_super_cap_extremes(block: SuperCapExtremes, version: int) -> bytes:
    """2025 super-capacitor extremes without the type byte."""
    return _encode_fields(block, L.SUPER_CAP_EXTREMES, block.quality)


# --------------------------------------------------------------------------- signature


def decode_signature(data: bytes, offset: int, version: int) -> tuple[Signature, int]:
    """Signature block after its 0xFF marker: algorithm, WORD-len R, WORD-len S."""
    algorithm = _uint(data, offset, 1, "signature algorithm")
    r, offset = _prefixed(data, offset + 1, "signature R")
    s, offset = _prefixed(data, offset, "signature S")
    return Signature(algorithm=algorithm, r=r, s=s), offset


def encode_signature(block: Signature, version: int) -> bytes:
    """Signature block without the 0xFF marker."""
    return (
        _put(block.algorithm, 1, "algorithm")
        + _put_prefixed(block.r, "signature R")
        + _put_prefixed(block.s, "signature S")
    )


# --------------------------------------------------------------------------- realtime body

_Decoder = Callable[[bytes, int, int], tuple[Any, int]]
_Encoder = Callable[[Any, int], bytes]

_BLOCK_DECODERS: Final[dict[int, dict[int, _Decoder]]] = {
    C.V2016: {
        C.INFO16_VEHICLE: decode_vehicle_data,
        C.INFO16_MOTORS: decode_drive_motors,
        C.INFO16_FUEL_CELL: decode_fuel_cell,
        C.INFO16_ENGINE: decode_engine,
        C.INFO16_POSITION: decode_position,
        C.INFO16_EXTREMES: decode_extremes,
        C.INFO16_ALARM: decode_alarm,
        C.INFO16_CELL_VOLTAGES: decode_cell_voltages,
        C.INFO16_TEMPS: decode_battery_temps,
    },
    C.V2025: {
        C.INFO25_VEHICLE: decode_vehicle_data,
        C.INFO25_MOTORS: decode_drive_motors,
        C.INFO25_FUEL_CELL_ENGINE: decode_fuel_cell_engine,
        C.INFO25_ENGINE: decode_engine,
        C.INFO25_POSITION: decode_position,
        C.INFO25_ALARM: decode_alarm,
        C.INFO25_CELL_VOLTAGES: decode_cell_voltages,
        C.INFO25_TEMPS: decode_battery_temps,
        C.INFO25_FUEL_CELL_STACKS: decode_fuel_cell_stacks,
        C.INFO25_SUPER_CAP: decode_super_cap,
        C.INFO25_SUPER_CAP_EXTREMES: decode_super_cap_extremes,
    },
}

_BLOCK_ENCODERS: Final[dict[int, dict[type, tuple[int, _Encoder]]]] = {
    C.V2016: {
        VehicleData: (C.INFO16_VEHICLE, encode_vehicle_data),
        DriveMotors: (C.INFO16_MOTORS, encode_drive_motors),
        FuelCell: (C.INFO16_FUEL_CELL, encode_fuel_cell),
        Engine: (C.INFO16_ENGINE, encode_engine),
        Position: (C.INFO16_POSITION, encode_position),
        Extremes: (C.INFO16_EXTREMES, encode_extremes),
        Alarm: (C.INFO16_ALARM, encode_alarm),
        CellVoltages: (C.INFO16_CELL_VOLTAGES, encode_cell_voltages),
        BatteryTemps: (C.INFO16_TEMPS, encode_battery_temps),
    },
    C.V2025: {
        VehicleData: (C.INFO25_VEHICLE, encode_vehicle_data),
        DriveMotors: (C.INFO25_MOTORS, encode_drive_motors),
        FuelCellEngine: (C.INFO25_FUEL_CELL_ENGINE, encode_fuel_cell_engine),
        Engine: (C.INFO25_ENGINE, encode_engine),
        Position: (C.INFO25_POSITION, encode_position),
        Alarm: (C.INFO25_ALARM, encode_alarm),
        CellVoltages: (C.INFO25_CELL_VOLTAGES, encode_cell_voltages),
        BatteryTemps: (C.INFO25_TEMPS, encode_battery_temps),
        FuelCellStacks: (C.INFO25_FUEL_CELL_STACKS, encode_fuel_cell_stacks),
        SuperCap: (C.INFO25_SUPER_CAP, encode_super_cap),
        SuperCapExtremes: (C.INFO25_SUPER_CAP_EXTREMES, encode_super_cap_extremes),
        Signature: (C.INFO_SIGNATURE, encode_signature),
    },
}


def decode_realtime(data: bytes, offset: int, version: int) -> tuple[RealtimeData, int]:
    """Time, then [info type + block] to the end of the body, in wire order."""
    time, offset = decode_time(data, offset)
    decoders = _BLOCK_DECODERS[version]
    blocks: list[RealtimeBlock] = []
    end = len(data)
    while offset < end:
        info_type = data[offset]
        offset += 1
        decoder = decoders.get(info_type)
        if decoder is not None:
            block, offset = decoder(data, offset, version)
            blocks.append(block)
        elif C.CUSTOM_FIRST <= info_type <= C.CUSTOM_LAST:
            raw, offset = _prefixed(data, offset, f"custom block 0x{info_type:02X}")
            blocks.append(CustomBlock(info_type=info_type, data=raw))
        elif info_type == C.INFO_SIGNATURE and version == C.V2025:
            sig, offset = decode_signature(data, offset, version)
            blocks.append(sig)
            _expect_end(data, offset, "signature block")
        else:
            blocks.append(Unparsed(info_type=info_type, data=bytes(data[offset:end])))
            offset = end
    return RealtimeData(time=time, blocks=blocks), offset


def encode_block(block: RealtimeBlock, version: int) -> bytes:
    """One realtime block with its info-type byte (custom blocks with their length)."""
    if isinstance(block, CustomBlock):
        if not C.CUSTOM_FIRST <= block.info_type <= C.CUSTOM_LAST:
            raise ProtocolError(Reason.BAD_VALUE, f"custom type 0x{block.info_type:02X}")
        return bytes((block.info_type,)) + _put_prefixed(block.data, "custom block")
    if isinstance(block, Unparsed):
        return _put(block.info_type, 1, "info type") + block.data
    entry = _BLOCK_ENCODERS[version].get(type(block))
    if entry is None:
        raise ProtocolError(Reason.BAD_VALUE, f"{type(block).__name__} is not a {version} block")
    info_type, encoder = entry
    return bytes((info_type,)) + encoder(block, version)


def encode_realtime(body: RealtimeData, version: int) -> bytes:
    """Realtime / reissue body."""
    return encode_time(body.time) + b"".join(encode_block(b, version) for b in body.blocks)


# --------------------------------------------------------------------------- login / logout


def decode_time_only(data: bytes, offset: int, version: int) -> tuple[TimeOnly, int]:
    """A body that is only the 6-byte time."""
    time, offset = decode_time(data, offset)
    return TimeOnly(time=time), offset


def encode_time_only(body: TimeOnly, version: int) -> bytes:
    return encode_time(body.time)


def _login_head(data: bytes, offset: int) -> tuple[DeviceTime, int, str, int]:
    time, offset = decode_time(data, offset)
    serial = _uint(data, offset, 2, "login serial")
    iccid, offset = _fixed_text(data, offset + 2, C.ICCID_SIZE, "ICCID")
    return time, serial, iccid, offset


def _codes(data: bytes, offset: int, count: int, size: int, what: str) -> tuple[list[str], int]:
    _need(data, offset, count * size, what)
    codes = [
        decode_text(data[offset + i * size : offset + (i + 1) * size], fixed=True)
        for i in range(count)
    ]
    return codes, offset + count * size


def decode_vehicle_login(
    data: bytes, offset: int, version: int
) -> tuple[VehicleLogin | VehicleLogin2025, int]:
    """Vehicle login 0x01 in either edition."""
    time, serial, iccid, offset = _login_head(data, offset)
    if version == C.V2016:
        n = _uint(data, offset, 1, "subsystem count")
        m = _uint(data, offset + 1, 1, "code length")
        codes, offset = _codes(data, offset + 2, n if m else 0, m, "subsystem codes")
        login = VehicleLogin(
            time=time, serial=serial, iccid=iccid, subsystem_count=n, code_length=m, codes=codes
        )
        return login, offset
    packs_raw, offset = _counted(data, offset, 1, 1, "BMS")
    packs = list(packs_raw)
    pack_codes, offset = _codes(data, offset, sum(packs), C.PACK_CODE_SIZE_2025, "pack codes")
    login25 = VehicleLogin2025(
        time=time, serial=serial, iccid=iccid, packs_per_bms=packs, pack_codes=pack_codes
    )
    return login25, offset


def encode_vehicle_login(body: VehicleLogin | VehicleLogin2025, version: int) -> bytes:
    """Vehicle login body of the frame's edition."""
    head = encode_time(body.time) + _put(body.serial, 2, "serial")
    head += encode_text(body.iccid, C.ICCID_SIZE, "ICCID")
    if isinstance(body, VehicleLogin) and version == C.V2016:
        expected = body.subsystem_count if body.code_length else 0
        if len(body.codes) != expected:
            raise ProtocolError(Reason.BAD_VALUE, f"{len(body.codes)} codes, expected {expected}")
        head += _put(body.subsystem_count, 1, "subsystem_count")
        head += _put(body.code_length, 1, "code_length")
        return head + b"".join(encode_text(c, body.code_length, "code") for c in body.codes)
    if isinstance(body, VehicleLogin2025) and version == C.V2025:
        if len(body.pack_codes) != sum(body.packs_per_bms):
            raise ProtocolError(Reason.BAD_VALUE, "pack_codes do not match packs_per_bms")
        head += _put_counted(bytes(body.packs_per_bms), 1, 1, "BMS")
        size = C.PACK_CODE_SIZE_2025
        return head + b"".join(encode_text(c, size, "pack code") for c in body.pack_codes)
    raise ProtocolError(Reason.BAD_VALUE, f"{type(body).__name__} in a {version} frame")


def decode_vehicle_logout(data: bytes, offset: int, version: int) -> tuple[VehicleLogout, int]:
    """Vehicle logout 0x04: time + serial."""
    time, offset = decode_time(data, offset)
    return VehicleLogout(time=time, serial=_uint(data, offset, 2, "serial")), offset + 2


def encode_vehicle_logout(body: VehicleLogout, version: int) -> bytes:
    return encode_time(body.time) + _put(body.serial, 2, "serial")


def decode_platform_logout(data: bytes, offset: int, version: int) -> tuple[PlatformLogout, int]:
    """Platform logout 0x06: time + serial."""
    time, offset = decode_time(data, offset)
    return PlatformLogout(time=time, serial=_uint(data, offset, 2, "serial")), offset + 2


def encode_platform_logout(body: PlatformLogout, version: int) -> bytes:
    return encode_time(body.time) + _put(body.serial, 2, "serial")


def decode_platform_login(data: bytes, offset: int, version: int) -> tuple[PlatformLogin, int]:
    """Platform login 0x05: time, serial, username (12), password (20), encryption rule."""
    time, offset = decode_time(data, offset)
    serial = _uint(data, offset, 2, "serial")
    username, offset = _fixed_text(data, offset + 2, C.USERNAME_SIZE, "username")
    password, offset = _fixed_text(data, offset, C.PASSWORD_SIZE, "password")
    rule = _uint(data, offset, 1, "encryption rule")
    body = PlatformLogin(
        time=time, serial=serial, username=username, password=password, encryption_rule=rule
    )
    return body, offset + 1


def encode_platform_login(body: PlatformLogin, version: int) -> bytes:
    return (
        encode_time(body.time)
        + _put(body.serial, 2, "serial")
        + encode_text(body.username, C.USERNAME_SIZE, "username")
        + encode_text(body.password, C.PASSWORD_SIZE, "password")
        + _put(body.encryption_rule, 1, "encryption_rule")
    )


# --------------------------------------------------------------------------- 2025 security


def decode_activation(data: bytes, offset: int, version: int) -> tuple[Activation, int]:
    """2025 activation 0x09: time, chip id, public key, VIN, signature block (with marker)."""
    time, offset = decode_time(data, offset)
    chip_id, offset = _fixed_text(data, offset, C.CHIP_ID_SIZE, "chip id")
    public_key, offset = _prefixed(data, offset, "public key")
    vin, offset = _fixed_text(data, offset, C.VIN_SIZE, "VIN")
    marker = _uint(data, offset, 1, "signature marker")
    if marker != C.INFO_SIGNATURE:
        raise ProtocolError(Reason.BAD_VALUE, f"signature marker 0x{marker:02X}", offset)
    signature, offset = decode_signature(data, offset + 1, version)
    body = Activation(
        time=time, chip_id=chip_id, public_key=public_key, vin=vin, signature=signature
    )
    return body, offset


def encode_activation(body: Activation, version: int) -> bytes:
    return (
        encode_time(body.time)
        + encode_text(body.chip_id, C.CHIP_ID_SIZE, "chip_id")
        + _put_prefixed(body.public_key, "public key")
        + encode_text(body.vin, C.VIN_SIZE, "vin")
        + bytes((C.INFO_SIGNATURE,))
        + encode_signature(body.signature, version)
    )


def decode_activation_response(
    data: bytes, offset: int, version: int
) -> tuple[ActivationResponse, int]:
    """2025 activation response 0x0A: result, info."""
    result = _uint(data, offset, 1, "result")
    info = _uint(data, offset + 1, 1, "info")
    return ActivationResponse(result=result, info=info), offset + 2


def encode_activation_response(body: ActivationResponse, version: int) -> bytes:
    return _put(body.result, 1, "result") + _put(body.info, 1, "info")


def decode_key_sync(data: bytes, offset: int, version: int) -> tuple[KeySync, int]:
    """2025 key sync 0x0B: algorithm, WORD-len key, start time, end time."""
    algorithm = _uint(data, offset, 1, "algorithm")
    key, offset = _prefixed(data, offset + 1, "key")
    start, offset = decode_time(data, offset)
    end, offset = decode_time(data, offset)
    return KeySync(algorithm=algorithm, key=key, start=start, end=end), offset


def encode_key_sync(body: KeySync, version: int) -> bytes:
    return (
        _put(body.algorithm, 1, "algorithm")
        + _put_prefixed(body.key, "key")
        + encode_time(body.start)
        + encode_time(body.end)
    )


# --------------------------------------------------------------------------- parameters


def decode_param_query(data: bytes, offset: int, version: int) -> tuple[ParamQuery, int]:
    """Parameter query 0x80: time, count, ids."""
    time, offset = decode_time(data, offset)
    ids, offset = _counted(data, offset, 1, 1, "parameter ids")
    return ParamQuery(time=time, ids=list(ids)), offset


def encode_param_query(body: ParamQuery, version: int) -> bytes:
    ids = bytes(_put(i, 1, "parameter id")[0] for i in body.ids)
    return encode_time(body.time) + _put_counted(ids, 1, 1, "parameter ids")


def _param_width(pid: int, version: int, lengths: dict[int, int]) -> tuple[int, bool] | None:
    """(value width, is_int) for ``pid``, or None when it cannot be decoded here."""
    width = C.PARAM_INT_WIDTHS[version].get(pid)
    if width is not None:
        return width, True
    width = C.PARAM_BYTES_WIDTH.get(pid)
    if width is not None:
        return width, False
    length_id = C.PARAM_LENGTH_ID.get(pid)
    if length_id is not None and length_id in lengths:
        return lengths[length_id], False
    return None


def decode_param_values(data: bytes, offset: int, version: int) -> tuple[ParamValues, int]:
    """Parameter set 0x81 / query answer: time, count, (id, value) pairs."""
    time, offset = decode_time(data, offset)
    count = _uint(data, offset, 1, "parameter count")
    offset += 1
    params: list[Param] = []
    lengths: dict[int, int] = {}
    for i in range(count):
        pid = _uint(data, offset, 1, "parameter id")
        spec = _param_width(pid, version, lengths)
        if spec is None:  # unknown id: its width is unknown, keep the rest raw
            rest = bytes(data[offset:])
            body = ParamValues(time=time, params=params, unparsed_count=count - i, unparsed=rest)
            return body, len(data)
        width, is_int = spec
        raw = _take(data, offset + 1, width, f"parameter 0x{pid:02X}")
        offset += 1 + width
        value: int | bytes = int.from_bytes(raw, "big") if is_int else raw
        if isinstance(value, int):
            lengths[pid] = value
        params.append(Param(id=pid, value=value))
    return ParamValues(time=time, params=params), offset


def _encode_param(p: Param, version: int, lengths: dict[int, int]) -> bytes:
    spec = _param_width(p.id, version, lengths)
    if spec is None:
        raise ProtocolError(Reason.BAD_VALUE, f"parameter 0x{p.id:02X} cannot be encoded here")
    width, is_int = spec
    if is_int != isinstance(p.value, int):
        raise ProtocolError(Reason.BAD_VALUE, f"parameter 0x{p.id:02X}: wrong value type")
    if isinstance(p.value, int):
        lengths[p.id] = p.value
        return bytes((p.id,)) + _put(p.value, width, f"parameter 0x{p.id:02X}")
    if len(p.value) != width:
        raise ProtocolError(Reason.BAD_VALUE, f"parameter 0x{p.id:02X}: {width} bytes expected")
    return bytes((p.id,)) + p.value


def encode_param_values(body: ParamValues, version: int) -> bytes:
    lengths: dict[int, int] = {}
    count = len(body.params) + body.unparsed_count
    out = encode_time(body.time) + _put(count, 1, "parameter count")
    return out + b"".join(_encode_param(p, version, lengths) for p in body.params) + body.unparsed


# --------------------------------------------------------------------------- control

_SEP: Final = 0x3B  # ';'


def _upgrade_text(data: bytes, offset: int, what: str) -> tuple[str, int]:
    end = data.find(b";", offset)
    if end < 0:
        raise ProtocolError(Reason.BAD_VALUE, f"upgrade {what}: no ';' separator", offset)
    return decode_text(data[offset:end]), end + 1


def _upgrade_fixed(data: bytes, offset: int, size: int, what: str) -> tuple[bytes, int]:
    raw = _take(data, offset, size + 1, f"upgrade {what}")
    if raw[size] != _SEP:
        raise ProtocolError(Reason.BAD_VALUE, f"upgrade {what}: no ';' separator", offset + size)
    return raw[:size], offset + size + 1


def decode_upgrade_params(data: bytes, offset: int, version: int) -> tuple[UpgradeParams, int]:
    """Control 0x01 parameters: ';'-separated text and fixed-width fields, timeout last."""
    apn, offset = _upgrade_text(data, offset, "APN")
    username, offset = _upgrade_text(data, offset, "username")
    password, offset = _upgrade_text(data, offset, "password")
    ip, offset = _upgrade_fixed(data, offset, C.UPGRADE_IP_SIZE, "IP")
    port, offset = _upgrade_fixed(data, offset, 2, "port")
    manufacturer, offset = _upgrade_fixed(data, offset, C.UPGRADE_MANUFACTURER_SIZE, "maker")
    hardware, offset = _upgrade_fixed(data, offset, C.UPGRADE_VERSION_SIZE, "hardware")
    firmware, offset = _upgrade_fixed(data, offset, C.UPGRADE_VERSION_SIZE, "firmware")
    url, offset = _upgrade_text(data, offset, "URL")
    timeout = _uint(data, offset, 2, "upgrade timeout")
    params = UpgradeParams(
        apn=apn,
        username=username,
        password=password,
        ip=ip,
        port=int.from_bytes(port, "big"),
        manufacturer_id=manufacturer,
        hardware_version=hardware,
        firmware_version=firmware,
        url=url,
        timeout=timeout,
    )
    return params, offset + 2


def _sep_text(text: str, what: str) -> bytes:
    raw = encode_text(text, None, what)
    if b";" in raw:
        raise ProtocolError(Reason.BAD_VALUE, f"upgrade {what} contains ';'")
    return raw + b";"


def _sep_fixed(raw: bytes, size: int, what: str) -> bytes:
    if len(raw) != size:
        raise ProtocolError(Reason.BAD_VALUE, f"upgrade {what} must be {size} bytes")
    return raw + b";"


def encode_upgrade_params(p: UpgradeParams, version: int) -> bytes:
    return (
        _sep_text(p.apn, "apn")
        + _sep_text(p.username, "username")
        + _sep_text(p.password, "password")
        + _sep_fixed(p.ip, C.UPGRADE_IP_SIZE, "ip")
        + _sep_fixed(_put(p.port, 2, "port"), 2, "port")
        + _sep_fixed(p.manufacturer_id, C.UPGRADE_MANUFACTURER_SIZE, "manufacturer_id")
        + _sep_fixed(p.hardware_version, C.UPGRADE_VERSION_SIZE, "hardware_version")
        + _sep_fixed(p.firmware_version, C.UPGRADE_VERSION_SIZE, "firmware_version")
        + _sep_text(p.url, "url")
        + _put(p.timeout, 2, "timeout")
    )


def decode_control(data: bytes, offset: int, version: int) -> tuple[Control, int]:
    """Terminal control 0x82: time, command, parameters (typed for 0x01 and 0x06)."""
    time, offset = decode_time(data, offset)
    command = _uint(data, offset, 1, "control command")
    offset += 1
    params: UpgradeParams | ControlWarning | bytes
    if command == C.CTRL_UPGRADE:
        params, offset = decode_upgrade_params(data, offset, version)
    elif command == C.CTRL_WARNING:
        level = _uint(data, offset, 1, "warning level")
        params = ControlWarning(level=level, message=decode_text(data[offset + 1 :]))
        offset = len(data)
    else:
        params, offset = bytes(data[offset:]), len(data)
    return Control(time=time, command=command, params=params), offset


def encode_control(body: Control, version: int) -> bytes:
    out = encode_time(body.time) + _put(body.command, 1, "command")
    params = body.params
    if body.command == C.CTRL_UPGRADE and isinstance(params, UpgradeParams):
        return out + encode_upgrade_params(params, version)
    if body.command == C.CTRL_WARNING and isinstance(params, ControlWarning):
        return out + _put(params.level, 1, "level") + encode_text(params.message)
    if body.command not in (C.CTRL_UPGRADE, C.CTRL_WARNING) and isinstance(params, bytes):
        return out + params
    raise ProtocolError(Reason.BAD_VALUE, f"control 0x{body.command:02X} with {type(params)}")


# --------------------------------------------------------------------------- body dispatch

_REQUEST_DECODERS: Final[dict[int, _Decoder]] = {
    C.CMD_VEHICLE_LOGIN: decode_vehicle_login,
    C.CMD_REALTIME: decode_realtime,
    C.CMD_REISSUE: decode_realtime,
    C.CMD_VEHICLE_LOGOUT: decode_vehicle_logout,
    C.CMD_PLATFORM_LOGIN: decode_platform_login,
    C.CMD_PLATFORM_LOGOUT: decode_platform_logout,
    C.CMD_PARAM_QUERY: decode_param_query,
    C.CMD_PARAM_SET: decode_param_values,
    C.CMD_CONTROL: decode_control,
}
_DECODERS_2025: Final[dict[int, _Decoder]] = {
    C.CMD_ACTIVATION: decode_activation,
    C.CMD_ACTIVATION_RESPONSE: decode_activation_response,
    C.CMD_KEY_SYNC: decode_key_sync,
}
_EMPTY_COMMANDS: Final = frozenset({C.CMD_HEARTBEAT, C.CMD_TIME_SYNC})


def _body_decoder(command: int, response: int, version: int) -> _Decoder | None:
    """The request-layout decoder of a command, None for an unknown command."""
    if command == C.CMD_PARAM_QUERY and response != C.RESP_COMMAND:
        return decode_param_values  # the terminal's answer carries (id, value) pairs
    decoder = _REQUEST_DECODERS.get(command)
    if decoder is None and version == C.V2025:
        decoder = _DECODERS_2025.get(command)
    return decoder


def decode_body(
    data: bytes, offset: int, version: int, command: int, response: int, encryption: int
) -> Body:
    """The data unit from ``offset`` to the end of ``data`` as a typed body."""
    if encryption in C.ENCRYPTED:
        return RawBody(data=bytes(data[offset:]))
    size = len(data) - offset
    decoder = _body_decoder(command, response, version)
    if command in _EMPTY_COMMANDS or (decoder is not None and response != C.RESP_COMMAND):
        if size == 0:
            return Empty()
        if size == C.TIME_SIZE:
            return decode_time_only(data, offset, version)[0]
        if command in _EMPTY_COMMANDS:
            raise ProtocolError(Reason.TRAILING_BYTES, f"{size} bytes in an empty body", offset)
    if decoder is None:
        return RawBody(data=bytes(data[offset:]))
    body, end = decoder(data, offset, version)
    _expect_end(data, end, f"command 0x{command:02X} body")
    result: Body = body
    return result


_BODY_ENCODERS: Final[dict[type, _Encoder]] = {
    TimeOnly: encode_time_only,
    VehicleLogin: encode_vehicle_login,
    VehicleLogin2025: encode_vehicle_login,
    VehicleLogout: encode_vehicle_logout,
    PlatformLogin: encode_platform_login,
    PlatformLogout: encode_platform_logout,
    RealtimeData: encode_realtime,
    Activation: encode_activation,
    ActivationResponse: encode_activation_response,
    KeySync: encode_key_sync,
    ParamQuery: encode_param_query,
    ParamValues: encode_param_values,
    Control: encode_control,
}


def encode_body(body: Body, version: int) -> bytes:
    """The data unit of a body (``RawBody`` as is, ``Empty`` as nothing)."""
    if isinstance(body, RawBody):
        return bytes(body.data)
    if isinstance(body, Empty):
        return b""
    encoder = _BODY_ENCODERS.get(type(body))
    if encoder is None:
        raise ProtocolError(Reason.BAD_VALUE, f"cannot encode {type(body).__name__}")
    return encoder(body, version)


# --------------------------------------------------------------------------- frames


def _check_frame(frame: bytes) -> int:
    """Validate start, length and BCC; return the version."""
    if len(frame) >= 2 and not (frame[0] == frame[1] and frame[0] in C.VERSION_BY_START_BYTE):
        raise ProtocolError(Reason.BAD_START, f"start bytes {frame[:2].hex()}", 0)
    if len(frame) < C.HEADER_SIZE + 1:
        raise ProtocolError(Reason.TRUNCATED, f"{len(frame)} bytes, a frame has >= 25", len(frame))
    length = int.from_bytes(frame[22:24], "big")
    if length > C.MAX_DATA_LENGTH:
        raise ProtocolError(Reason.BAD_LENGTH, f"data-unit length {length} > 65531", 22)
    expected = C.HEADER_SIZE + length + 1
    if len(frame) < expected:
        raise ProtocolError(Reason.TRUNCATED, f"{len(frame)} bytes, header says {expected}", 22)
    if len(frame) > expected:
        raise ProtocolError(Reason.BAD_LENGTH, f"{len(frame)} bytes, header says {expected}", 22)
    want = bcc(frame[2:-1])
    if want != frame[-1]:
        raise ProtocolError(
            Reason.BAD_CHECKSUM, f"BCC 0x{frame[-1]:02X}, computed 0x{want:02X}", len(frame) - 1
        )
    return C.VERSION_BY_START_BYTE[frame[0]]


def decode_frame(frame: bytes) -> Frame:
    """Decode one whole frame (start bytes to BCC); raises ProtocolError on bad input."""
    frame = bytes(frame)
    try:
        version = _check_frame(frame)
        command, response, encryption = frame[2], frame[3], frame[21]
        vin = decode_text(frame[4:21], fixed=True)
        body = decode_body(frame[:-1], C.HEADER_SIZE, version, command, response, encryption)
    except ProtocolError as exc:
        if exc.raw:
            raise
        raise ProtocolError(exc.reason, exc.message, exc.offset, frame) from None
    return Frame(
        version=version,
        command=command,
        response=response,
        vin=vin,
        encryption=encryption,
        body=body,
    )


def encode_frame(msg: Frame) -> bytes:
    """Encode a Frame: header, data unit, computed length and BCC."""
    start = C.START_BY_VERSION.get(msg.version)
    if start is None:
        raise ProtocolError(Reason.BAD_VALUE, f"version {msg.version} is not 2016 or 2025")
    data = encode_body(msg.body, msg.version)
    if len(data) > C.MAX_DATA_LENGTH:
        raise ProtocolError(Reason.TOO_LARGE, f"data unit of {len(data)} bytes > 65531")
    inner = (
        _put(msg.command, 1, "command")
        + _put(msg.response, 1, "response")
        + encode_text(msg.vin, C.VIN_SIZE, "vin")
        + _put(msg.encryption, 1, "encryption")
        + len(data).to_bytes(2, "big")
        + data
    )
    return start + inner + bytes((bcc(inner),))


# --------------------------------------------------------------------------- stream reader

_START_RE: Final = re.compile(rb"##|\$\$")
_COMPACT_AT: Final = 1 << 16


class FrameReader:
    """Split a byte stream into checked frames and BadFrame reports (sans-IO)."""

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME) -> None:
        self._max = max_frame_size
        self._buf = bytearray()
        self._pos = 0  # start of unconsumed bytes
        self._search = 0  # no start marker begins in [_pos, _search)
        self._quiet = 0  # bytes before this were already reported in a bad-checksum frame

    @property
    def buffered(self) -> int:
        """Bytes held, waiting for more data."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        """Append received bytes (any chunking)."""
        self._buf += data

    def __iter__(self) -> Iterator[bytes | BadFrame]:
        while (event := self.next_event()) is not None:
            yield event

    def next_event(self) -> bytes | BadFrame | None:
        """The next frame or BadFrame, or None when more data is needed."""
        self._compact()
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 2:
            return None
        if buf[pos] == buf[pos + 1] and buf[pos] in C.VERSION_BY_START_BYTE:
            return self._at_start()
        return self._garbage()

    def _compact(self) -> None:
        if self._pos >= _COMPACT_AT and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._search = max(0, self._search - self._pos)
            self._quiet = max(0, self._quiet - self._pos)
            self._pos = 0

    def _consume(self, size: int, reason: Reason | None, message: str) -> bytes | BadFrame:
        pos = self._pos
        raw = bytes(self._buf[pos : pos + size])
        self._pos = pos + size
        if reason is None:
            return raw
        return BadFrame(raw=raw, reason=reason.value, offset=0, message=message)

    def _garbage(self) -> bytes | BadFrame | None:
        """Bytes at _pos that do not start a frame: report them up to the next start marker."""
        buf, pos = self._buf, self._pos
        match = _START_RE.search(buf, max(pos, self._search))
        if match is None:
            self._search = len(buf) - 1  # the last byte may begin a marker
            if len(buf) - pos < self._max:
                return None
            end = len(buf) - 1
        else:
            end = match.start()
        quiet_end = min(end, max(pos, self._quiet))
        self._pos = quiet_end  # bytes already reported inside a bad-checksum frame
        if quiet_end == end:
            return self.next_event()
        return self._consume(end - quiet_end, Reason.GARBAGE, "bytes between frames")

    def _at_start(self) -> bytes | BadFrame | None:
        buf, pos = self._buf, self._pos
        if len(buf) - pos >= 3 and buf[pos + 2] in C.VERSION_BY_START_BYTE:
            # "###" / "$$$": commands 0x23/0x24 are reserved, so the frame starts later
            self._search = pos + 1
            return self._garbage()
        if len(buf) - pos < C.HEADER_SIZE:
            return None
        length = (buf[pos + 22] << 8) | buf[pos + 23]
        if length > C.MAX_DATA_LENGTH:
            return self._consume(2, Reason.BAD_LENGTH, f"data-unit length {length} > 65531")
        total = C.HEADER_SIZE + length + 1
        if total > self._max:
            return self._consume(2, Reason.TOO_LARGE, f"frame of {total} bytes > {self._max}")
        if len(buf) - pos < total:
            return None
        if bcc(buf[pos + 2 : pos + total - 1]) != buf[pos + total - 1]:
            raw = bytes(buf[pos : pos + total])
            self._pos = pos + 1  # it may have been a false start: rescan from the next byte
            self._quiet = max(self._quiet, pos + total)
            return BadFrame(
                raw=raw, reason=Reason.BAD_CHECKSUM.value, offset=total - 1, message="BCC mismatch"
            )
        return self._consume(total, None, "")
