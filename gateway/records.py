"""Normalized record types: what the store writes, the forwarders send and the API returns.

One Struct per hypertable. Times are UTC. A field that the device reported as abnormal or
invalid is None, and ``quality`` maps its name to ``"abnormal"`` or ``"invalid"``.

Cell voltages and probe temperatures stay packed (COPY of bytea is about 13x faster than of
``real[]``): ``cell_voltages`` is the frame's cell WORDs as sent (big-endian, 1 mV units,
0xFFFE/0xFFFF sentinels kept) and ``probe_temps`` the probe BYTEs as sent (1 degC, offset -40,
0xFE/0xFF sentinels kept); min/max/mean columns are computed over the valid values. The SQL
functions ``silkgate_cells(bytea)`` and ``silkgate_temps(bytea)`` unpack them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Motor(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One drive motor as reported in a realtime frame (GB/T 32960 info type 0x02)."""

    number: int
    state: int | None = None
    controller_temp_c: int | None = None
    speed_rpm: int | None = None
    torque_nm: float | None = None
    motor_temp_c: int | None = None
    controller_voltage_v: float | None = None
    controller_current_a: float | None = None
    quality: dict[str, str] = msgspec.field(default_factory=dict)


class CustomBlock(msgspec.Struct, frozen=True, gc=False):
    """A vendor/OEM or unknown block, kept as raw bytes."""

    type: int
    data: bytes


class VehicleRealtime(msgspec.Struct, kw_only=True, gc=False):
    """One wide row per GB/T 32960 realtime (0x02) or reissue (0x03) frame."""

    vin: str
    time: datetime
    version: int  # 2016 or 2025
    reissue: bool = False
    # 0x01 whole-vehicle data
    vehicle_state: int | None = None
    charge_state: int | None = None
    run_mode: int | None = None
    speed_kmh: float | None = None
    odometer_km: float | None = None
    total_voltage_v: float | None = None
    total_current_a: float | None = None
    soc_pct: int | None = None
    dcdc_state: int | None = None
    gear: int | None = None  # 0 neutral, 1-12, 13 reverse, 14 D, 15 P
    braking_force: bool | None = None
    driving_force: bool | None = None
    insulation_kohm: int | None = None
    accelerator_pct: int | None = None
    brake_pct: int | None = None
    brake_on: bool | None = None
    # 0x02 motors
    motors: list[Motor] = msgspec.field(default_factory=list)
    # 0x04 engine
    engine_state: int | None = None
    crank_speed_rpm: int | None = None
    fuel_rate: float | None = None
    # 0x05 position
    lon: float | None = None
    lat: float | None = None
    fix_valid: bool | None = None
    coord_system: int | None = None
    # extremes (2016 0x06)
    max_cell_v: float | None = None
    min_cell_v: float | None = None
    max_temp_c: int | None = None
    min_temp_c: int | None = None
    # alarms (2016 0x07, 2025 0x06)
    alarm_level: int | None = None
    alarm_flags: int | None = None
    fault_count: int | None = None
    # battery voltages and temperatures, packed
    pack_voltage_v: float | None = None
    pack_current_a: float | None = None
    cell_total: int | None = None
    cell_start: int | None = None
    cell_count: int = 0
    cell_voltages: bytes = b""
    cell_v_min: float | None = None
    cell_v_max: float | None = None
    cell_v_mean: float | None = None
    probe_count: int = 0
    probe_temps: bytes = b""
    temp_min_c: int | None = None
    temp_max_c: int | None = None
    temp_mean_c: float | None = None
    # everything else the frame carried (fuel cell, super-capacitor, signature, ...), JSON-able
    extra: dict[str, Any] | None = None
    custom_blocks: list[CustomBlock] = msgspec.field(default_factory=list)
    quality: dict[str, str] = msgspec.field(default_factory=dict)


class Position(msgspec.Struct, kw_only=True, gc=False):
    """A position fix from any protocol (GB/T 32960 0x05, JT/T 808 0x0200 / 0x0704)."""

    device_id: str
    protocol: str  # "gbt32960" or "jt808"
    time: datetime
    lat: float | None
    lon: float | None
    fix_valid: bool
    reissue: bool = False
    altitude_m: int | None = None
    speed_kmh: float | None = None
    heading_deg: int | None = None
    odometer_km: float | None = None
    alarm_flags: int | None = None
    status_flags: int | None = None
    coord_system: int | None = None
    extra: dict[str, Any] | None = None


class Alarm(msgspec.Struct, kw_only=True, gc=False):
    """Alarm state reported with a frame; one record per frame that carries any alarm."""

    device_id: str
    protocol: str
    time: datetime
    level: int | None
    flags: int
    names: list[str]
    fault_codes: dict[str, list[int]] = msgspec.field(default_factory=dict)
    reissue: bool = False


class SessionEvent(msgspec.Struct, kw_only=True, gc=False):
    """Login, logout, registration or authentication of a terminal or platform."""

    device_id: str
    protocol: str
    time: datetime | None
    event: str  # "login", "logout", "platform_login", "platform_logout", "register", "auth", ...
    serial: int | None = None
    detail: dict[str, Any] = msgspec.field(default_factory=dict)


Record = VehicleRealtime | Position | Alarm | SessionEvent
