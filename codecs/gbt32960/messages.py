"""msgspec Structs for GB/T 32960.3 frames, both the 2016 ("##") and the 2025 ("$$") editions.

Shared by the pure-Python reference and the Cython accelerator. Conventions:

* every body and realtime block is tagged (``kind`` = class name) so unions encode/decode;
* scaled values are in human units; a sentinel becomes ``None`` and ``quality[field]`` says
  ``"abnormal"`` or ``"invalid"`` (see ``gateway.codecs.common``);
* a field that one edition lacks is ``None`` with no quality entry in frames of the other edition;
* bit fields (gear, position status, alarm flags) are kept as the raw integer, with read-only
  properties for the decoded meaning, so encoding is exact;
* cell voltages and probe temperatures stay packed (``cells_raw`` / ``temps_raw``) with
  properties giving the values.
"""

from __future__ import annotations

import msgspec

from gateway.codecs.common import DeviceTime

__all__ = [
    "Activation",
    "ActivationResponse",
    "Alarm",
    "BatteryTemps",
    "Body",
    "CellVoltages",
    "Control",
    "ControlWarning",
    "CustomBlock",
    "DeviceTime",
    "DriveMotors",
    "Empty",
    "Engine",
    "Extremes",
    "Frame",
    "FuelCell",
    "FuelCellEngine",
    "FuelCellStack",
    "FuelCellStacks",
    "KeySync",
    "Motor",
    "PackTemps",
    "PackVoltage",
    "Param",
    "ParamQuery",
    "ParamValues",
    "PlatformLogin",
    "PlatformLogout",
    "Position",
    "RawBody",
    "RealtimeBlock",
    "RealtimeData",
    "Signature",
    "SuperCap",
    "SuperCapExtremes",
    "TimeOnly",
    "Unparsed",
    "UpgradeParams",
    "VehicleData",
    "VehicleLogin",
    "VehicleLogin2025",
    "VehicleLogout",
]


class _Tagged(msgspec.Struct, frozen=True, gc=False, kw_only=True, tag_field="kind", tag=True):
    """Base of every body and block: frozen, tagged with the class name."""


def _word_values(raw: bytes, scale: int) -> list[float | None]:
    """Big-endian WORDs divided by ``scale``; 0xFFFE / 0xFFFF become None."""
    out: list[float | None] = []
    for i in range(0, len(raw) - 1, 2):
        v = (raw[i] << 8) | raw[i + 1]
        out.append(None if v >= 0xFFFE else v / scale)
    return out


def _byte_temps(raw: bytes) -> list[int | None]:
    """Probe temperature BYTEs in degC (offset -40); 0xFE / 0xFF become None."""
    return [None if b >= 0xFE else b - 40 for b in raw]


# --------------------------------------------------------------------------- generic bodies


class RawBody(_Tagged, frozen=True, gc=False, kw_only=True):
    """A body kept undecoded: encrypted (encryption 0x02-0x05) or of an unknown command."""

    data: bytes


class Empty(_Tagged, frozen=True, gc=False, kw_only=True):
    """An empty data unit (heartbeat, time-sync request, heartbeat response)."""


class TimeOnly(_Tagged, frozen=True, gc=False, kw_only=True):
    """A data unit that is only the 6-byte time (most responses, the time-sync answer)."""

    time: DeviceTime


# --------------------------------------------------------------------------- login / logout


class VehicleLogin(_Tagged, frozen=True, gc=False, kw_only=True):
    """Vehicle login 0x01, 2016 edition.

    ``codes`` holds ``subsystem_count`` codes of ``code_length`` bytes each, or is empty when
    ``code_length`` is 0 (codes not sent).
    """

    time: DeviceTime
    serial: int
    iccid: str
    subsystem_count: int
    code_length: int
    codes: list[str] = []


class VehicleLogin2025(_Tagged, frozen=True, gc=False, kw_only=True):
    """Vehicle login 0x01, 2025 edition: packs per BMS, then sum(packs) 24-byte pack codes."""

    time: DeviceTime
    serial: int
    iccid: str
    packs_per_bms: list[int] = []
    pack_codes: list[str] = []

    @property
    def bms_count(self) -> int:
        """Number of battery management systems."""
        return len(self.packs_per_bms)


class VehicleLogout(_Tagged, frozen=True, gc=False, kw_only=True):
    """Vehicle logout 0x04: time and the current login serial."""

    time: DeviceTime
    serial: int


class PlatformLogin(_Tagged, frozen=True, gc=False, kw_only=True):
    """Platform login 0x05: serial, username (12), password (20), encryption rule."""

    time: DeviceTime
    serial: int
    username: str
    password: str
    encryption_rule: int


class PlatformLogout(_Tagged, frozen=True, gc=False, kw_only=True):
    """Platform logout 0x06: time and serial."""

    time: DeviceTime
    serial: int


