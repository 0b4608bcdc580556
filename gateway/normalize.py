"""From decoded frames to the normalized records the store writes (gateway.records).

Sans-IO and clock-free: a record whose device sent no time (JT/T 808 registration and
authentication) gets ``time=None`` and the pipeline stamps the receive time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from struct import unpack_from
from typing import Any

from gateway.codecs import gbt32960 as gbt
from gateway.codecs import jt808 as jt
from gateway.codecs._select import NO_EXTENSIONS_ENV, extensions_disabled
from gateway.codecs.common import DeviceTime
from gateway.codecs.errors import ProtocolError, Reason
from gateway.codecs.gbt32960 import constants as gbt_c
from gateway.codecs.jt808 import constants as jt_c
from gateway.records import (
    Alarm,
    CustomBlock,
    Motor,
    Position,
    Record,
    SessionEvent,
    VehicleRealtime,
)

GBT = "gbt32960"
JT808 = "jt808"


def normalize(frame: gbt.Frame | jt.Frame) -> list[Record]:
    """The records one decoded frame yields (none for heartbeats, responses, commands)."""
    if isinstance(frame, gbt.Frame):
        return normalize_gbt32960(frame)
    return normalize_jt808(frame)


# --------------------------------------------------------------------------- GB/T 32960


def records_from_frame(frame: bytes) -> list[Record]:
    """The records of one raw GB/T 32960 frame: ``normalize(gbt32960.decode_frame(frame))``.

    Realtime and reissue frames take the fused Cython fast path ``gateway._fastnorm`` (bytes
    straight to records, equal results, the same ProtocolError on bad input) unless
    ``SILKGATE_NO_EXTENSIONS=1``. A missing extension is an ImportError, never a silent
    fall-back to pure Python.
    """
    impl = _records_impl or _load_records_impl()
    return impl(frame)


def _records_python(frame: bytes) -> list[Record]:
    return normalize_gbt32960(gbt.decode_frame(frame))


_records_impl: Callable[[bytes], list[Record]] | None = None


def _load_records_impl() -> Callable[[bytes], list[Record]]:
    """Pick the implementation of records_from_frame once (gateway.codecs._select rules)."""
    global _records_impl
    if extensions_disabled():
        _records_impl = _records_python
        return _records_impl
    try:
        from gateway import _fastnorm
    except ImportError as exc:
        raise ImportError(
            f"the Cython extension gateway._fastnorm is not built ({exc}); reinstall silkgate "
            f"with a C compiler, or set {NO_EXTENSIONS_ENV}=1 to run the pure-Python reference"
        ) from exc
    _records_impl = _fastnorm.realtime_records
    return _records_impl


def records_implementation() -> str:
    """``"cython"`` or ``"python"``: what records_from_frame runs."""
    impl = _records_impl or _load_records_impl()
    return "python" if impl is _records_python else "cython"


def normalize_gbt32960(frame: gbt.Frame) -> list[Record]:
    """Records of a GB/T 32960 frame sent by a vehicle or platform (responses yield none)."""
    if frame.response != gbt_c.RESP_COMMAND:
        return []
    body = frame.body
    if isinstance(body, gbt.RealtimeData):
        return _gbt_realtime(frame, body)
    handler = _GBT_SESSION_EVENTS.get(type(body))
    if handler is None:
        return []
    event, detail = handler(body)
    return [
        SessionEvent(
            device_id=frame.vin,
            protocol=GBT,
            time=_utc(getattr(body, "time")),  # noqa: B009  every handled body has a time
            event=event,
            serial=getattr(body, "serial", None),
            detail=detail,
        )
    ]


def _login_2016(b: Any) -> tuple[str, dict[str, Any]]:
    return "login", {"iccid": b.iccid, "subsystem_count": b.subsystem_count, "codes": b.codes}


def _login_2025(b: Any) -> tuple[str, dict[str, Any]]:
    return "login", {"iccid": b.iccid, "packs_per_bms": b.packs_per_bms, "pack_codes": b.pack_codes}


def _platform_login(b: Any) -> tuple[str, dict[str, Any]]:
    # The password is a credential: never copied into records.
    return "platform_login", {"username": b.username, "encryption_rule": b.encryption_rule}


def _activation(b: Any) -> tuple[str, dict[str, Any]]:
    return "activation", {"chip_id": b.chip_id, "vin": b.vin}


_GBT_SESSION_EVENTS: dict[type, Callable[[Any], tuple[str, dict[str, Any]]]] = {
    gbt.VehicleLogin: _login_2016,
    gbt.VehicleLogin2025: _login_2025,
    gbt.VehicleLogout: lambda b: ("logout", {}),
    gbt.PlatformLogin: _platform_login,
    gbt.PlatformLogout: lambda b: ("platform_logout", {}),
    gbt.Activation: _activation,
}


def _utc(t: DeviceTime) -> datetime:
    if t.utc is None:
        raise ProtocolError(Reason.BAD_TIME, f"device time {t.raw.hex()} is not a calendar time")
    return t.utc


class _Realtime:
    """What the blocks of one realtime frame accumulate, in wire order (see ``_gbt_realtime``)."""

    __slots__ = (
        "cells",
        "extra",
        "frame",
        "position",
        "quality",
        "records",
        "reissue",
        "row",
        "temps",
        "time",
    )

    def __init__(self, frame: gbt.Frame, time: datetime) -> None:
        self.frame = frame
        self.time = time
        self.reissue = frame.command == gbt_c.CMD_REISSUE
        self.row = VehicleRealtime(
            vin=frame.vin, time=time, version=frame.version, reissue=self.reissue
        )
        self.quality: dict[str, str] = {}
        self.extra: dict[str, Any] = {}
        self.cells: list[bytes] = []
        self.temps: list[bytes] = []
        self.records: list[Record] = [self.row]
        self.position: Position | None = None


def _gbt_realtime(frame: gbt.Frame, body: gbt.RealtimeData) -> list[Record]:
    acc = _Realtime(frame, _utc(body.time))
    for block in body.blocks:
        handler = _BLOCK_HANDLERS.get(type(block)) or _block_handler(type(block))
        handler(acc, block)
    row, position = acc.row, acc.position
    if position is not None:  # blocks may come in any order: fill in after the loop
        position.speed_kmh, position.odometer_km = row.speed_kmh, row.odometer_km
        position.alarm_flags = row.alarm_flags
    cells, temps = acc.cells, acc.temps
    _cell_stats(row, cells[0] if len(cells) == 1 else b"".join(cells))
    _temp_stats(row, temps[0] if len(temps) == 1 else b"".join(temps))
    row.quality = acc.quality
    row.extra = acc.extra or None
    return acc.records


def _on_vehicle(acc: _Realtime, block: gbt.VehicleData) -> None:
    _vehicle(acc.row, block)
    acc.quality.update(block.quality)


def _on_motors(acc: _Realtime, block: gbt.DriveMotors) -> None:
    acc.row.motors = [_motor(m) for m in block.motors]


def _on_engine(acc: _Realtime, block: gbt.Engine) -> None:
    row = acc.row
    row.engine_state = block.state
    row.crank_speed_rpm = block.crank_rpm
    row.fuel_rate = block.consumption_l_100km
    acc.quality.update({f"engine.{k}": v for k, v in block.quality.items()})


def _on_position(acc: _Realtime, block: gbt.Position) -> None:
    row = acc.row
    row.lon, row.lat = block.lon, block.lat
    row.fix_valid = block.fix_valid
    row.coord_system = block.coord_system
    acc.position = Position(
        device_id=acc.frame.vin,
        protocol=GBT,
        time=acc.time,
        lat=block.lat,
        lon=block.lon,
        fix_valid=block.fix_valid,
        reissue=acc.reissue,
        coord_system=block.coord_system,
    )
    acc.records.append(acc.position)


def _on_extremes(acc: _Realtime, block: gbt.Extremes) -> None:
    row = acc.row
    row.max_cell_v, row.min_cell_v = block.max_cell_v, block.min_cell_v
    row.max_temp_c, row.min_temp_c = block.max_temp_c, block.min_temp_c
    acc.extra["extremes"] = block


def _on_alarm(acc: _Realtime, block: gbt.Alarm) -> None:
    row = acc.row
    lists = (block.battery_faults, block.motor_faults, block.engine_faults, block.other_faults)
    row.alarm_level, row.alarm_flags = block.level, block.flags
    row.fault_count = sum(len(v) for v in lists if v)
    if block.level or block.flags or row.fault_count:
        acc.records.append(_alarm(acc.frame, block, acc.time, acc.reissue))


def _on_cells(acc: _Realtime, block: gbt.CellVoltages) -> None:
    _packs(acc.row, block.packs)
    acc.cells.extend(p.cells_raw for p in block.packs)


def _on_temps(acc: _Realtime, block: gbt.BatteryTemps) -> None:
    acc.temps.extend(p.temps_raw for p in block.packs)


def _on_custom(acc: _Realtime, block: gbt.CustomBlock) -> None:
    acc.row.custom_blocks.append(CustomBlock(block.info_type, block.data))


def _on_unparsed(acc: _Realtime, block: gbt.Unparsed) -> None:
    acc.row.custom_blocks.append(CustomBlock(block.info_type, block.data))
    acc.quality["unparsed"] = f"0x{block.info_type:02X}"


def _on_other(acc: _Realtime, block: Any) -> None:
    """Fuel cell, super-capacitor, signature: kept whole in ``extra``."""
    acc.extra[type(block).__name__] = block


_BlockHandler = Callable[[_Realtime, Any], None]

_BLOCK_HANDLERS: dict[type, _BlockHandler] = {
    gbt.VehicleData: _on_vehicle,
    gbt.DriveMotors: _on_motors,
    gbt.Engine: _on_engine,
    gbt.Position: _on_position,
    gbt.Extremes: _on_extremes,
    gbt.Alarm: _on_alarm,
    gbt.CellVoltages: _on_cells,
    gbt.BatteryTemps: _on_temps,
    gbt.CustomBlock: _on_custom,
    gbt.Unparsed: _on_unparsed,
}
"""Realtime block type -> what it contributes (exact types; subclasses via _block_handler)."""


def _block_handler(tp: type) -> _BlockHandler:
    """The handler of a block type that is not a key of _BLOCK_HANDLERS: its nearest base's."""
    for base in tp.__mro__:
        handler = _BLOCK_HANDLERS.get(base)
        if handler is not None:
            return handler
    return _on_other


