"""GB/T 32960 sample frames (shared/vectors/gbt32960.json): decoded values, round trip, reader."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import Any

import pytest

from gateway.codecs.common import ABNORMAL, INVALID, BadFrame
from gateway.codecs.gbt32960 import messages as m
from gateway.codecs.gbt32960.constants import alarm_names

Vector = dict[str, Any]


@pytest.fixture
def codec(gbt32960: ModuleType) -> ModuleType:
    """The implementation under test; skipped while the accelerator is still a placeholder."""
    if not hasattr(gbt32960, "decode_frame"):
        pytest.skip(f"{gbt32960.__name__} is not implemented yet")
    return gbt32960


def good(vectors: list[Vector]) -> list[Vector]:
    return [v for v in vectors if v["checksum_ok"] == "yes"]


def raw(v: Vector) -> bytes:
    return bytes.fromhex(v["hex"])


def block(frame: m.Frame, cls: type[Any]) -> Any:
    """The first realtime block of a type."""
    assert isinstance(frame.body, m.RealtimeData)
    return next(b for b in frame.body.blocks if isinstance(b, cls))


def vehicle(frame: m.Frame) -> m.VehicleData:
    result: m.VehicleData = block(frame, m.VehicleData)
    return result


# --------------------------------------------------------------------------- expect checkers

GEARS = {
    "D, driving force, braking force": (14, True, True),
    "N": (0, None, None),
    "D with braking force": (14, True, False),
}
MOTOR_STATES = {"consuming": 1, "generating": 2, "off": 3, "ready": 4}


def _protocol(f: m.Frame, want: str) -> None:
    assert f.version == int(want.rsplit("-", 1)[1])


def _command(f: m.Frame, want: str) -> None:
    ids = [int(h, 16) for h in re.findall(r"0x([0-9A-Fa-f]{2})", want)]
    if ids:
        assert f.command == ids[0]
    if re.search(r"(?<!activation )response", want):
        assert f.response != 0xFE
        assert len(ids) < 2 or f.response == ids[1]
    else:
        assert f.response == 0xFE


def _time(f: m.Frame, want: str) -> None:
    t = getattr(f.body, "time", None)
    assert t is not None and t.utc == datetime.fromisoformat(want)


def _gear(f: m.Frame, want: str) -> None:
    gear, braking, driving = GEARS[want]
    v = vehicle(f)
    assert v.gear == gear
    if braking is not None:
        assert v.braking_force is braking
    if driving is not None:
        assert v.driving_force is driving


def _brake(f: m.Frame, want: str) -> None:
    assert "0x65" in want
    assert (vehicle(f).brake_pct, vehicle(f).brake_on) == (None, True)


def _motor(name: str) -> Callable[[m.Frame, Any], None]:
    def check(f: m.Frame, want: Any) -> None:
        assert getattr(block(f, m.DriveMotors).motors[0], name) == pytest.approx(want)

    return check


def _motors(f: m.Frame, want: list[dict[str, Any]]) -> None:
    motors = block(f, m.DriveMotors).motors
    assert len(motors) == len(want)
    for got, exp in zip(motors, want, strict=True):
        assert got.speed_rpm == exp["speed_rpm"]
        assert got.torque_nm == pytest.approx(exp["torque_nm"])
        assert got.state == MOTOR_STATES[exp["state"]]
        if "current_a" in exp:
            assert got.current_a == pytest.approx(exp["current_a"])


def _vehicle(name: str) -> Callable[[m.Frame, Any], None]:
    def check(f: m.Frame, want: Any) -> None:
        assert getattr(vehicle(f), name) == pytest.approx(want)

    return check


def _position(name: str) -> Callable[[m.Frame, Any], None]:
    def check(f: m.Frame, want: Any) -> None:
        assert getattr(block(f, m.Position), name) == pytest.approx(want)

    return check


def _pack(f: m.Frame) -> m.PackVoltage:
    pack: m.PackVoltage = block(f, m.CellVoltages).packs[0]
    return pack


def _cells(f: m.Frame) -> list[float]:
    return [c for c in _pack(f).cells if c is not None]


def _custom(f: m.Frame, want: list[dict[str, Any]]) -> None:
    assert isinstance(f.body, m.RealtimeData)
    got = [b for b in f.body.blocks if isinstance(b, m.CustomBlock)]
    assert [b.info_type for b in got] == [int(w["type"], 16) for w in want]
    for b, w in zip(got, want, strict=True):
        if "length" in w:
            assert len(b.data) == w["length"]


def _alarm(f: m.Frame) -> m.Alarm:
    result: m.Alarm = block(f, m.Alarm)
    return result


def _attr(name: str) -> Callable[[m.Frame, Any], None]:
    def check(f: m.Frame, want: Any) -> None:
        assert getattr(f.body, name) == want

    return check


def _data_length(f: m.Frame, want: int) -> None:
    assert want == 0 and isinstance(f.body, m.Empty)


def _pack_code_length(f: m.Frame, want: int) -> None:
    assert isinstance(f.body, m.VehicleLogin2025)
    assert all(len(c) == want for c in f.body.pack_codes)


CHECKS: dict[str, Callable[[m.Frame, Any], None]] = {
    "protocol": _protocol,
    "command": _command,
    "vin": lambda f, w: _check_eq(f.vin, w),
    "time_utc": _time,
    "speed_kmh": _vehicle("speed_kmh"),
    "odometer_km": _vehicle("odometer_km"),
    "total_voltage_v": _vehicle("total_voltage_v"),
    "total_current_a": _vehicle("total_current_a"),
    "soc_pct": _vehicle("soc_pct"),
    "insulation_kohm": _vehicle("insulation_kohm"),
    "gear": _gear,
    "brake_pedal": _brake,
    "brake_pedal_pct": _vehicle("brake_pct"),
    "motor_speed_rpm": _motor("speed_rpm"),
    "motor_torque_nm": _motor("torque_nm"),
    "motor_voltage_v": _motor("voltage_v"),
    "motor_current_a": _motor("current_a"),
    "motors": _motors,
    "lon": _position("lon"),
    "lat": _position("lat"),
    "position_fix_valid": _position("fix_valid"),
    "cell_count": lambda f, w: _check_eq(_pack(f).cell_count, w),
    "cell_v_min": lambda f, w: _check_eq(min(_cells(f)), w),
    "cell_v_max": lambda f, w: _check_eq(max(_cells(f)), w),
    "pack_current_a": lambda f, w: _check_eq(_pack(f).current_a, pytest.approx(w)),
    "probe_temps_c": lambda f, w: _check_eq(block(f, m.BatteryTemps).packs[0].temps, w),
    "probe_count": lambda f, w: _check_eq(len(block(f, m.BatteryTemps).packs[0].temps_raw), w),
    "custom_blocks": _custom,
    "alarm_level": lambda f, w: _check_eq(_alarm(f).level, w),
    "general_alarm_flags": lambda f, w: _check_eq(_alarm(f).flags, w),
    "general_alarms": lambda f, w: _check_eq(alarm_names(_alarm(f).flags, f.version), w),
    "other_fault_code_count": lambda f, w: _check_eq(len(_alarm(f).other_faults or []), w),
    "login_serial": _attr("serial"),
    "iccid": _attr("iccid"),
    "subsystem_count": _attr("subsystem_count"),
    "code_length": _attr("code_length"),
    "codes": _attr("codes"),
    "bms_count": _attr("bms_count"),
    "packs_per_bms": _attr("packs_per_bms"),
    "pack_code_length": _pack_code_length,
    "result": _attr("result"),
    "info": _attr("info"),
    "data_length": _data_length,
    "note": lambda f, w: None,
}


def _check_eq(got: Any, want: Any) -> None:
    assert got == want


# --------------------------------------------------------------------------- vectors


def test_every_expect_key_is_checked(gbt_vectors: list[Vector]) -> None:
    keys = {k for v in gbt_vectors for k in v["expect"]}
    assert keys <= set(CHECKS), keys - set(CHECKS)


def test_vectors_decode_to_expected_values(codec: ModuleType, gbt_vectors: list[Vector]) -> None:
    for v in good(gbt_vectors):
        frame = codec.decode_frame(raw(v))
        for key, want in v["expect"].items():
            try:
                CHECKS[key](frame, want)
            except AssertionError as exc:
                raise AssertionError(f"{v['id']} {key}: {exc}") from exc


def test_vectors_roundtrip_exactly(codec: ModuleType, gbt_vectors: list[Vector]) -> None:
    for v in good(gbt_vectors):
        frame = codec.decode_frame(raw(v))
        if v["id"] != NON_CANONICAL:
            assert codec.encode_frame(frame) == raw(v), v["id"]
        assert codec.decode_frame(codec.encode_frame(frame)) == frame, v["id"]


# GB-14's abnormal motor is an all-0xFE fill; re-encoding writes the standard WORD sentinel.
NON_CANONICAL = "GB-14"


def test_body_types(codec: ModuleType, gbt_vectors: list[Vector]) -> None:
    kinds = {v["id"]: type(codec.decode_frame(raw(v)).body) for v in good(gbt_vectors)}
    assert kinds["GB-03r"] is m.TimeOnly
    assert kinds["GB-08"] is kinds["GB-08r"] is kinds["GB-09"] is m.Empty
    assert kinds["GB-10"] is m.PlatformLogout
    assert kinds["GB25-01"] is m.VehicleLogin2025
    assert kinds["GB25-04"] is m.TimeOnly
    assert kinds["GB25-05"] is m.ActivationResponse


def test_gb13_all_invalid_vehicle_block(codec: ModuleType, gbt_vectors: list[Vector]) -> None:
    v = next(x for x in gbt_vectors if x["id"] == "GB-13")
    data = vehicle(codec.decode_frame(raw(v)))
    scaled = ["vehicle_state", "charge_state", "run_mode", "speed_kmh", "odometer_km",
              "total_voltage_v", "total_current_a", "soc_pct", "dcdc_state", "accel_pct",
              "brake_pct"]  # fmt: skip
    for name in scaled:
        assert getattr(data, name) is None, name
        assert data.quality[name] == INVALID, name
    assert data.brake_on is None
    assert data.insulation_kohm == 0xFFFF  # 2016: no sentinel for insulation resistance
    assert "insulation_kohm" not in data.quality


def test_gb14_invalid_and_abnormal_motors(codec: ModuleType, gbt_vectors: list[Vector]) -> None:
    v = next(x for x in gbt_vectors if x["id"] == "GB-14")
    first, second = block(codec.decode_frame(raw(v)), m.DriveMotors).motors
    names = ["number", "state", "controller_temp_c", "speed_rpm", "torque_nm", "temp_c",
             "voltage_v", "current_a"]  # fmt: skip
    for name in names:
        assert getattr(first, name) is None and first.quality[name] == INVALID, name
    # The abnormal motor is filled with 0xFE bytes: its WORDs read 0xFEFE, taken as abnormal too
    # (the standard WORD sentinel is 0xFFFE), so no field becomes a scaled number.
    for name in names:
        assert getattr(second, name) is None and second.quality[name] == ABNORMAL, name
    canonical = codec.decode_frame(codec.encode_frame(codec.decode_frame(raw(v))))
    assert block(canonical, m.DriveMotors).motors[1] == second


def test_gb03_fix_invalid_keeps_coordinates(codec: ModuleType, gbt_vectors: list[Vector]) -> None:
    v = next(x for x in gbt_vectors if x["id"] == "GB-03")
    pos = block(codec.decode_frame(raw(v)), m.Position)
    assert not pos.fix_valid and not pos.south and not pos.west
    assert pos.lon == pytest.approx(106.559448) and pos.lat == pytest.approx(29.630776)


# --------------------------------------------------------------------------- reader


def test_reader_whole_stream(codec: ModuleType, gbt_vectors: list[Vector]) -> None:
    frames = [raw(v) for v in good(gbt_vectors)]
    reader = codec.FrameReader()
    reader.feed(b"".join(frames))
    assert list(reader) == frames
    assert reader.buffered == 0


def test_reader_byte_by_byte(codec: ModuleType, gbt_vectors: list[Vector]) -> None:
    frames = [raw(v) for v in good(gbt_vectors)]
    stream = b"".join(frames)
    reader = codec.FrameReader()
    out: list[bytes | BadFrame] = []
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        out.extend(reader)
    assert out == frames
    assert reader.buffered == 0


@pytest.mark.parametrize(
    "garbage", [b"\x00", b"xyz\r\n", b"#", b"$", b"#$#", bytes(range(0x30, 0x90))]
)
def test_reader_garbage_between_frames(
    codec: ModuleType, gbt_vectors: list[Vector], garbage: bytes
) -> None:
    frames = [raw(v) for v in good(gbt_vectors)]
    stream = garbage + garbage.join(frames) + garbage
    for chunk in (len(stream), 1, 7):
        reader = codec.FrameReader()
        out: list[bytes | BadFrame] = []
        for i in range(0, len(stream), chunk):
            reader.feed(stream[i : i + chunk])
            out.extend(reader)
        assert [e for e in out if isinstance(e, bytes)] == frames
        bad = [e for e in out if isinstance(e, BadFrame)]
        assert bad and all(e.reason == "garbage" for e in bad)
        assert len(
            b"".join(e if isinstance(e, bytes) else e.raw for e in out)
        ) + reader.buffered == len(stream)
