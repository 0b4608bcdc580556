"""GB/T 32960 frames from one edition to the other (2016 <-> 2025), for an upstream platform of
another edition than the vehicle's: ``decode_frame`` -> :func:`convert` -> ``encode_frame``.

Values travel in human units, so a field that exists in both editions keeps its value even
where the wire layout differs (current offsets -1000 A / -3000 A, motor speed and torque
offsets and widths, the 2025 motor DWORD torque). A value the target's field cannot hold
becomes a sentinel (None, quality ``invalid``). Every field the target has and the source
lacks is None with quality ``invalid`` (sent as the invalid sentinel), so the result
round-trips through the target's codec unchanged.

2016 -> 2025, dropped (no 2025 counterpart):

* whole-vehicle data: accelerator pedal, brake pedal / brake-on; gear byte bits 6-7 (reserved
  in 2016, bit 7 means "gear invalid" in 2025) are cleared;
* drive motors: controller input voltage and DC bus current;
* fuel cell (0x03): voltage, current, hydrogen consumption, probe temperatures, the maximum
  hydrogen concentration (2025's unit is uncertain); kept as 2025 0x03: maximum hydrogen
  temperature and its probe, maximum pressure and its sensor, concentration sensor, DC/DC state;
* engine: state and fuel consumption (2025 keeps the crankshaft speed only);
* extreme values (0x06): 2025 has no such block;
* cell voltages: total cell count and first-cell index (a 2016 frame carrying part of a
  large pack becomes a 2025 pack of just the cells carried);
* alarm flag bits 19-31 (reserved in 2016; they name other alarms in 2025); 2025's per-bit
  levels are sent as an empty list;
* login: subsystem codes longer than 24 characters are cut to 24; without codes (length 0)
  the 2025 login names no BMS.

Added: the 2025 position's coordinate system is 1 (WGS-84), the system GB/T 32960-2016 uses.

2025 -> 2016, dropped:

* position: the coordinate system (coordinates pass as sent; GCJ-02 is not transformed);
* alarm flag bits 19-27 (motor over-speed/over-current, super-capacitor, thermal event,
  hydrogen alarms: 2016 has no bits for them; the highest alarm level still says how bad)
  and the per-bit levels;
* fuel-cell stacks (0x30), super-capacitor data and extremes (0x31, 0x32), the signature;
  from the 2025 0x03 block the hydrogen remaining and the DC/DC controller temperature;
* login: pack codes beyond 250 (2016 counts subsystems in a BYTE).

An abnormal / invalid insulation resistance is sent as 0xFFFE / 0xFFFF, which 2016 reads as a
value (it defines no sentinel there; 2016 -> 2025 reads those two back as sentinels).

Added: the 2016 extreme values (0x06) are computed from the frame's cell voltages and probe
temperatures (subsystem = pack number, cell / probe number = 1-based index in the pack, None
above 250); 2016 packs of more than 200 cells are split into several entries with the same
pack number and increasing first-cell index.

Both ways: unparsed blocks (an unknown info type, so an unknown length) are dropped, since
their bytes could mean something else in the other edition; custom blocks (0x80-0xFE) and
probe temperatures pass unchanged. Encrypted bodies cannot be converted
(:class:`ConversionError`). The caller may pass a list as ``dropped`` to learn what was lost.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.codecs import gbt32960 as gbt
from gateway.codecs.common import ABNORMAL, INVALID
from gateway.codecs.gbt32960 import constants as C
from gateway.codecs.gbt32960 import layouts as L
from gateway.codecs.gbt32960.layouts import Field

V2016, V2025 = C.V2016, C.V2025
_FLAGS_2016 = (1 << 19) - 1  # general-alarm bits 0-18: the 2016 set
_MAX_CELLS_2016 = 200  # cells per pack entry in a 2016 frame (BYTE count, 1-200)
_MAX_INDEX_2016 = 250  # subsystem / cell / probe numbers are BYTEs 1-250 in 2016 extremes
_MAX_CODES_2016 = 250


class ConversionError(ValueError):
    """The frame cannot be converted (an encrypted body, a command that is not relayed)."""


def convert(frame: gbt.Frame, version: int, dropped: list[str] | None = None) -> gbt.Frame:
    """``frame`` as the ``version`` edition would carry it (itself when already so)."""
    if version not in (V2016, V2025):
        raise ConversionError(f"version {version} is not 2016 or 2025")
    if frame.version == version:
        return frame
    lost: list[str] = [] if dropped is None else dropped
    body = _convert_body(frame.body, version, lost)
    return msgspec.structs.replace(frame, version=version, body=body)


def _convert_body(body: gbt.Body, version: int, lost: list[str]) -> gbt.Body:
    if isinstance(body, gbt.RawBody):
        raise ConversionError("an encrypted or undecodable body cannot be converted")
    if isinstance(body, gbt.RealtimeData):
        blocks = _blocks_2025(body.blocks, lost) if version == V2025 else _blocks_2016(body, lost)
        return gbt.RealtimeData(time=body.time, blocks=blocks)
    if isinstance(body, gbt.VehicleLogin):
        return _login_2025(body, lost)
    if isinstance(body, gbt.VehicleLogin2025):
        return _login_2016(body, lost)
    if isinstance(
        body,
        gbt.VehicleLogout | gbt.TimeOnly | gbt.Empty | gbt.PlatformLogin | gbt.PlatformLogout,
    ):
        return body  # the same layout in both editions
    raise ConversionError(f"{type(body).__name__} is not converted between editions")


# --------------------------------------------------------------------------- shared helpers


def _fits(value: float | int | None, f: Field) -> bool:
    """True when ``value`` encodes into ``f`` below its sentinels (None always fits)."""
    if value is None:
        return True
    raw = round(value * f.div) + f.offset if f.div else int(value) + f.offset
    return 0 <= raw < C.SENTINELS[f.size][0]


def _fit(values: dict[str, Any], quality: dict[str, str], spec: tuple[Field, ...]) -> None:
    """Turn the values of ``spec`` that the target cannot hold into invalid sentinels."""
    for f in spec:
        if f.name in values and not _fits(values[f.name], f):
            values[f.name] = None
            quality[f.name] = INVALID


def _fields(block: msgspec.Struct) -> dict[str, Any]:
    return {name: getattr(block, name) for name in block.__struct_fields__}


def _drop(
    values: dict[str, Any], names: tuple[str, ...], what: str, lost: list[str]
) -> dict[str, str]:
    """Remove ``names`` from ``values`` (noting those that carried a value); the quality map
    without them."""
    quality = {k: v for k, v in values["quality"].items() if k not in names}
    for name in names:
        if values.pop(name, None) is not None:
            lost.append(f"{what}.{name}")
    return quality


def _invalid(values: dict[str, Any], quality: dict[str, str], names: tuple[str, ...]) -> None:
    """Fields the target has and the source lacks: None, quality invalid."""
    for name in names:
        values[name] = None
        quality[name] = INVALID


def _current(name: str, version: int) -> Field:
    return Field(name, 2, 10, C.CURRENT_OFFSET_RAW[version])


def _motor(m: gbt.Motor, version: int, lost: list[str]) -> gbt.Motor:
    values = _fields(m)
    spec: tuple[Field, ...]
    if version == V2025:
        quality = _drop(values, ("voltage_v", "current_a"), "motor", lost)
        spec = L.MOTOR_2025
    else:
        quality = dict(m.quality)
        _invalid(values, quality, ("voltage_v", "current_a"))
        spec = L.MOTOR_2016
    _fit(values, quality, spec)
    values["quality"] = quality
    return gbt.Motor(**values)


def _pack_voltage(p: gbt.PackVoltage, version: int, lost: list[str]) -> list[gbt.PackVoltage]:
    values = _fields(p)
    current = _current("current_a", version)
    if version == V2025:
        quality = _drop(values, ("total_cells", "first_cell"), "cell_voltages", lost)
        _fit(values, quality, (current,))
        values["quality"] = quality
        return [gbt.PackVoltage(**values)]
    quality = dict(p.quality)
    _fit(values, quality, (current,))
    values["quality"] = quality
    raw, n = p.cells_raw, p.cell_count
    return [
        gbt.PackVoltage(
            **{
                **values,
                "cells_raw": raw[start * 2 : (start + _MAX_CELLS_2016) * 2],
                "total_cells": n,
                "first_cell": start + 1,
            }
        )
        for start in range(0, max(n, 1), _MAX_CELLS_2016)
    ]


# --------------------------------------------------------------------------- 2016 -> 2025


def _blocks_2025(blocks: list[gbt.RealtimeBlock], lost: list[str]) -> list[gbt.RealtimeBlock]:
    out: list[gbt.RealtimeBlock] = []
    for block in blocks:
        if isinstance(block, gbt.VehicleData):
            out.append(_vehicle_2025(block, lost))
        elif isinstance(block, gbt.DriveMotors):
            out.append(gbt.DriveMotors(motors=[_motor(m, V2025, lost) for m in block.motors]))
        elif isinstance(block, gbt.FuelCell):
            out.append(_fuel_cell_2025(block, lost))
        elif isinstance(block, gbt.Engine):
            values = _fields(block)
            values["quality"] = _drop(values, ("state", "consumption_l_100km"), "engine", lost)
            out.append(gbt.Engine(**values))
        elif isinstance(block, gbt.Position):
            out.append(msgspec.structs.replace(block, coord_system=1))
        elif isinstance(block, gbt.Alarm):
            out.append(_alarm(block, V2025, lost))
        elif isinstance(block, gbt.CellVoltages):
            packs = [q for p in block.packs for q in _pack_voltage(p, V2025, lost)]
            out.append(gbt.CellVoltages(packs=packs))
        elif isinstance(block, gbt.BatteryTemps | gbt.CustomBlock):
            out.append(block)
        else:  # Extremes, Unparsed, and blocks a 2016 frame cannot carry
            lost.append(type(block).__name__)
    return out


def _vehicle_2025(v: gbt.VehicleData, lost: list[str]) -> gbt.VehicleData:
    values = _fields(v)
    quality = _drop(values, ("accel_pct", "brake_pct", "brake_on"), "vehicle", lost)
    values["gear_byte"] = v.gear_byte & 0x3F
    if v.insulation_kohm is not None and v.insulation_kohm >= 0xFFFE:
        # 2016 defines no sentinel here, 2025 does: 0xFFFE / 0xFFFF are markers, not values.
        values["insulation_kohm"] = None
        quality["insulation_kohm"] = INVALID
    _fit(values, quality, (_current("total_current_a", V2025),))
    values["quality"] = quality
    return gbt.VehicleData(**values)


def _fuel_cell_2025(f: gbt.FuelCell, lost: list[str]) -> gbt.FuelCellEngine:
    for name in ("voltage_v", "current_a", "consumption_kg_100km", "h2_max_conc_ppm"):
        if getattr(f, name) is not None:
            lost.append(f"fuel_cell.{name}")
    if f.temps_raw:
        lost.append("fuel_cell.temps")
    kept = ("h2_max_temp_probe", "h2_max_conc_sensor", "h2_max_pressure_mpa")
    values: dict[str, Any] = {name: getattr(f, name) for name in kept}
    values["h2_max_pressure_sensor"] = f.h2_max_pressure_sensor
    values["dcdc_state"] = f.dcdc_state
    values["h2_max_temp_c"] = None if f.h2_max_temp_c is None else round(f.h2_max_temp_c)
    quality = {k: v for k, v in f.quality.items() if k in values}
    _invalid(values, quality, ("h2_max_conc", "h2_remaining_pct", "dcdc_temp_c"))
    _fit(values, quality, L.FUEL_CELL_ENGINE)
    return gbt.FuelCellEngine(**values, quality=quality)


def _alarm(a: gbt.Alarm, version: int, lost: list[str]) -> gbt.Alarm:
    flags = a.flags & _FLAGS_2016
    if flags != a.flags:
        lost.append("alarm.flags")
    quality = {k: v for k, v in a.quality.items() if k != "bit_levels"}
    if version == V2025:
        return msgspec.structs.replace(a, flags=flags, bit_levels=[], quality=quality)
    if a.bit_levels:
        lost.append("alarm.bit_levels")
    return msgspec.structs.replace(a, flags=flags, bit_levels=None, quality=quality)


def _login_2025(login: gbt.VehicleLogin, lost: list[str]) -> gbt.VehicleLogin2025:
    size = C.PACK_CODE_SIZE_2025
    if any(len(c) > size for c in login.codes):
        lost.append("login.codes")
    codes = [c[:size] for c in login.codes]
    return gbt.VehicleLogin2025(
        time=login.time,
        serial=login.serial,
        iccid=login.iccid,
        packs_per_bms=[1] * len(codes),
        pack_codes=codes,
    )


# --------------------------------------------------------------------------- 2025 -> 2016


def _blocks_2016(body: gbt.RealtimeData, lost: list[str]) -> list[gbt.RealtimeBlock]:
    out: list[gbt.RealtimeBlock] = []
    extremes = _extremes(body.blocks)
    for block in body.blocks:
        if extremes is not None and isinstance(
            block, gbt.Alarm | gbt.CellVoltages | gbt.BatteryTemps | gbt.CustomBlock
        ):
            out.append(extremes)  # where 2016 puts 0x06: after the position, before 0x07
            extremes = None
        if isinstance(block, gbt.VehicleData):
            out.append(_vehicle_2016(block))
        elif isinstance(block, gbt.DriveMotors):
            out.append(gbt.DriveMotors(motors=[_motor(m, V2016, lost) for m in block.motors]))
        elif isinstance(block, gbt.FuelCellEngine):
            out.append(_fuel_cell_2016(block, lost))
        elif isinstance(block, gbt.Engine):
            quality = dict(block.quality)
            values = _fields(block)
            _invalid(values, quality, ("state", "consumption_l_100km"))
            values["quality"] = quality
            out.append(gbt.Engine(**values))
        elif isinstance(block, gbt.Position):
            if block.coord_system is not None:
                lost.append("position.coord_system")
            quality = {k: v for k, v in block.quality.items() if k != "coord_system"}
            out.append(msgspec.structs.replace(block, coord_system=None, quality=quality))
        elif isinstance(block, gbt.Alarm):
            out.append(_alarm(block, V2016, lost))
        elif isinstance(block, gbt.CellVoltages):
            packs = [q for p in block.packs for q in _pack_voltage(p, V2016, lost)]
            out.append(gbt.CellVoltages(packs=packs))
        elif isinstance(block, gbt.BatteryTemps | gbt.CustomBlock):
            out.append(block)
        else:  # fuel-cell stacks, super-capacitor, signature, unparsed
            lost.append(type(block).__name__)
    if extremes is not None:
        out.append(extremes)
    return out


def _vehicle_2016(v: gbt.VehicleData) -> gbt.VehicleData:
    values = _fields(v)
    quality = dict(v.quality)
    _invalid(values, quality, ("accel_pct", "brake_pct"))
    values["brake_on"] = None
    values["gear_byte"] = v.gear_byte & 0x3F
    if v.insulation_kohm is None:  # 2016 has no sentinel here: the marker is a plain value
        marker = quality.pop("insulation_kohm", INVALID)
        values["insulation_kohm"] = 0xFFFE if marker == ABNORMAL else 0xFFFF
    _fit(values, quality, (_current("total_current_a", V2016),))
    values["quality"] = quality
    return gbt.VehicleData(**values)


def _fuel_cell_2016(f: gbt.FuelCellEngine, lost: list[str]) -> gbt.FuelCell:
    for name in ("h2_remaining_pct", "dcdc_temp_c", "h2_max_conc"):
        if getattr(f, name) is not None:
            lost.append(f"fuel_cell.{name}")
    values: dict[str, Any] = {
        "h2_max_temp_c": None if f.h2_max_temp_c is None else float(f.h2_max_temp_c),
        "h2_max_temp_probe": f.h2_max_temp_probe,
        "h2_max_conc_sensor": f.h2_max_conc_sensor,
        "h2_max_pressure_mpa": f.h2_max_pressure_mpa,
        "h2_max_pressure_sensor": f.h2_max_pressure_sensor,
        "dcdc_state": f.dcdc_state,
    }
    quality = {k: v for k, v in f.quality.items() if k in values}
    _invalid(values, quality, ("voltage_v", "current_a", "consumption_kg_100km"))
    _invalid(values, quality, ("h2_max_conc_ppm",))
    _fit(values, quality, (*L.FUEL_CELL_HEAD, *L.FUEL_CELL_TAIL))
    return gbt.FuelCell(**values, temps_raw=b"", quality=quality)


def _login_2016(login: gbt.VehicleLogin2025, lost: list[str]) -> gbt.VehicleLogin:
    codes = login.pack_codes[:_MAX_CODES_2016]
    if len(codes) < len(login.pack_codes):
        lost.append("login.pack_codes")
    return gbt.VehicleLogin(
        time=login.time,
        serial=login.serial,
        iccid=login.iccid,
        subsystem_count=len(codes),
        code_length=C.PACK_CODE_SIZE_2025 if codes else 0,
        codes=codes,
    )


def _extremes(blocks: list[gbt.RealtimeBlock]) -> gbt.Extremes | None:
    """2016 extreme values computed from a 2025 frame's cells and probes (None: neither)."""
    cells: list[tuple[float, int | None, int]] = []  # (volts, pack, 1-based cell)
    temps: list[tuple[int, int | None, int]] = []
    for block in blocks:
        if isinstance(block, gbt.CellVoltages):
            for p in block.packs:
                cells += [(v, p.number, i + 1) for i, v in enumerate(p.cells) if v is not None]
        elif isinstance(block, gbt.BatteryTemps):
            for t in block.packs:
                temps += [(c, t.number, i + 1) for i, c in enumerate(t.temps) if c is not None]
    if not cells and not temps:
        return None
    values: dict[str, Any] = {}
    quality: dict[str, str] = {}
    for prefix, pick in (("max_v", max), ("min_v", min)):
        best = pick(cells, key=lambda c: c[0]) if cells else None
        _extreme(values, quality, f"{prefix}_subsystem", f"{prefix}_cell", best)
        values[f"{prefix[:3]}_cell_v"] = best[0] if best else None
    for prefix, pick in (("max_t", max), ("min_t", min)):
        hot = pick(temps, key=lambda c: c[0]) if temps else None
        _extreme(values, quality, f"{prefix}_subsystem", f"{prefix}_probe", hot)
        values[f"{prefix[:3]}_temp_c"] = hot[0] if hot else None
    for name, value in values.items():
        if value is None:
            quality.setdefault(name, INVALID)
    return gbt.Extremes(**values, quality=quality)


def _extreme(
    values: dict[str, Any],
    quality: dict[str, str],
    subsystem: str,
    index: str,
    best: tuple[float, int | None, int] | None,
) -> None:
    pack = best[1] if best else None
    number = best[2] if best else None
    values[subsystem] = pack if pack is not None and 1 <= pack <= _MAX_INDEX_2016 else None
    values[index] = number if number is not None and number <= _MAX_INDEX_2016 else None