# --------------------------------------------------------------------------- 2025 security


class Signature(_Tagged, frozen=True, gc=False, kw_only=True):
    """2025 signature block (marker 0xFF): algorithm (1 SM2, 2 RSA, 3 ECC), R and S."""

    algorithm: int
    r: bytes
    s: bytes


class Activation(_Tagged, frozen=True, gc=False, kw_only=True):
    """2025 activation 0x09: chip id (16), public key, VIN (17) and a signature block."""

    time: DeviceTime
    chip_id: str
    public_key: bytes
    vin: str
    signature: Signature


class ActivationResponse(_Tagged, frozen=True, gc=False, kw_only=True):
    """2025 activation response 0x0A: result (1 ok, 2 fail) and info code."""

    result: int
    info: int


class KeySync(_Tagged, frozen=True, gc=False, kw_only=True):
    """2025 payload key sync 0x0B: algorithm, key, validity start and end times."""

    algorithm: int
    key: bytes
    start: DeviceTime
    end: DeviceTime


# --------------------------------------------------------------------------- parameters


class Param(_Tagged, frozen=True, gc=False, kw_only=True):
    """One (id, value) pair: ``value`` is an int for BYTE/WORD ids, bytes for the others."""

    id: int
    value: int | bytes


class ParamQuery(_Tagged, frozen=True, gc=False, kw_only=True):
    """Parameter query 0x80 (platform to terminal): the ids asked for."""

    time: DeviceTime
    ids: list[int] = []


class ParamValues(_Tagged, frozen=True, gc=False, kw_only=True):
    """Parameter set 0x81, and the terminal's answer to a query 0x80.

    Decoding stops at an unknown id: ``unparsed`` keeps the bytes from that id on, and
    ``unparsed_count`` the number of announced pairs that were not decoded.
    """

    time: DeviceTime
    params: list[Param] = []
    unparsed_count: int = 0
    unparsed: bytes = b""


# --------------------------------------------------------------------------- control


class UpgradeParams(_Tagged, frozen=True, gc=False, kw_only=True):
    """Control 0x01 remote upgrade parameters (``;``-separated on the wire).

    ``ip`` is the 6 raw bytes; ``manufacturer_id`` (4), ``hardware_version`` (5) and
    ``firmware_version`` (5) are kept as raw fixed-width bytes.
    """

    apn: str
    username: str
    password: str
    ip: bytes
    port: int
    manufacturer_id: bytes
    hardware_version: bytes
    firmware_version: bytes
    url: str
    timeout: int


class ControlWarning(_Tagged, frozen=True, gc=False, kw_only=True):
    """Control 0x06 alarm/warning: level and message text."""

    level: int
    message: str


class Control(_Tagged, frozen=True, gc=False, kw_only=True):
    """Terminal control 0x82: command id and its parameters.

    ``params`` is an :class:`UpgradeParams` for command 0x01, a :class:`ControlWarning` for
    0x06 and the raw parameter bytes for every other command.
    """

    time: DeviceTime
    command: int
    params: UpgradeParams | ControlWarning | bytes = b""


# --------------------------------------------------------------------------- realtime blocks


class VehicleData(_Tagged, frozen=True, gc=False, kw_only=True):
    """Info type 0x01, whole-vehicle data.

    ``gear_byte`` is raw (see the properties). ``accel_pct``, ``brake_pct`` and ``brake_on``
    exist in 2016 only; brake byte 0x65 decodes as ``brake_pct=None, brake_on=True``.
    """

    vehicle_state: int | None
    charge_state: int | None
    run_mode: int | None
    speed_kmh: float | None
    odometer_km: float | None
    total_voltage_v: float | None
    total_current_a: float | None
    soc_pct: int | None
    dcdc_state: int | None
    gear_byte: int
    insulation_kohm: int | None
    accel_pct: int | None = None
    brake_pct: int | None = None
    brake_on: bool | None = None
    quality: dict[str, str] = {}

    @property
    def gear(self) -> int:
        """Gear number: 0 neutral, 1-12, 13 reverse, 14 D, 15 P."""
        return self.gear_byte & 0x0F

    @property
    def braking_force(self) -> bool:
        """Bit 4: braking force present."""
        return bool(self.gear_byte & 0x10)

    @property
    def driving_force(self) -> bool:
        """Bit 5: driving force present."""
        return bool(self.gear_byte & 0x20)

    @property
    def gear_invalid(self) -> bool:
        """Bit 7: gear flagged invalid (2025 meaning; reserved in 2016)."""
        return bool(self.gear_byte & 0x80)


