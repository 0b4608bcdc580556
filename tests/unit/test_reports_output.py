"""Report outputs without a database: CSV and JSON rows, the SVG charts, the HTML page, the PDF,
the ``[reports]`` config section, the ``silkgate report`` arguments and its progress bar."""

from __future__ import annotations

import csv
import io
import json
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from gateway.cli import build_parser
from gateway.config import ConfigError, parse
from gateway.reports import (
    ConnectorDay,
    Gap,
    Report,
    ReportsConfig,
    Scope,
    SwapStationDay,
    VehicleDay,
    iter_csv,
    render,
    report_to_json,
    to_csv,
    to_html,
    to_json,
    to_pdf,
)
from gateway.reports.charts import Chart, Rect, Series, Text, fmt_number, layout, nice_max, to_svg
from gateway.reports.cli import ProgressBar, _format
from gateway.reports.pdf import latin1

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pdftext import pdf_text

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


def vehicle_row(vin: str = "LTEST000000000001", day: int = 2, **kw: object) -> VehicleDay:
    fields: dict[str, object] = dict(
        vin=vin,
        day=date(2026, 3, day),
        tz="Asia/Bangkok",
        operator_id="op1",
        fleet_id=None,
        plate='BKK "1", north',
        interval_s=30.0,
        frames=279,
        reissued=3,
        expected_frames=299,
        completeness_pct=93.311,
        online_s=7200.0,
        intervals=217,
        intervals_late=1,
        interval_compliance_pct=99.539,
        alarm3_s=61.0,
        alarm3_intervals=61,
        alarm3_intervals_late=1,
        alarm3_compliance_pct=98.361,
        gap_count=1,
        gap_s=600.0,
        longest_gap_s=600.0,
        gaps=[Gap(start=T0, end=T0.replace(minute=40), seconds=600.0, during_alarm=False)],
        logins=1,
        logouts=1,
        sessions=[],
        alarm_frames={"3": 61},
        alarm_flags={"battery_high_temperature": 61},
        alarm3_stretches=[],
        distance_km=59.75,
        track_km=7.973,
        energy_out_kwh=118.625,
        energy_in_kwh=0.0,
        soc_min_pct=80,
        soc_max_pct=80,
        speed_max_kmh=None,
        first_frame=T0,
        last_frame=T0,
        compliant=False,
        source="raw",
    )
    fields.update(kw)
    return VehicleDay(**fields)  # type: ignore[arg-type]


def charger_row() -> ConnectorDay:
    return ConnectorDay(
        charger_id="C1",
        station_id="S1",
        operator_id="op1",
        evse_id=None,
        connector_id=1,
        day=date(2026, 3, 2),
        tz="Asia/Dubai",
        status_s={"Available": 75600.0, "Faulted": 7200.0, "Offline": 3600.0},
        available_s=75600.0,
        unavailable_s=7200.0,
        offline_s=3600.0,
        unknown_s=0.0,
        availability_pct=87.5,
        status_changes=4,
        faults=1,
        fault_codes={"GroundFailure": 1},
        sessions=2,
        energy_wh=40000.0,
        meter_energy_wh=40000.0,
    )


def swap_row(day: int = 2) -> SwapStationDay:
    return SwapStationDay(
        station_id="W1",
        operator_id="op1",
        day=date(2026, 3, day),
        tz="Asia/Bangkok",
        swaps=4,
        succeeded=2,
        failed=1,
        aborted=1,
        failure_pct=50.0,
        duration_mean_s=270.0,
        duration_p50_s=270.0,
        duration_p95_s=297.0,
        duration_max_s=300.0,
        vehicles=2,
        packs_swapped=4,
        packs_seen=5,
        energy_swapped_wh=380000.0,
        swap_faults={"lock_error": 2},
        state_s={"operating": 79200.0, "maintenance": 7200.0},
        operating_pct=91.667,
        station_faults={"cooling": 1},
    )


def report(kind: str, rows: list[object]) -> Report:
    return Report(
        kind=kind,  # type: ignore[arg-type]
        start_day=date(2026, 3, 2),
        end_day=date(2026, 3, 3),
        generated_at=datetime(2026, 3, 10, tzinfo=UTC),
        scope=Scope(operator="op1"),
        parameters={"timezone": "UTC", "rollups": True},
        rows=rows,  # type: ignore[arg-type]
    )


def test_csv_has_every_field_and_json_cells() -> None:
    text = to_csv([vehicle_row(), vehicle_row(day=3, gaps=[], compliant=None)])
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == list(VehicleDay.__struct_fields__)
    first = dict(zip(lines[0], lines[1], strict=True))
    assert first["day"] == "2026-03-02" and first["plate"] == 'BKK "1", north'
    assert first["first_frame"] == "2026-03-02T01:30:00Z" and first["fleet_id"] == ""
    assert first["compliant"] == "false" and first["speed_max_kmh"] == ""
    assert json.loads(first["gaps"]) == [
        {
            "start": "2026-03-02T01:30:00Z",
            "end": "2026-03-02T01:40:00Z",
            "seconds": 600.0,
            "during_alarm": False,
        }
    ]
    assert json.loads(first["alarm_flags"]) == {"battery_high_temperature": 61}
    second = dict(zip(lines[0], lines[2], strict=True))
    assert second["gaps"] == "[]" and second["compliant"] == ""
    assert "".join(iter_csv([vehicle_row()])) == to_csv([vehicle_row()])


