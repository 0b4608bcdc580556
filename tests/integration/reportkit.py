"""Seeded data with known answers for the compliance reports (tests/integration/test_reports.py,
test_api_reports.py): three vehicles in two zones (a gap, a level-3 alarm stretch, reissues,
sessions across local midnight, one without login events), a charger's status history, sessions
and meter register at a station in Dubai, a swap station's swaps. :func:`seed` writes them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from gateway.records import (
    Alarm,
    BatteryInventory,
    ChargerEvent,
    ChargerStatus,
    ChargingSession,
    MeterValue,
    SessionEvent,
    StationStatus,
    SwapEvent,
    VehicleRealtime,
)
from gateway.reports import ReportsConfig
from gateway.store import connect, write

VIN_A = "LTESTREPORT00000A"  # Bangkok, 30 s: gap, level-3 stretch, reissues, one session
VIN_B = "LTESTREPORT00000B"  # Bangkok, default period (20 s): sessions across local midnight
VIN_C = "LTESTREPORT00000C"  # operator without a zone (UTC), 60 s, no login events at all
NOW = datetime(2026, 3, 10, tzinfo=UTC)
SETTINGS = ReportsConfig(reporting_interval_s=20.0)
DAY2, DAY3, DAY4 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)
GBT = "gbt32960"


def utc(text: str) -> datetime:
    """``YYYY-MM-DD HH:MM:SS`` as a UTC time."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _every(start: str, end: str, step_s: int) -> list[datetime]:
    """From ``start`` to ``end`` (both included) every ``step_s`` seconds."""
    t, last, out = utc(start), utc(end), []
    while t <= last:
        out.append(t)
        t += timedelta(seconds=step_s)
    return out


def _frame(vin: str, t: datetime, **kw: Any) -> VehicleRealtime:
    return VehicleRealtime(vin=vin, time=t, version=2016, received_at=t, **kw)


def _vehicle_a() -> tuple[list[VehicleRealtime], list[Alarm]]:
    t0 = utc("2026-03-02 01:00:00")
    times = [
        t
        for t in _every("2026-03-02 01:00:00", "2026-03-02 02:59:30", 30)
        if not utc("2026-03-02 01:30:00") < t < utc("2026-03-02 01:40:00")
        and not utc("2026-03-02 02:00:00") <= t <= utc("2026-03-02 02:01:00")
    ]
    alarm = _every("2026-03-02 02:00:00", "2026-03-02 02:01:00", 1)
    level1 = {utc("2026-03-02 02:30:00"), utc("2026-03-02 02:30:30")}
    reissued = {utc("2026-03-02 01:10:00"), utc("2026-03-02 01:10:30"), utc("2026-03-02 01:11:00")}
    frames, alarms = [], []
    for t in sorted([*times, *alarm]):
        s = (t - t0).total_seconds()
        level = 3 if t in alarm else 1 if t in level1 else 0
        frames.append(
            _frame(
                VIN_A,
                t,
                reissue=t in reissued,
                odometer_km=10000.0 + s / 3600 * 30,
                total_voltage_v=650.0,
                total_current_a=100.0,
                soc_pct=80,
                lat=13.0 + s * 1e-5,
                lon=100.5,
                fix_valid=True,
                alarm_level=level,
                alarm_flags=0,
            )
        )
        if level:
            name = "battery_high_temperature" if level == 3 else "soc_low"
            alarms.append(
                Alarm(device_id=VIN_A, protocol=GBT, time=t, level=level, flags=1, names=[name])
            )
    return frames, alarms


def _vehicle_b() -> list[VehicleRealtime]:
    first = _every("2026-03-02 16:50:00", "2026-03-02 17:20:00", 20)
    second = _every("2026-03-03 01:00:00", "2026-03-03 01:29:40", 20)
    return [_frame(VIN_B, t, total_voltage_v=600.0, total_current_a=10.0) for t in first] + [
        _frame(VIN_B, t, total_voltage_v=600.0, total_current_a=-100.0) for t in second
    ]


def _vehicle_c() -> list[VehicleRealtime]:
    times = (
        _every("2026-03-02 00:00:00", "2026-03-02 02:00:00", 60)
        + _every("2026-03-02 02:05:00", "2026-03-02 03:00:00", 60)
        + _every("2026-03-02 04:00:00", "2026-03-02 04:10:00", 60)
    )
    return [_frame(VIN_C, t) for t in times]


def _sessions() -> list[SessionEvent]:
    def ev(vin: str, t: str, event: str) -> SessionEvent:
        return SessionEvent(device_id=vin, protocol=GBT, time=utc(t), event=event, received_at=NOW)

    return [
        ev(VIN_A, "2026-03-02 01:00:00", "login"),
        ev(VIN_A, "2026-03-02 03:00:00", "logout"),
        ev(VIN_B, "2026-03-02 16:50:00", "login"),  # 23:50 in Bangkok, never logged out
        ev(VIN_B, "2026-03-03 01:00:00", "login"),
        ev(VIN_B, "2026-03-03 01:30:00", "logout"),
    ]


