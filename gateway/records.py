"""Normalized record types: what the store writes, the forwarders send and the API returns.

One Struct per hypertable. Times are UTC. A field that the device reported as abnormal or
invalid is None, and ``quality`` maps its name to ``"abnormal"`` or ``"invalid"``.

Cell voltages and probe temperatures stay packed (COPY of bytea is about 13x faster than of
``real[]``): ``cell_voltages`` is the frame's cell WORDs as sent (big-endian, 1 mV units,
0xFFFE/0xFFFF sentinels kept) and ``probe_temps`` the probe BYTEs as sent (1 degC, offset -40,
0xFE/0xFF sentinels kept); min/max/mean columns are computed over the valid values. The SQL
functions ``silkgate_cells(bytea)`` and ``silkgate_temps(bytea)`` unpack them.

``received_at`` is when silkgate received the data; the pipeline stamps it (the store uses the
write time when it is None).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

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
    received_at: datetime | None = None  # stamped by the pipeline; the store falls back to now


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
    received_at: datetime | None = None


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
    received_at: datetime | None = None


class SessionEvent(msgspec.Struct, kw_only=True, gc=False):
    """Login, logout, registration or authentication of a terminal or platform."""

    device_id: str
    protocol: str
    time: datetime | None
    event: str  # "login", "logout", "platform_login", "platform_logout", "register", "auth", ...
    serial: int | None = None
    detail: dict[str, Any] = msgspec.field(default_factory=dict)
    received_at: datetime | None = None


class ChargerStatus(msgspec.Struct, kw_only=True, gc=False):
    """A connector's (or the whole charger's) status: OCPP StatusNotification, YKC status.

    ``connector_id`` 0 is the charger itself (OCPP 1.6). OCPP 2.0.1 numbers connectors within an
    EVSE, so ``evse_id`` is part of the identity there; it is None for OCPP 1.6.
    """

    charger_id: str  # charge point identity (OCPP) or pile code (YKC)
    time: datetime
    connector_id: int
    status: str  # "Available", "Preparing", "Charging", "Faulted", ... as the protocol names it
    protocol: str  # "ocpp1.6", "ocpp2.0.1", "ykc"
    evse_id: int | None = None
    error_code: str | None = None  # OCPP 1.6 errorCode ("NoError" kept as sent)
    vendor_error_code: str | None = None
    vendor_id: str | None = None
    info: str | None = None
    station_id: str | None = None
    received_at: datetime | None = None


class MeterValue(msgspec.Struct, kw_only=True, gc=False):
    """One sampled value of an OCPP MeterValues / TransactionEvent (or YKC realtime) message.

    ``value`` is in SI units named by ``unit``: Wh, varh, W, var, A, V, Hz, Celsius, Percent
    (kWh and kW from the device are scaled to Wh and W).
    """

    charger_id: str
    time: datetime
    connector_id: int
    measurand: str  # "Energy.Active.Import.Register", "Power.Active.Import", "SoC", ...
    value: float
    unit: str
    protocol: str
    evse_id: int | None = None
    transaction_id: str | None = None
    phase: str | None = None  # "L1", "L1-N", ... or None
    location: str | None = None  # "Outlet", "EV", "Inlet", "Body", "Cable"
    context: str | None = None  # "Sample.Periodic", "Transaction.Begin", ...
    station_id: str | None = None
    received_at: datetime | None = None


class ChargingSession(msgspec.Struct, kw_only=True, gc=False):
    """A charging transaction event: start, update or stop (OCPP 1.6 Start/StopTransaction,
    OCPP 2.0.1 TransactionEvent Started/Updated/Ended, YKC transaction records).

    ``id_tag`` is whatever the operator's privacy setting produced: the tag hashed
    (``id_tag_hashed=True``) or as given.
    """

    charger_id: str
    transaction_id: str
    time: datetime  # time of this event
    event: str  # "start", "update", "stop"
    protocol: str
    connector_id: int | None = None
    evse_id: int | None = None
    id_tag: str | None = None
    id_tag_hashed: bool = False
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    meter_start_wh: float | None = None
    meter_stop_wh: float | None = None
    energy_wh: float | None = None  # delivered so far (update) or in total (stop)
    soc_start_pct: float | None = None
    soc_pct: float | None = None  # SoC at this event
    stop_reason: str | None = None
    station_id: str | None = None
    extra: dict[str, Any] | None = None
    received_at: datetime | None = None


class ChargerEvent(msgspec.Struct, kw_only=True, gc=False):
    """Something a charger reported or that happened to it, other than status, meter values and
    transactions: boot, security event, firmware / diagnostics / log status, NotifyEvent and
    NotifyReport (2.0.1), DataTransfer, signed meter values, transaction sequence gaps,
    connect and disconnect.

    ``event`` names the kind ("boot", "security_event", "firmware_status", ...); ``key`` tells
    apart events of one kind at the same time (a sequence number, a request id; "" when there is
    none), so a retried message is stored once; ``detail`` holds the message's fields as JSON.
    """

    charger_id: str
    time: datetime
    event: str
    protocol: str
    key: str = ""
    detail: dict[str, Any] | None = None
    station_id: str | None = None
    received_at: datetime | None = None


class SwapEvent(msgspec.Struct, kw_only=True, gc=False):
    """One battery swap at a station: the pack taken out of the vehicle and the pack put in."""

    station_id: str
    time: datetime
    result: str  # "success", "failed", "aborted"
    bay: int | None = None
    swap_id: str | None = None  # the station's own sequence or order number
    vin: str | None = None
    pack_out_id: str | None = None
    pack_out_soc_pct: float | None = None
    pack_out_energy_wh: float | None = None
    pack_in_id: str | None = None
    pack_in_soc_pct: float | None = None
    pack_in_energy_wh: float | None = None
    duration_s: float | None = None
    faults: list[str] = msgspec.field(default_factory=list)
    extra: dict[str, Any] | None = None
    received_at: datetime | None = None


class StationStatus(msgspec.Struct, kw_only=True, gc=False):
    """A swap station's overall state (silkgate swap message ``station_status``)."""

    station_id: str
    time: datetime
    state: str  # "operating", "maintenance", "fault", "offline"
    bays_total: int | None = None
    bays_available: int | None = None  # bays holding a pack ready for a swap
    batteries_charged: int | None = None
    batteries_charging: int | None = None
    power_w: float | None = None  # grid power drawn
    faults: list[str] = msgspec.field(default_factory=list)
    extra: dict[str, Any] | None = None
    received_at: datetime | None = None