def test_empty_csv_needs_the_kind() -> None:
    assert to_csv([], "swap").strip() == ",".join(SwapStationDay.__struct_fields__)
    with pytest.raises(ValueError):
        to_csv([])


def test_json_rows_and_report() -> None:
    rows = json.loads(to_json([charger_row()]))
    assert rows[0]["day"] == "2026-03-02" and rows[0]["status_s"]["Offline"] == 3600.0
    doc = json.loads(report_to_json(report("chargers", [charger_row()])))
    assert doc["kind"] == "chargers" and doc["scope"]["operator"] == "op1"
    assert doc["generated_at"] == "2026-03-10T00:00:00Z" and len(doc["rows"]) == 1
    assert json.loads(render(report("chargers", [charger_row()]), "json")) == doc
    with pytest.raises(ValueError, match="unknown report format"):
        render(report("swap", []), "xlsx")


def test_chart_layout_and_svg() -> None:
    assert [nice_max(v) for v in (0, 0.7, 3, 7.5, 120)] == [1.0, 1.0, 5.0, 10.0, 200.0]
    assert [fmt_number(v) for v in (1500, 2_000_000, 0.25)] == ["1.5k", "2M", "0.25"]
    chart = Chart(
        "Swaps <per> day",
        ["03-01", "03-02", "03-03"],
        [Series("ok", [3.0, None, 1.0]), Series("failed", [1.0, 2.0, 0.0], "#c23030")],
        stacked=True,
    )
    d = layout(chart, 600, 200)
    bars = [s for s in d.shapes if isinstance(s, Rect) and s.y > 20]
    assert len(bars) == 4  # None and 0 draw nothing
    assert max(b.y + b.h for b in bars) == pytest.approx(200 - 34)  # on the axis
    assert {s.text for s in d.shapes if isinstance(s, Text)} >= {"03-01", "ok", "failed", "4"}
    svg = to_svg(chart)
    root = ET.fromstring(svg)  # well-formed, title escaped
    assert root.tag.endswith("svg") and "Swaps &lt;per&gt; day" in svg
    assert len(root.findall("{http://www.w3.org/2000/svg}rect")) >= 4


def test_html_is_one_printable_page() -> None:
    page = to_html(report("vehicles", [vehicle_row(), vehicle_row(day=3)]))
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 2
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
    assert "LTEST000000000001" in page and "BKK &quot;1&quot;, north" in page
    assert "2026-03-02 08:30:00 +0700" in page  # the gap, in the vehicle's zone
    swap = to_html(report("swap", [swap_row(), swap_row(3)]))
    assert "Swaps per day" in swap and "lock_error" in swap
    chargers = to_html(report("chargers", [charger_row()]))
    assert "GroundFailure" in chargers and "87.5" in chargers


def test_pdf_has_text_and_charts() -> None:
    pdf = to_pdf(report("swap", [swap_row(), swap_row(3)]))
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    text = pdf_text(pdf)
    assert "Battery-swap stations" in text and "lock_error" in text
    assert " re" in text  # rectangles: the bars
    odd = report("vehicles", [vehicle_row(plate="กท 1234")])  # Thai plate: not Latin-1
    assert to_pdf(odd).startswith(b"%PDF-")
    assert latin1("กท 1234 é") == "?? 1234 é"


def test_reports_config_section() -> None:
    cfg = parse({"reports": {"timezone": "Asia/Jakarta", "reporting_interval_s": 10}})
    assert cfg.reports == ReportsConfig(timezone="Asia/Jakarta", reporting_interval_s=10.0)
    with pytest.raises(ConfigError, match="reports"):
        parse({"reports": {"timezone": "Asia/Atlantis"}})
    with pytest.raises(ConfigError, match=r"reports\.reporting_interval_s"):
        parse({"reports": {"reporting_interval_s": 0}})


def test_report_arguments() -> None:
    argv = ["report", "vehicles", "--from", "2026-03-01", "--to", "2026-03-31"]
    ns = build_parser().parse_args([*argv, "--vin", "A", "--vin", "B", "--out", "month.PDF"])
    assert (ns.kind, ns.start, ns.end, ns.vin) == (
        "vehicles",
        date(2026, 3, 1),
        date(2026, 3, 31),
        ["A", "B"],
    )
    assert _format(ns) == "pdf"
    ns = build_parser().parse_args(["report", "swap", "--from", "2026-03-01", "--out", "x.txt"])
    assert (_format(ns), ns.end) == ("csv", None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["report", "swap", "--from", "March"])


def test_progress_bar() -> None:
    plain = io.StringIO()
    bar = ProgressBar(plain, "report vehicles", tty=False)
    for done in range(0, 21):
        bar(done, 20)
    lines = plain.getvalue().splitlines()
    assert len(lines) == 11 and lines[-1].startswith("report vehicles: 100% (20/20)")
    tty = io.StringIO()
    bar = ProgressBar(tty, "r", tty=True)
    bar(1, 4)
    bar(4, 4)
    assert tty.getvalue().startswith("\rr [########") and tty.getvalue().endswith("\n")
    assert "100% 4/4" in tty.getvalue()