def _charger_records() -> list[Any]:
    def status(t: str, connector: int, value: str, code: str | None = None) -> ChargerStatus:
        return ChargerStatus(
            charger_id="C1",
            time=utc(t),
            connector_id=connector,
            status=value,
            protocol="ocpp1.6",
            error_code=code or "NoError",
            received_at=NOW,
        )

    def tx(t: str, tid: str, event: str, **kw: Any) -> ChargingSession:
        return ChargingSession(
            charger_id="C1",
            transaction_id=tid,
            time=utc(t),
            event=event,
            protocol="ocpp1.6",
            received_at=NOW,
            **kw,
        )

    def register(t: str, wh: float) -> MeterValue:
        return MeterValue(
            charger_id="C1",
            time=utc(t),
            connector_id=1,
            measurand="Energy.Active.Import.Register",
            value=wh,
            unit="Wh",
            protocol="ocpp1.6",
            received_at=NOW,
        )

    def link(t: str, event: str) -> ChargerEvent:
        return ChargerEvent(
            charger_id="C1", time=utc(t), event=event, protocol="ocpp1.6", received_at=NOW
        )

    return [
        status("2026-03-01 10:00:00", 1, "Available"),
        status("2026-03-02 02:00:00", 1, "Charging"),
        status("2026-03-02 04:00:00", 1, "Available"),
        status("2026-03-02 10:00:00", 1, "Faulted", "GroundFailure"),
        status("2026-03-02 12:00:00", 1, "Available"),
        status("2026-03-02 00:00:00", 2, "Unavailable"),
        status("2026-03-02 06:00:00", 2, "Available"),
        link("2026-03-02 14:00:00", "disconnect"),
        link("2026-03-02 15:00:00", "connect"),
        tx("2026-03-02 02:00:00", "101", "start", connector_id=1, meter_start_wh=1000.0),
        tx(
            "2026-03-02 04:00:00",
            "101",
            "stop",
            connector_id=1,
            meter_start_wh=1000.0,
            meter_stop_wh=31000.0,
            energy_wh=30000.0,
        ),
        tx("2026-03-02 05:00:00", "102", "start", connector_id=1, meter_start_wh=31000.0),
        tx("2026-03-02 06:00:00", "102", "stop", meter_stop_wh=41000.0),  # 1.6: no connector
        register("2026-03-01 19:00:00", 1000.0),
        register("2026-03-02 02:00:00", 1000.0),
        register("2026-03-02 04:00:00", 31000.0),
        register("2026-03-02 06:00:00", 41000.0),
    ]


def _swap_records() -> list[Any]:
    def swap(t: str, bay: int, result: str, **kw: Any) -> SwapEvent:
        return SwapEvent(
            station_id="W1", time=utc(t), bay=bay, result=result, received_at=NOW, **kw
        )

    def state(t: str, value: str, faults: list[str]) -> StationStatus:
        return StationStatus(
            station_id="W1", time=utc(t), state=value, faults=faults, received_at=NOW
        )

    def bay(t: str, n: int, pack: str) -> BatteryInventory:
        return BatteryInventory(
            station_id="W1", time=utc(t), bay=n, state="ready", pack_id=pack, received_at=NOW
        )

    return [
        swap(
            "2026-03-02 01:00:00",
            1,
            "success",
            vin=VIN_A,
            pack_out_id="P1",
            pack_out_energy_wh=50000.0,
            pack_in_id="P2",
            pack_in_energy_wh=250000.0,
            duration_s=240.0,
        ),
        swap(
            "2026-03-02 02:00:00",
            2,
            "success",
            vin=VIN_B,
            pack_out_id="P3",
            pack_out_energy_wh=60000.0,
            pack_in_id="P4",
            pack_in_energy_wh=240000.0,
            duration_s=300.0,
        ),
        swap(
            "2026-03-02 03:00:00",
            1,
            "failed",
            vin=VIN_A,
            pack_out_id="P1",
            duration_s=90.0,
            faults=["lock_error"],
        ),
        swap("2026-03-02 04:00:00", 2, "aborted", faults=["lock_error", "door_open"]),
        swap("2026-03-02 18:00:00", 1, "success", duration_s=200.0),  # 01:00 on 03-03 local
        state("2026-03-01 00:00:00", "operating", []),
        state("2026-03-02 05:00:00", "maintenance", ["cooling"]),
        state("2026-03-02 07:00:00", "operating", []),
        bay("2026-03-02 00:00:00", 3, "P5"),
        bay("2026-03-02 01:10:00", 1, "P2"),
    ]


REGISTRY = """
INSERT INTO operators (operator_id, name, timezone) VALUES
    ('op1', 'Operator One', 'Asia/Bangkok'), ('op2', 'Operator Two', NULL);
INSERT INTO fleets (fleet_id, operator_id, name) VALUES ('f1', 'op1', 'Fleet One');
INSERT INTO vehicles (vin, operator_id, fleet_id, plate, reporting_interval_s) VALUES
    ('LTESTREPORT00000A', 'op1', 'f1', 'BKK-1', 30),
    ('LTESTREPORT00000B', 'op1', 'f1', 'BKK-2', NULL),
    ('LTESTREPORT00000C', 'op2', NULL, NULL, 60);
INSERT INTO stations (station_id, operator_id, kind, timezone) VALUES
    ('S1', 'op1', 'charging', 'Asia/Dubai'), ('W1', 'op1', 'swap', NULL);
INSERT INTO chargers (charger_id, operator_id, station_id, protocol) VALUES
    ('C1', 'op1', 'S1', 'ocpp1.6'), ('C2', 'op1', 'S1', 'ocpp1.6');
"""


async def seed(dsn: str) -> None:
    """The registry and every record above into a migrated schema."""
    conn = await connect(dsn)
    try:
        await conn.execute(REGISTRY)
        frames, alarms = _vehicle_a()
        await write(conn, VehicleRealtime, frames + _vehicle_b() + _vehicle_c())
        await write(conn, Alarm, alarms)
        await write(conn, SessionEvent, _sessions())
        for rec in _charger_records() + _swap_records():
            await write(conn, type(rec), [rec])
    finally:
        await conn.close()
