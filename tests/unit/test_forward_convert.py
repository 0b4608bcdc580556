"""GB/T 32960 edition conversion (gateway.forward.convert) on the shared vectors and the
simulator's frames: values kept in human units, the documented fields dropped or added, and
every converted frame encodes and decodes back unchanged in the target edition."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gateway.codecs import gbt32960 as gbt
from gateway.codecs.common import INVALID
from gateway.forward.convert import ConversionError, convert
from gateway.simulator import Fleet

Vector = dict[str, Any]


def frame_of(vectors: list[Vector], vid: str) -> gbt.Frame:
    return gbt.decode_frame(bytes.fromhex(next(v for v in vectors if v["id"] == vid)["hex"]))


def through_wire(frame: gbt.Frame) -> gbt.Frame:
    """Encode and decode: the converted frame must survive its edition's codec unchanged."""
    raw = gbt.encode_frame(frame)
    assert raw[:2] == (b"##" if frame.version == 2016 else b"$$")
    back = gbt.decode_frame(raw)
    assert back == frame
    return back


def block(frame: gbt.Frame, kind: type[Any]) -> Any:
    assert isinstance(frame.body, gbt.RealtimeData)
    found = [b for b in frame.body.blocks if isinstance(b, kind)]
    assert len(found) == 1, f"{kind.__name__}: {len(found)}"
    return found[0]


def kinds(frame: gbt.Frame) -> list[str]:
    assert isinstance(frame.body, gbt.RealtimeData)
    return [type(b).__name__ for b in frame.body.blocks]


def test_realtime_2016_to_2025_keeps_values_drops_what_2025_lacks(
    gbt_vectors: list[Vector],
) -> None:
    src = frame_of(gbt_vectors, "GB-02")
    dropped: list[str] = []
    out = through_wire(convert(src, 2025, dropped))
    assert (out.version, out.command, out.vin, out.response) == (2025, 0x02, src.vin, 0xFE)
    assert isinstance(out.body, gbt.RealtimeData) and isinstance(src.body, gbt.RealtimeData)
    assert out.body.time == src.body.time
    assert kinds(out) == [
        "VehicleData",
        "DriveMotors",
        "Position",
        "Alarm",
        "CellVoltages",
        "BatteryTemps",
        "CustomBlock",
    ]
    v16, v25 = block(src, gbt.VehicleData), block(out, gbt.VehicleData)
    for name in (
        "vehicle_state",
        "speed_kmh",
        "odometer_km",
        "total_voltage_v",
        "total_current_a",
        "soc_pct",
        "insulation_kohm",
    ):
        assert getattr(v25, name) == getattr(v16, name), name
    assert v25.total_current_a == 500.0  # -1000 A offset in 2016, -3000 A in 2025: same amps
    assert (v25.gear, v25.braking_force, v25.driving_force) == (14, True, True)
    assert v25.accel_pct is None and v25.brake_pct is None and v25.brake_on is None
    m16, m25 = block(src, gbt.DriveMotors).motors[0], block(out, gbt.DriveMotors).motors[0]
    assert (m25.speed_rpm, m25.torque_nm) == (m16.speed_rpm, m16.torque_nm) == (5000, 1500.0)
    assert m25.voltage_v is None and m25.current_a is None
    p25 = block(out, gbt.Position)
    assert (p25.lon, p25.lat, p25.coord_system) == (120.009633, 30.344348, 1)
    c16, c25 = block(src, gbt.CellVoltages).packs[0], block(out, gbt.CellVoltages).packs[0]
    assert c25.cells_raw == c16.cells_raw and c25.current_a == c16.current_a
    assert c25.total_cells is None and c25.first_cell is None
    assert block(out, gbt.BatteryTemps) == block(src, gbt.BatteryTemps)
    assert block(out, gbt.CustomBlock) == block(src, gbt.CustomBlock)
    assert block(out, gbt.Alarm).bit_levels == []
    assert {"Extremes", "motor.voltage_v", "motor.current_a", "vehicle.brake_on"} <= set(dropped)
    assert {"cell_voltages.total_cells", "cell_voltages.first_cell"} <= set(dropped)