class Motor(_Tagged, frozen=True, gc=False, kw_only=True):
    """One drive motor. ``voltage_v`` / ``current_a`` exist in 2016 only."""

    number: int | None
    state: int | None
    controller_temp_c: int | None
    speed_rpm: int | None
    torque_nm: float | None
    temp_c: int | None
    voltage_v: float | None = None
    current_a: float | None = None
    quality: dict[str, str] = {}


class DriveMotors(_Tagged, frozen=True, gc=False, kw_only=True):
    """Info type 0x02, drive motors."""

    motors: list[Motor] = []


class FuelCell(_Tagged, frozen=True, gc=False, kw_only=True):
    """Info type 0x03 in 2016: fuel cell. ``temps_raw`` holds the probe BYTEs as sent."""

    voltage_v: float | None
    current_a: float | None
    consumption_kg_100km: float | None
    temps_raw: bytes
    h2_max_temp_c: float | None
    h2_max_temp_probe: int | None
    h2_max_conc_ppm: int | None
    h2_max_conc_sensor: int | None
    h2_max_pressure_mpa: float | None
    h2_max_pressure_sensor: int | None
    dcdc_state: int | None
    quality: dict[str, str] = {}

    @property
    def temps(self) -> list[int | None]:
        """Probe temperatures in degC."""
        return _byte_temps(self.temps_raw)


class FuelCellEngine(_Tagged, frozen=True, gc=False, kw_only=True):
    """Info type 0x03 in 2025: fuel-cell engine and hydrogen system (layout uncertain).

    ``h2_max_conc`` is the raw WORD divided by 10000.
    """

    h2_max_temp_c: int | None
    h2_max_temp_probe: int | None
    h2_max_conc: float | None
    h2_max_conc_sensor: int | None
    h2_max_pressure_mpa: float | None
    h2_max_pressure_sensor: int | None
    dcdc_state: int | None
    h2_remaining_pct: int | None
    dcdc_temp_c: int | None
    quality: dict[str, str] = {}


class Engine(_Tagged, frozen=True, gc=False, kw_only=True):
    """Info type 0x04, engine. ``state`` and ``consumption_l_100km`` exist in 2016 only."""

    crank_rpm: int | None
    state: int | None = None
    consumption_l_100km: float | None = None
    quality: dict[str, str] = {}


class Position(_Tagged, frozen=True, gc=False, kw_only=True):
    """Info type 0x05, position. Status bits are already applied as signs to lon/lat.

    ``coord_system`` (1 WGS-84, 2 GCJ-02, 3 other) exists in 2025 only.
    """

    status: int
    lon: float | None
    lat: float | None
    coord_system: int | None = None
    quality: dict[str, str] = {}

    @property
    def fix_valid(self) -> bool:
        """Bit 0 clear: the fix is valid (set: last known position)."""
        return not self.status & 0x01

    @property
    def south(self) -> bool:
        """Bit 1: southern latitude."""
        return bool(self.status & 0x02)

    @property
    def west(self) -> bool:
        """Bit 2: western longitude."""
        return bool(self.status & 0x04)


class Extremes(_Tagged, frozen=True, gc=False, kw_only=True):
    """Info type 0x06 in 2016: extreme cell voltages and temperatures."""

    max_v_subsystem: int | None
    max_v_cell: int | None
    max_cell_v: float | None
    min_v_subsystem: int | None
    min_v_cell: int | None
    min_cell_v: float | None
    max_t_subsystem: int | None
    max_t_probe: int | None
    max_temp_c: int | None
    min_t_subsystem: int | None
    min_t_probe: int | None
    min_temp_c: int | None
    quality: dict[str, str] = {}


class Alarm(_Tagged, frozen=True, gc=False, kw_only=True):
    """Alarm data (0x07 in 2016, 0x06 in 2025).

    ``flags`` is the general-alarm DWORD (bit 0 = LSB). A fault list whose count was 0xFE/0xFF
    is None with a quality entry. ``bit_levels`` ((bit index, level) pairs) exists in 2025 only.
    """

    level: int | None
    flags: int
    battery_faults: list[int] | None = []
    motor_faults: list[int] | None = []
    engine_faults: list[int] | None = []
    other_faults: list[int] | None = []
    bit_levels: list[tuple[int, int]] | None = None
    quality: dict[str, str] = {}

    @property
    def alarm_bits(self) -> list[int]:
        """Indices of the set general-alarm bits."""
        return [i for i in range(32) if self.flags >> i & 1]


class PackVoltage(_Tagged, frozen=True, gc=False, kw_only=True):
    """One pack's voltages. ``total_cells`` and ``first_cell`` exist in 2016 only.

    ``cells_raw`` holds the cell WORDs exactly as sent.
    """

    number: int | None
    voltage_v: float | None
    current_a: float | None
    cells_raw: bytes
    total_cells: int | None = None
    first_cell: int | None = None
    quality: dict[str, str] = {}

    @property
    def cell_count(self) -> int:
        """Number of cell voltages carried in this frame."""
        return len(self.cells_raw) // 2

    @property
    def cells(self) -> list[float | None]:
        """Cell voltages in V (None for sentinels)."""
        return _word_values(self.cells_raw, 1000)