def _vehicle(row: VehicleRealtime, v: gbt.VehicleData) -> None:
    row.vehicle_state = v.vehicle_state
    row.charge_state = v.charge_state
    row.run_mode = v.run_mode
    row.speed_kmh = v.speed_kmh
    row.odometer_km = v.odometer_km
    row.total_voltage_v = v.total_voltage_v
    row.total_current_a = v.total_current_a
    row.soc_pct = v.soc_pct
    row.dcdc_state = v.dcdc_state
    gear = v.gear_byte
    row.gear = gear & 0x0F  # VehicleData.gear / braking_force / driving_force, inlined
    row.braking_force = bool(gear & 0x10)
    row.driving_force = bool(gear & 0x20)
    row.insulation_kohm = v.insulation_kohm
    row.accelerator_pct = v.accel_pct
    row.brake_pct = v.brake_pct
    row.brake_on = v.brake_on


def _motor(m: gbt.Motor) -> Motor:
    return Motor(
        number=m.number if m.number is not None else 0,
        state=m.state,
        controller_temp_c=m.controller_temp_c,
        speed_rpm=m.speed_rpm,
        torque_nm=m.torque_nm,
        motor_temp_c=m.temp_c,
        controller_voltage_v=m.voltage_v,
        controller_current_a=m.current_a,
        quality=m.quality,
    )