@pytest.mark.parametrize("vid", ["GB-02", "GB-03", "GB-12", "GB-13", "GB-14", "GB-15"])
def test_every_2016_realtime_vector_converts_and_survives_the_2025_codec(
    gbt_vectors: list[Vector], vid: str
) -> None:
    src = frame_of(gbt_vectors, vid)
    out = through_wire(convert(src, 2025))
    back = through_wire(convert(out, 2016))
    # Whatever both editions carry comes back as it was.
    if isinstance(src.body, gbt.RealtimeData) and any(
        isinstance(b, gbt.VehicleData) for b in src.body.blocks
    ):
        a, b = block(src, gbt.VehicleData), block(back, gbt.VehicleData)
        assert (a.speed_kmh, a.odometer_km, a.total_current_a, a.soc_pct) == (
            b.speed_kmh,
            b.odometer_km,
            b.total_current_a,
            b.soc_pct,
        )


def test_realtime_2025_to_2016_computes_the_extremes_and_fills_invalids() -> None:
    fleet = Fleet(2, gbt_only=True)
    truck = fleet.trucks[1]
    assert truck.version == 2025
    src = fleet.gbt_realtime(truck)
    dropped: list[str] = []
    out = through_wire(convert(src, 2016, dropped))
    assert kinds(out) == [
        "VehicleData",
        "DriveMotors",
        "Position",
        "Extremes",
        "Alarm",
        "CellVoltages",
        "BatteryTemps",
    ]
    ext = block(out, gbt.Extremes)
    cells = truck.cell_mv
    assert ext.max_cell_v == max(cells) / 1000 and ext.max_v_cell == cells.index(max(cells)) + 1
    assert ext.min_cell_v == min(cells) / 1000 and ext.min_v_cell == cells.index(min(cells)) + 1
    assert (ext.max_v_subsystem, ext.min_v_subsystem) == (1, 1)
    temps = block(src, gbt.BatteryTemps).packs[0].temps
    assert ext.max_temp_c == max(temps) and ext.max_t_probe == temps.index(max(temps)) + 1
    assert ext.min_temp_c == min(temps) and ext.min_t_probe == temps.index(min(temps)) + 1
    v = block(out, gbt.VehicleData)
    assert v.accel_pct is None and v.quality["accel_pct"] == INVALID
    m = block(out, gbt.DriveMotors).motors[0]
    assert m.voltage_v is None and m.quality["voltage_v"] == INVALID
    pack = block(out, gbt.CellVoltages).packs[0]
    assert (pack.total_cells, pack.first_cell, pack.cell_count) == (192, 1, 192)
    assert block(out, gbt.Position).coord_system is None
    assert "position.coord_system" in dropped
    # ... and back to 2025: exactly the frame the vehicle sent.
    assert convert(out, 2025) == src


def test_login_both_ways(gbt_vectors: list[Vector]) -> None:
    src25 = frame_of(gbt_vectors, "GB25-01")
    assert isinstance(src25.body, gbt.VehicleLogin2025)
    out16 = through_wire(convert(src25, 2016))
    assert isinstance(out16.body, gbt.VehicleLogin)
    assert out16.body.codes == src25.body.pack_codes
    assert out16.body.subsystem_count == len(src25.body.pack_codes)
    assert out16.body.code_length == (24 if src25.body.pack_codes else 0)
    assert (out16.body.serial, out16.body.iccid) == (src25.body.serial, src25.body.iccid)

    src16 = frame_of(gbt_vectors, "GB-05")
    assert isinstance(src16.body, gbt.VehicleLogin)
    out25 = through_wire(convert(src16, 2025))
    assert isinstance(out25.body, gbt.VehicleLogin2025)
    assert out25.body.pack_codes == [c[:24] for c in src16.body.codes]
    assert out25.body.packs_per_bms == [1] * len(src16.body.codes)


@pytest.mark.parametrize("vid", ["GB-07", "GB-03r", "GB-10"])
def test_bodies_with_one_layout_pass_unchanged(gbt_vectors: list[Vector], vid: str) -> None:
    src = frame_of(gbt_vectors, vid)
    out = through_wire(convert(src, 2025))
    assert out.body == src.body and out.version == 2025