class CellVoltages(_Tagged, frozen=True, gc=False, kw_only=True):
    """Cell voltages (0x08 in 2016, 0x07 in 2025)."""

    packs: list[PackVoltage] = []


class PackTemps(_Tagged, frozen=True, gc=False, kw_only=True):
    """One pack's probe temperatures; ``temps_raw`` holds the probe BYTEs as sent."""

    number: int | None
    temps_raw: bytes
    quality: dict[str, str] = {}

    @property
    def temps(self) -> list[int | None]:
        """Probe temperatures in degC (None for sentinels)."""
        return _byte_temps(self.temps_raw)


class BatteryTemps(_Tagged, frozen=True, gc=False, kw_only=True):
    """Probe temperatures (0x09 in 2016, 0x08 in 2025)."""

    packs: list[PackTemps] = []


class FuelCellStack(_Tagged, frozen=True, gc=False, kw_only=True):
    """One 2025 fuel-cell stack (units uncertain: pressures in kPa)."""

    number: int | None
    voltage_v: float | None
    current_a: float | None
    h2_inlet_kpa: float | None
    air_inlet_kpa: float | None
    air_inlet_temp_c: int | None
    temps_raw: bytes
    quality: dict[str, str] = {}

    @property
    def temps(self) -> list[int | None]:
        """Coolant-outlet probe temperatures in degC."""
        return _byte_temps(self.temps_raw)


class FuelCellStacks(_Tagged, frozen=True, gc=False, kw_only=True):
    """Info type 0x30 (2025): fuel-cell stacks."""

    stacks: list[FuelCellStack] = []


class SuperCap(_Tagged, frozen=True, gc=False, kw_only=True):
    """Info type 0x31 (2025): super-capacitor data; cells and temps kept packed."""

    number: int | None
    voltage_v: float | None
    current_a: float | None
    cells_raw: bytes
    temps_raw: bytes
    quality: dict[str, str] = {}

    @property
    def cells(self) -> list[float | None]:
        """Cell voltages in V."""
        return _word_values(self.cells_raw, 1000)

    @property
    def temps(self) -> list[int | None]:
        """Probe temperatures in degC."""
        return _byte_temps(self.temps_raw)


class SuperCapExtremes(_Tagged, frozen=True, gc=False, kw_only=True):
    """Info type 0x32 (2025): super-capacitor extremes (subsystem BYTE, index WORD, value)."""

    max_v_subsystem: int | None
    max_v_index: int | None
    max_v: float | None
    min_v_subsystem: int | None
    min_v_index: int | None
    min_v: float | None
    max_t_subsystem: int | None
    max_t_index: int | None
    max_temp_c: int | None
    min_t_subsystem: int | None
    min_t_index: int | None
    min_temp_c: int | None
    quality: dict[str, str] = {}


class CustomBlock(_Tagged, frozen=True, gc=False, kw_only=True):
    """A WORD-length-prefixed custom block (info type 0x80-0xFE), kept raw."""

    info_type: int
    data: bytes


class Unparsed(_Tagged, frozen=True, gc=False, kw_only=True):
    """An unknown standard info type: parsing stopped; ``data`` is everything after the type."""

    info_type: int
    data: bytes


RealtimeBlock = (
    VehicleData
    | DriveMotors
    | FuelCell
    | FuelCellEngine
    | Engine
    | Position
    | Extremes
    | Alarm
    | CellVoltages
    | BatteryTemps
    | FuelCellStacks
    | SuperCap
    | SuperCapExtremes
    | CustomBlock
    | Signature
    | Unparsed
)


class RealtimeData(_Tagged, frozen=True, gc=False, kw_only=True):
    """Realtime 0x02 / reissue 0x03 body: time and the info blocks in wire order.

    A :class:`Signature` (2025) or :class:`Unparsed` block can only be the last one.
    """

    time: DeviceTime
    blocks: list[RealtimeBlock] = []


Body = (
    RawBody
    | Empty
    | TimeOnly
    | VehicleLogin
    | VehicleLogin2025
    | VehicleLogout
    | PlatformLogin
    | PlatformLogout
    | RealtimeData
    | Activation
    | ActivationResponse
    | KeySync
    | ParamQuery
    | ParamValues
    | Control
)


class Frame(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One GB/T 32960 frame: header fields and a typed body.

    ``version`` is 2016 ("##") or 2025 ("$$"); ``response`` is 0xFE for a command, else the
    response flag; ``vin`` has NUL/space padding stripped.
    """

    version: int
    command: int
    response: int
    vin: str
    encryption: int
    body: Body
