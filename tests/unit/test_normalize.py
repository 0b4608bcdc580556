"""Normalization of decoded vectors into records, on both codec implementations."""

from __future__ import annotations

from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest

from gateway.codecs.common import DeviceTime
from gateway.codecs.errors import ProtocolError, Reason
from gateway.codecs.gbt32960 import messages as m
from gateway.normalize import normalize
from gateway.records import Alarm, Position, SessionEvent, VehicleRealtime


def _frame(vectors: list[dict[str, Any]], vid: str) -> bytes:
    return bytes.fromhex(next(v["hex"] for v in vectors if v["id"] == vid))


def test_gb12_wide_row(gbt32960: ModuleType, gbt_vectors: list[dict[str, Any]]) -> None:
    records = normalize(gbt32960.decode_frame(_frame(gbt_vectors, "GB-12")))
    row = records[0]
    assert isinstance(row, VehicleRealtime)
    assert row.vin == "HAUV4BGN6S5002219"
    assert row.time == datetime(2025, 10, 11, 11, 8, 18, tzinfo=UTC)
    assert row.version == 2016 and not row.reissue
    assert row.speed_kmh == pytest.approx(12.2)
    assert row.odometer_km == pytest.approx(258.9)
    assert row.total_voltage_v == pytest.approx(780.9)
    assert row.total_current_a == pytest.approx(5.1)
    assert row.soc_pct == 85
    assert row.gear == 14 and row.braking_force
    assert row.brake_pct == 16
    assert [m.speed_rpm for m in row.motors] == [857, 873]
    assert row.motors[1].torque_nm == pytest.approx(-32.5)
    assert row.motors[1].controller_current_a == pytest.approx(-2.5)
    assert row.cell_count == 192 and len(row.cell_voltages) == 384
    assert row.pack_current_a == pytest.approx(5.1)
    assert row.cell_v_min is not None and row.cell_v_max is not None
    assert row.cell_v_min <= (row.cell_v_mean or 0) <= row.cell_v_max
    assert [c.type for c in row.custom_blocks] == [0x83]


def test_gb03_cells_and_position(gbt32960: ModuleType, gbt_vectors: list[dict[str, Any]]) -> None:
    records = normalize(gbt32960.decode_frame(_frame(gbt_vectors, "GB-03")))
    row = records[0]
    assert isinstance(row, VehicleRealtime)
    assert row.cell_count == 126
    assert row.cell_v_min == pytest.approx(3.337) and row.cell_v_max == pytest.approx(3.339)
    assert row.probe_count == 18
    positions = [r for r in records if isinstance(r, Position)]
    assert len(positions) == 1
    pos = positions[0]
    assert not pos.fix_valid
    assert pos.lon == pytest.approx(106.559448) and pos.lat == pytest.approx(29.630776)
    assert pos.odometer_km == pytest.approx(15729.1)


def test_sentinels_become_null_with_quality(
    gbt32960: ModuleType, gbt_vectors: list[dict[str, Any]]
) -> None:
    row = normalize(gbt32960.decode_frame(_frame(gbt_vectors, "GB-13")))[0]
    assert isinstance(row, VehicleRealtime)
    assert row.speed_kmh is None and row.soc_pct is None and row.total_voltage_v is None
    assert row.quality["speed_kmh"] == "invalid"
    row = normalize(gbt32960.decode_frame(_frame(gbt_vectors, "GB-14")))[0]
    assert isinstance(row, VehicleRealtime)
    assert len(row.motors) == 2
    assert {m.quality.get("speed_rpm") for m in row.motors} == {"invalid", "abnormal"}
    assert all(m.speed_rpm is None and m.torque_nm is None for m in row.motors)


def test_gb15_alarm_record(gbt32960: ModuleType, gbt_vectors: list[dict[str, Any]]) -> None:
    alarms = [
        r
        for r in normalize(gbt32960.decode_frame(_frame(gbt_vectors, "GB-15")))
        if isinstance(r, Alarm)
    ]
    assert len(alarms) == 1
    assert alarms[0].level == 3 and alarms[0].flags == 3
    assert alarms[0].names == ["temperature difference", "battery high temperature"]
    assert len(alarms[0].fault_codes["other"]) == 7