def test_values_the_target_cannot_hold_become_invalid() -> None:
    time = gbt.decode_frame(Fleet(1).report(Fleet(1).trucks[0])).body
    assert isinstance(time, gbt.RealtimeData)
    vehicle = gbt.VehicleData(
        vehicle_state=1,
        charge_state=3,
        run_mode=1,
        speed_kmh=10.0,
        odometer_km=1.0,
        total_voltage_v=600.0,
        total_current_a=-2500.0,  # fits 2025 (-3000 A offset), not 2016 (-1000 A)
        soc_pct=50,
        dcdc_state=1,
        gear_byte=0x0E,
        insulation_kohm=1000,
    )
    motor = gbt.Motor(
        number=1,
        state=1,
        controller_temp_c=40,
        speed_rpm=-25000,  # 2016 speed offset is -20000 rpm
        torque_nm=5000.0,  # 2016 torque tops out at 4553.3 N m
        temp_c=50,
    )
    src = gbt.Frame(
        version=2025,
        command=0x02,
        response=0xFE,
        vin="LSGTEST0000000001",
        encryption=1,
        body=gbt.RealtimeData(time=time.time, blocks=[vehicle, gbt.DriveMotors(motors=[motor])]),
    )
    out = through_wire(convert(src, 2016))
    v = block(out, gbt.VehicleData)
    assert v.total_current_a is None and v.quality["total_current_a"] == INVALID
    m = block(out, gbt.DriveMotors).motors[0]
    assert m.speed_rpm is None and m.quality["speed_rpm"] == INVALID
    assert m.torque_nm is None and m.quality["torque_nm"] == INVALID
    assert m.temp_c == 50

    v16 = msgspec.structs.replace(vehicle, insulation_kohm=0xFFFF, total_current_a=10.0)
    src16 = msgspec.structs.replace(
        src, version=2016, body=gbt.RealtimeData(time=time.time, blocks=[v16])
    )
    out25 = through_wire(convert(src16, 2025))
    v25 = block(out25, gbt.VehicleData)
    # 2016 has no insulation sentinel; 2025 does: 0xFFFF is a marker there, not 65535 kOhm.
    assert v25.insulation_kohm is None and v25.quality["insulation_kohm"] == INVALID
    assert v25.total_current_a == 10.0


def test_alarm_bits_and_levels() -> None:
    time = gbt.decode_frame(Fleet(1).report(Fleet(1).trucks[0])).body
    assert isinstance(time, gbt.RealtimeData)
    alarm = gbt.Alarm(level=3, flags=(1 << 23) | 0b11, bit_levels=[(23, 3)])
    src = gbt.Frame(
        version=2025,
        command=0x02,
        response=0xFE,
        vin="LSGTEST0000000001",
        encryption=1,
        body=gbt.RealtimeData(time=time.time, blocks=[alarm]),
    )
    dropped: list[str] = []
    a16 = block(through_wire(convert(src, 2016, dropped)), gbt.Alarm)
    assert (a16.level, a16.flags, a16.bit_levels) == (3, 0b11, None)
    assert {"alarm.flags", "alarm.bit_levels"} <= set(dropped)
    reserved = msgspec.structs.replace(
        src,
        version=2016,
        body=gbt.RealtimeData(time=time.time, blocks=[gbt.Alarm(level=1, flags=1 << 20 | 1)]),
    )
    a25 = block(through_wire(convert(reserved, 2025)), gbt.Alarm)
    assert (a25.flags, a25.bit_levels) == (1, [])  # 2016's reserved bit 20 is not "over-current"


def test_a_big_2025_pack_is_split_into_2016_entries() -> None:
    fleet = Fleet(2, gbt_only=True)
    src = fleet.gbt_realtime(fleet.trucks[1])
    assert isinstance(src.body, gbt.RealtimeData)
    cells = b"".join((3300 + i % 50).to_bytes(2, "big") for i in range(450))
    big = gbt.CellVoltages(
        packs=[gbt.PackVoltage(number=2, voltage_v=600.0, current_a=-20.0, cells_raw=cells)]
    )
    blocks = [big if isinstance(b, gbt.CellVoltages) else b for b in src.body.blocks]
    src = msgspec.structs.replace(src, body=gbt.RealtimeData(time=src.body.time, blocks=blocks))
    out = through_wire(convert(src, 2016))
    packs = block(out, gbt.CellVoltages).packs
    assert [(p.number, p.first_cell, p.cell_count, p.total_cells) for p in packs] == [
        (2, 1, 200, 450),
        (2, 201, 200, 450),
        (2, 401, 50, 450),
    ]
    assert b"".join(p.cells_raw for p in packs) == cells
    ext = block(out, gbt.Extremes)
    assert ext.max_cell_v == 3.349 and ext.max_v_cell == 50  # first of the maxima, 1-based
    assert ext.max_v_subsystem == 2


def test_what_cannot_be_converted() -> None:
    src = gbt.Frame(
        version=2016,
        command=0x02,
        response=0xFE,
        vin="LSGTEST0000000001",
        encryption=3,
        body=gbt.RawBody(data=b"\x01\x02"),
    )
    with pytest.raises(ConversionError, match="encrypted"):
        convert(src, 2025)
    with pytest.raises(ConversionError, match="not 2016 or 2025"):
        convert(src, 2020)
    assert convert(src, 2016) is src