def _alarm(frame: gbt.Frame, a: gbt.Alarm, time: datetime, reissue: bool) -> Alarm:
    lists = {
        "battery": a.battery_faults,
        "motor": a.motor_faults,
        "engine": a.engine_faults,
        "other": a.other_faults,
    }
    return Alarm(
        device_id=frame.vin,
        protocol=GBT,
        time=time,
        level=a.level,
        flags=a.flags,
        names=gbt_c.alarm_names(a.flags, frame.version),
        fault_codes={k: v for k, v in lists.items() if v},
        reissue=reissue,
    )


def _packs(row: VehicleRealtime, packs: list[gbt.PackVoltage]) -> None:
    if not packs:
        return
    first = packs[0]
    row.pack_voltage_v, row.pack_current_a = first.voltage_v, first.current_a
    row.cell_start = first.first_cell if first.first_cell is not None else 1
    totals = [p.total_cells if p.total_cells is not None else p.cell_count for p in packs]
    row.cell_total = sum(totals)


def _cell_stats(row: VehicleRealtime, raw: bytes) -> None:
    row.cell_voltages = raw
    row.cell_count = count = len(raw) // 2
    if not count:
        return
    words: tuple[int, ...] = unpack_from(f">{count}H", raw)  # one C call, no per-word boxing loop
    hi = max(words)
    # The common case has no sentinel: min/max/sum run over the tuple without filtering.
    valid = words if hi < 0xFFFE else [w for w in words if w < 0xFFFE]
    if valid:
        row.cell_v_min = min(valid) / 1000
        row.cell_v_max = (hi if valid is words else max(valid)) / 1000
        row.cell_v_mean = round(sum(valid) / len(valid) / 1000, 4)