class BatteryInventory(msgspec.Struct, kw_only=True, gc=False):
    """One storage bay of a swap station and the pack in it (swap message ``inventory``)."""

    station_id: str
    time: datetime
    bay: int
    state: str  # "empty", "ready", "charging", "waiting", "reserved", "fault", "disabled"
    pack_id: str | None = None
    soc_pct: float | None = None
    soh_pct: float | None = None
    energy_wh: float | None = None  # stored in the pack
    temperature_c: float | None = None
    received_at: datetime | None = None


class BatteryCharging(msgspec.Struct, kw_only=True, gc=False):
    """A pack charging in a swap station's bay (swap message ``charging``)."""

    station_id: str
    time: datetime
    bay: int
    state: str  # "waiting", "charging", "paused", "complete", "fault"
    pack_id: str | None = None
    soc_pct: float | None = None
    power_w: float | None = None
    voltage_v: float | None = None
    current_a: float | None = None  # positive into the pack
    energy_wh: float | None = None  # charged in this charge so far
    temperature_c: float | None = None
    received_at: datetime | None = None


class RawFrame(msgspec.Struct, kw_only=True, gc=False):
    """A frame exactly as received (the compliance archive; device times stay as sent)."""

    frame_id: UUID
    received_at: datetime
    peer: str  # "ip:port" or MQTT client id
    protocol: str
    frame: bytes
    version: str | None = None  # "2016", "2025", "2013", "2019", "1.6", ...
    device_id: str | None = None


class DeadLetter(msgspec.Struct, kw_only=True, gc=False):
    """Input that could not be decoded or normalized, kept raw with the reason."""

    frame_id: UUID
    received_at: datetime
    peer: str
    protocol: str
    reason: str  # the ProtocolError reason code
    message: str
    raw: bytes
    offset: int | None = None
    device_id: str | None = None  # when the adapter knows it (OCPP charger identity, ...)


Record = VehicleRealtime | Position | Alarm | SessionEvent
"""Records normalized from vehicle protocols (GB/T 32960, JT/T 808)."""

ChargeRecord = (
    ChargerStatus
    | MeterValue
    | ChargingSession
    | ChargerEvent
    | SwapEvent
    | StationStatus
    | BatteryInventory
    | BatteryCharging
)
"""Records from chargers and swap stations."""

ArchiveRecord = RawFrame | DeadLetter
"""The raw frame archive and the dead letters."""

StoredRecord = Record | ChargeRecord | ArchiveRecord
"""Everything the store writes."""