def test_login_logout_events(gbt32960: ModuleType, gbt_vectors: list[dict[str, Any]]) -> None:
    (login,) = normalize(gbt32960.decode_frame(_frame(gbt_vectors, "GB-05")))
    assert isinstance(login, SessionEvent)
    assert (login.event, login.serial, login.device_id) == ("login", 1, "LFWADRJF011002346")
    assert login.detail["iccid"] == "83605337981605490187"
    assert login.time == datetime(2018, 6, 5, 3, 44, 29, tzinfo=UTC)
    (logout,) = normalize(gbt32960.decode_frame(_frame(gbt_vectors, "GB-07")))
    assert isinstance(logout, SessionEvent)
    assert (logout.event, logout.serial) == ("logout", 70)


def test_responses_and_heartbeats_yield_nothing(
    gbt32960: ModuleType, gbt_vectors: list[dict[str, Any]]
) -> None:
    for vid in ("GB-03r", "GB-08", "GB-08r", "GB-09", "GB25-04"):
        assert normalize(gbt32960.decode_frame(_frame(gbt_vectors, vid))) == []


def test_bad_device_time_is_a_protocol_error(gbt32960: ModuleType) -> None:
    # a realtime frame whose time has month 13
    frame = m.Frame(
        version=2016,
        command=0x02,
        response=0xFE,
        vin="LTEST000000000001",
        encryption=1,
        body=m.RealtimeData(time=DeviceTime(raw=bytes([25, 13, 1, 0, 0, 0]), utc=None)),
    )
    with pytest.raises(ProtocolError) as info:
        normalize(gbt32960.decode_frame(gbt32960.encode_frame(frame)))
    assert info.value.reason is Reason.BAD_TIME


def test_jt808_location_and_alarm(jt808: ModuleType, jt_vectors: list[dict[str, Any]]) -> None:
    records = normalize(jt808.decode_frame(_frame(jt_vectors, "JT-01")))
    pos, alarm = records
    assert isinstance(pos, Position) and isinstance(alarm, Alarm)
    assert pos.device_id == "011223344550"
    assert pos.lat == pytest.approx(12.222222) and pos.lon == pytest.approx(132.444444)
    assert pos.altitude_m == 40 and pos.speed_kmh == pytest.approx(6.0)
    assert pos.time == datetime(2018, 7, 15, 2, 10, 10, tzinfo=UTC)
    assert pos.odometer_km == pytest.approx(10.0)
    assert pos.fix_valid  # status bit 1 (positioned) is set: status_flags == 2
    assert alarm.flags == 1 and alarm.names == ["emergency"]


def test_jt808_batch_and_south(jt808: ModuleType, jt_vectors: list[dict[str, Any]]) -> None:
    records = normalize(jt808.decode_frame(_frame(jt_vectors, "JT-02")))
    positions = [r for r in records if isinstance(r, Position)]
    assert len(positions) == 2
    assert positions[1].lat == pytest.approx(13.333333)
    assert positions[1].heading_deg == 120
    (pos, *_) = normalize(jt808.decode_frame(_frame(jt_vectors, "JT-09")))
    assert isinstance(pos, Position)
    assert pos.lat == pytest.approx(-31.234567)


def test_jt808_register_event(jt808: ModuleType, jt_vectors: list[dict[str, Any]]) -> None:
    for vid in ("JT-06", "JT-07"):
        (event,) = normalize(jt808.decode_frame(_frame(jt_vectors, vid)))
        assert isinstance(event, SessionEvent)
        assert event.event == "register" and event.detail["plate"] == "粤A12345"
    (auth,) = normalize(jt808.decode_frame(_frame(jt_vectors, "JT-08")))
    assert isinstance(auth, SessionEvent) and auth.event == "auth"
    assert "456121111" not in repr(auth.detail)  # credentials stay out of records
    assert normalize(jt808.decode_frame(_frame(jt_vectors, "JT-03"))) == []
