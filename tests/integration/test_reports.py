"""Compliance reports against the real TimescaleDB: seeded vehicles (a gap, a level-3 alarm
stretch, reissues, sessions across local midnight, a vehicle without sessions), a charger's
status history, sessions and meter register, a swap station's swaps, and the known answers;
the rollup gives the same rows as the raw path; ``silkgate report`` writes CSV, JSON, HTML and
PDF."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec
import pytest

from gateway.cli import main
from gateway.reports import (
    ConnectorDay,
    Gap,
    ReportError,
    ReportsConfig,
    Scope,
    SessionSpan,
    SwapStationDay,
    VehicleDay,
    build_report,
    charger_daily,
    refresh_recent,
    refresh_vehicle_days,
    render,
    swap_daily,
    vehicle_daily,
)
from gateway.store.testing import migrated_schema

from .reportkit import DAY2, DAY3, DAY4, NOW, SETTINGS, VIN_A, VIN_B, VIN_C, seed
from .reportkit import utc as _t

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pdftext import pdf_text

if TYPE_CHECKING:
    from .conftest import Services


@pytest.fixture(scope="module")
def dsn(services: Services) -> Iterator[str]:
    for scoped in migrated_schema(services.dsn, prefix="silkgate_reports"):
        asyncio.run(seed(scoped))
        yield scoped


async def _vehicles(conn: asyncpg.Connection, **kw: Any) -> dict[tuple[str, date], VehicleDay]:
    kw.setdefault("settings", SETTINGS)
    rows = await vehicle_daily(conn, Scope(), DAY2, DAY4, now=NOW, **kw)
    return {(r.vin, r.day): r for r in rows}


@pytest.mark.asyncio
async def test_vehicle_with_a_gap_an_alarm_stretch_and_reissues(conn: asyncpg.Connection) -> None:
    rows = await _vehicles(conn, rollups=False)
    assert len(rows) == 9  # 3 vehicles x 3 days, days without data included
    a = rows[VIN_A, DAY2]
    assert (a.tz, a.interval_s, a.operator_id, a.fleet_id, a.plate) == (
        "Asia/Bangkok",
        30.0,
        "op1",
        "f1",
        "BKK-1",
    )
    assert (a.frames, a.reissued) == (279, 3)
    assert a.online_s == 7200.0  # login 08:00 to logout 10:00 local
    assert a.alarm3_s == 61.0  # 02:00:00 to 02:01:00 plus one 1-s period
    assert a.expected_frames == 299  # (7200 - 61) / 30 + 61 / 1 = 298.97
    assert a.completeness_pct == pytest.approx(100 * 279 / 299, abs=1e-3)
    assert a.gaps == [
        Gap(
            start=_t("2026-03-02 01:30:00"),
            end=_t("2026-03-02 01:40:00"),
            seconds=600.0,
            during_alarm=False,
        )
    ]
    assert (a.gap_count, a.gap_s, a.longest_gap_s) == (1, 600.0, 600.0)
    # 216 on-time 30-s intervals plus the 600-s silence (late); after level-3 frames: 60 of
    # 1 s on time, then 30 s after the last one (late)
    assert (a.intervals, a.intervals_late) == (217, 1)
    assert (a.alarm3_intervals, a.alarm3_intervals_late) == (61, 1)
    assert a.interval_compliance_pct == pytest.approx(100 * 216 / 217, abs=1e-3)
    assert a.alarm3_compliance_pct == pytest.approx(100 * 60 / 61, abs=1e-3)
    assert [(s.start, s.end, s.seconds) for s in a.alarm3_stretches] == [
        (_t("2026-03-02 02:00:00"), _t("2026-03-02 02:01:00"), 60.0)
    ]
    assert a.alarm_frames == {"1": 2, "3": 61}
    assert a.alarm_flags == {"battery_high_temperature": 61, "soc_low": 2}
    assert (a.logins, a.logouts) == (1, 1)
    assert a.sessions == [
        SessionSpan(
            start=_t("2026-03-02 01:00:00"),
            end=_t("2026-03-02 03:00:00"),
            seconds=7200.0,
            ended_by="logout",
        )
    ]
    assert a.distance_km == pytest.approx(10059.75 - 10000.0, abs=1e-6)
    # 0.0717 degrees of latitude from the first to the last frame, 111.195 km each
    assert a.track_km == pytest.approx(0.0717 * 6371.0088 * 3.141592653589793 / 180, abs=1e-3)
    # 65 kW over every interval of at most two periods: 7170 s less the 600-s silence
    assert a.energy_out_kwh == pytest.approx(65.0 * 6570 / 3600, abs=1e-3)
    assert a.energy_in_kwh == 0.0
    assert a.compliant is False  # 93.3 % < 95 %, and a gap
    assert (a.first_frame, a.last_frame) == (_t("2026-03-02 01:00:00"), _t("2026-03-02 02:59:30"))
    quiet = rows[VIN_A, DAY3]
    assert (quiet.frames, quiet.expected_frames, quiet.online_s, quiet.compliant) == (0, 0, 0, None)


@pytest.mark.asyncio
async def test_sessions_across_local_midnight(conn: asyncpg.Connection) -> None:
    rows = await _vehicles(conn, rollups=False)
    first, second = rows[VIN_B, DAY2], rows[VIN_B, DAY3]
    assert first.interval_s == 20.0  # vehicles.reporting_interval_s NULL: [reports] default
    # 23:50 to midnight in Bangkok: 30 frames of 20 s, all expected
    assert (first.frames, first.expected_frames, first.online_s) == (30, 30, 600.0)
    assert (first.logins, first.logouts, first.compliant) == (1, 0, True)
    session = SessionSpan(
        start=_t("2026-03-02 16:50:00"),
        end=_t("2026-03-02 17:20:20"),  # no logout: one period after its last frame
        seconds=1820.0,
        ended_by="silence",
    )
    assert first.sessions == [session]
    assert second.sessions == [
        session,
        SessionSpan(
            start=_t("2026-03-03 01:00:00"),
            end=_t("2026-03-03 01:30:00"),
            seconds=1800.0,
            ended_by="logout",
        ),
    ]
    assert (second.frames, second.expected_frames, second.online_s) == (151, 151, 3020.0)
    assert (second.intervals, second.intervals_late, second.gaps) == (150, 0, [])
    assert (second.logins, second.logouts, second.compliant) == (1, 1, True)
    # charging at 600 V, -100 A for 1780 s
    assert second.energy_in_kwh == pytest.approx(60.0 * 1780 / 3600, abs=1e-3)
    assert second.energy_out_kwh == pytest.approx(6.0 * 1220 / 3600, abs=1e-3)


@pytest.mark.asyncio
async def test_vehicle_without_login_events(conn: asyncpg.Connection) -> None:
    rows = await _vehicles(conn, rollups=False)
    c = rows[VIN_C, DAY2]
    assert c.tz == "UTC"  # the operator names no zone: [reports] timezone
    assert c.frames == 188
    # runs of frames: 00:00 to 03:01 (a 5-min silence is a gap, not offline) and 04:00 to 04:11
    assert c.online_s == 10860.0 + 660.0
    assert c.expected_frames == 192
    assert [(g.start, g.end, g.seconds) for g in c.gaps] == [
        (_t("2026-03-02 02:00:00"), _t("2026-03-02 02:05:00"), 300.0)
    ]
    assert (c.intervals, c.intervals_late) == (186, 1)
    assert (c.sessions, c.logins, c.compliant) == ([], 0, False)


@pytest.mark.asyncio
async def test_scope_and_forced_zone(conn: asyncpg.Connection) -> None:
    fleet = await vehicle_daily(conn, Scope(fleet="f1"), DAY2, DAY2, settings=SETTINGS, now=NOW)
    assert [r.vin for r in fleet] == [VIN_A, VIN_B]
    unknown = await vehicle_daily(conn, Scope(vins=("LNOTREGISTERED000",)), DAY2, DAY2, now=NOW)
    assert [(r.vin, r.frames, r.interval_s, r.operator_id) for r in unknown] == [
        ("LNOTREGISTERED000", 0, 30.0, None)
    ]
    forced = await vehicle_daily(
        conn, Scope(vins=(VIN_B,)), DAY2, DAY2, settings=SETTINGS, tz="UTC", now=NOW
    )
    # the whole first session falls on 2026-03-02 in UTC
    assert (forced[0].tz, forced[0].frames, forced[0].online_s) == ("UTC", 91, 1820.0)
    with pytest.raises(ReportError):
        await vehicle_daily(conn, Scope(), DAY3, DAY2)
    with pytest.raises(ReportError):
        await vehicle_daily(conn, Scope(), DAY2, DAY2, tz="Mars/Olympus")


def _plain(row: VehicleDay) -> dict[str, Any]:
    doc: dict[str, Any] = msgspec.to_builtins(row)
    doc.pop("source")
    return doc


@pytest.mark.asyncio
async def test_the_rollup_gives_the_raw_answers(conn: asyncpg.Connection) -> None:
    raw = await _vehicles(conn, rollups=False)
    written = await refresh_vehicle_days(conn, DAY2, DAY4, settings=SETTINGS, now=NOW)
    assert written == 9
    rolled = await _vehicles(conn)
    assert {r.source for r in rolled.values()} == {"rollup"}
    assert {k: _plain(v) for k, v in rolled.items()} == {k: _plain(v) for k, v in raw.items()}
    # other periods than the rollup's: computed from the raw rows again
    other = await _vehicles(
        conn, settings=ReportsConfig(reporting_interval_s=20.0, alarm_interval_s=2.0)
    )
    assert {r.source for r in other.values()} == {"raw"}
    # a day not yet over is not stored
    today = await refresh_vehicle_days(
        conn, DAY2, DAY2, settings=SETTINGS, now=_t("2026-03-02 20:00:00")
    )
    assert today == 2  # the Bangkok day ended at 17:00 UTC, VIN_C's UTC day is still running
    # the scheduled refresh: 03-01 to 03-04 complete in both zones at 03-05 00:00 UTC
    assert await refresh_recent(conn, SETTINGS, now=_t("2026-03-05 00:00:00")) == 3 * 4


@pytest.mark.asyncio
async def test_charger_availability_sessions_and_energy(conn: asyncpg.Connection) -> None:
    rows = await charger_daily(conn, Scope(stations=("S1",)), DAY2, DAY2, now=NOW)
    by_key = {(r.charger_id, r.connector_id): r for r in rows}
    assert sorted(by_key) == [("C1", 1), ("C1", 2), ("C2", 0)]
    one = by_key["C1", 1]
    assert one.tz == "Asia/Dubai"  # the station's zone wins over the operator's
    assert one.status_s == {
        "Available": 68400.0,
        "Charging": 7200.0,
        "Faulted": 7200.0,
        "Offline": 3600.0,
    }
    assert (one.available_s, one.unavailable_s, one.offline_s, one.unknown_s) == (
        75600.0,
        7200.0,
        3600.0,
        0.0,
    )
    assert one.availability_pct == 87.5
    assert (one.faults, one.fault_codes, one.status_changes) == (1, {"GroundFailure": 1}, 4)
    assert (one.sessions, one.energy_wh, one.meter_energy_wh) == (2, 40000.0, 40000.0)
    two = by_key["C1", 2]
    assert (two.available_s, two.unavailable_s, two.offline_s, two.unknown_s) == (
        46800.0,
        21600.0,
        3600.0,
        14400.0,
    )
    assert two.availability_pct == 65.0
    assert (two.sessions, two.faults, two.meter_energy_wh) == (0, 0, None)
    idle = by_key["C2", 0]
    assert (idle.unknown_s, idle.availability_pct, idle.sessions) == (86400.0, None, 0)


@pytest.mark.asyncio
async def test_swap_station_day(conn: asyncpg.Connection) -> None:
    rows = await swap_daily(conn, Scope(operator="op1"), DAY2, DAY3, now=NOW)
    assert [(r.station_id, r.day) for r in rows] == [("W1", DAY2), ("W1", DAY3)]
    w = rows[0]
    assert w.tz == "Asia/Bangkok"
    assert (w.swaps, w.succeeded, w.failed, w.aborted, w.failure_pct) == (4, 2, 1, 1, 50.0)
    assert (w.duration_mean_s, w.duration_p50_s, w.duration_p95_s, w.duration_max_s) == (
        270.0,
        270.0,
        297.0,
        300.0,
    )
    assert (w.vehicles, w.packs_swapped, w.packs_seen) == (2, 4, 5)
    assert w.energy_swapped_wh == 380000.0
    assert w.swap_faults == {"lock_error": 2, "door_open": 1}
    assert w.state_s == {"operating": 79200.0, "maintenance": 7200.0}
    assert w.operating_pct == pytest.approx(91.667, abs=1e-3)
    assert w.station_faults == {"cooling": 1}
    assert (rows[1].swaps, rows[1].succeeded) == (1, 1)


@pytest.mark.asyncio
async def test_reports_render(conn: asyncpg.Connection) -> None:
    report = await build_report(conn, "chargers", Scope(), DAY2, DAY2, now=NOW)
    assert all(isinstance(r, ConnectorDay) for r in report.rows)
    doc = json.loads(render(report, "json"))
    assert doc["kind"] == "chargers" and len(doc["rows"]) == 3
    swap = await build_report(conn, "swap", Scope(), DAY2, DAY3, now=NOW)
    assert all(isinstance(r, SwapStationDay) for r in swap.rows)
    html = render(swap, "html").decode()
    assert "<svg" in html and "Swaps per day" in html and "<script" not in html
    assert render(swap, "pdf").startswith(b"%PDF")


def test_cli_writes_every_format(dsn: str, tmp_path: Path) -> None:
    config = tmp_path / "silkgate.toml"
    config.write_text("[reports]\nreporting_interval_s = 20.0\n")
    base = ["report", "vehicles", "--from", "2026-03-02", "--to", "2026-03-04"]
    base += ["--dsn", dsn, "--config", str(config), "--operator", "op1"]
    for fmt in ("csv", "json", "html", "pdf"):
        out = tmp_path / f"vehicles.{fmt}"
        assert main([*base, "--out", str(out)]) == 0, fmt
    table = list(csv.DictReader(io.StringIO((tmp_path / "vehicles.csv").read_text())))
    assert len(table) == 6
    first = next(r for r in table if r["vin"] == VIN_A and r["day"] == "2026-03-02")
    assert (first["frames"], first["expected_frames"], first["gap_count"]) == ("279", "299", "1")
    assert json.loads(first["gaps"])[0]["seconds"] == 600.0
    doc = json.loads((tmp_path / "vehicles.json").read_text())
    assert doc["kind"] == "vehicles" and doc["parameters"]["reporting_interval_s"] == 20.0
    assert {r["vin"] for r in doc["rows"]} == {VIN_A, VIN_B}
    html = (tmp_path / "vehicles.html").read_text()
    assert "<svg" in html and VIN_A in html and "Completeness per day" in html
    pdf = (tmp_path / "vehicles.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    assert VIN_A in pdf_text(pdf) and "Vehicle reporting compliance" in pdf_text(pdf)


def test_cli_refresh_and_errors(
    dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["report", "refresh", "--from", "2026-03-02", "--dsn", dsn, "--progress"]
    assert main([*args, "--vin", VIN_C]) == 0
    err = capsys.readouterr().err
    assert "refreshed 1 vehicle-days" in err and "100%" in err
    bad = ["report", "swap", "--from", "2026-03-03", "--to", "2026-03-02", "--dsn", dsn]
    assert main([*bad, "--out", str(tmp_path / "x.csv")]) == 2
    assert "before it starts" in capsys.readouterr().err