def _temp_stats(row: VehicleRealtime, raw: bytes) -> None:
    row.probe_temps = raw
    row.probe_count = len(raw)
    if not raw:
        return
    hi = max(raw)
    valid: bytes | list[int] = raw if hi < 0xFE else [b for b in raw if b < 0xFE]
    if valid:
        row.temp_min_c = min(valid) - 40
        row.temp_max_c = (hi if valid is raw else max(valid)) - 40
        row.temp_mean_c = round(sum(valid) / len(valid) - 40, 2)


# --------------------------------------------------------------------------- JT/T 808


def normalize_jt808(frame: jt.Frame) -> list[Record]:
    """Records of a JT/T 808 terminal message (platform messages yield none)."""
    body = frame.body
    if isinstance(body, jt.Location):
        return _jt_location(frame, body, reissue=False)
    if isinstance(body, jt.BatchLocation):
        out: list[Record] = []
        for item in body.items:
            out.extend(_jt_location(frame, item, reissue=body.batch_type == 1))
        return out
    event = _jt_session_event(body)
    if event is None:
        return []
    name, detail = event
    return [
        SessionEvent(device_id=frame.phone, protocol=JT808, time=None, event=name, detail=detail)
    ]


def _jt_session_event(body: object) -> tuple[str, dict[str, Any]] | None:
    if isinstance(body, jt.Register):
        return "register", {
            "province": body.province,
            "city": body.city,
            "maker": body.maker,
            "model": body.model,
            "terminal_id": body.terminal_id,
            "plate_color": body.plate_color,
            "plate": body.plate,
        }
    if isinstance(body, jt.Authenticate):
        # The auth code is a credential: never copied into records.
        return "auth", {"imei": body.imei, "software_version": body.software_version}
    if isinstance(body, jt.Logout):
        return "logout", {}
    return None


_JT_EXTRA_SKIP = (jt.Odometer,)


def _jt_location(frame: jt.Frame, loc: jt.Location, *, reissue: bool) -> list[Record]:
    time = _utc(loc.time)
    extra = {
        type(item).__name__ if not isinstance(item, jt.RawItem) else f"0x{item.item_id:02X}": item
        for item in loc.items
        if not isinstance(item, _JT_EXTRA_SKIP)
    }
    records: list[Record] = [
        Position(
            device_id=frame.phone,
            protocol=JT808,
            time=time,
            lat=loc.latitude,
            lon=loc.longitude,
            fix_valid=bool(loc.status_flags & 0x02),
            reissue=reissue,
            altitude_m=loc.altitude_m,
            speed_kmh=loc.speed_kmh,
            heading_deg=loc.direction,
            odometer_km=loc.odometer_km,
            alarm_flags=loc.alarm_flags,
            status_flags=loc.status_flags,
            extra=extra or None,
        )
    ]
    if loc.alarm_flags:
        records.append(
            Alarm(
                device_id=frame.phone,
                protocol=JT808,
                time=time,
                level=None,
                flags=loc.alarm_flags,
                names=jt_c.alarm_names(loc.alarm_flags, frame.version),
                reissue=reissue,
            )
        )
    return records
