"""What a printable report shows: key figures, charts and tables computed from a
:class:`Report`'s rows, in one :class:`Document` that the HTML and PDF writers both render.
Times in tables are local to each row's zone. Long tables are cut at :data:`MAX_TABLE_ROWS`
(the CSV / JSON exports hold everything)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TypeVar, cast

from gateway.reports.charts import PALETTE, Chart, Series
from gateway.reports.intervals import pct, zone
from gateway.reports.model import ConnectorDay, Report, SwapStationDay, VehicleDay

MAX_TABLE_ROWS = 300

T = TypeVar("T")


@dataclass(slots=True)
class Table:
    """A titled table of text cells (the first ``numeric_from`` columns left-aligned)."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""
    numeric_from: int = 1


@dataclass(slots=True)
class Document:
    """A printable report: title, the lines under it, key figures, charts, tables."""

    title: str
    subtitle: list[str]
    figures: list[tuple[str, str]]
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def num(value: float | None, digits: int = 1) -> str:
    """A number for a table cell: thousands separated, ``-`` for None."""
    if value is None:
        return "-"
    if digits == 0:
        return f"{round(value):,}"
    return f"{value:,.{digits}f}"


def hours(seconds: float) -> str:
    """Seconds as hours with one decimal."""
    return num(seconds / 3600.0, 1)


def local(t: datetime | None, tz: str) -> str:
    """``t`` in zone ``tz`` as ``YYYY-MM-DD HH:MM:SS +HHMM``."""
    if t is None:
        return "-"
    return t.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M:%S %z")


def _cut(rows: list[list[str]], what: str) -> tuple[list[list[str]], str]:
    if len(rows) <= MAX_TABLE_ROWS:
        return rows, ""
    return rows[:MAX_TABLE_ROWS], (
        f"The first {MAX_TABLE_ROWS} of {len(rows)} {what}; the CSV and JSON exports hold all."
    )


def _group(rows: Iterable[T], key: Callable[[T], str]) -> dict[str, list[T]]:
    out: dict[str, list[T]] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def _days(report: Report) -> list[date]:
    return sorted({r.day for r in report.rows})


def _head(report: Report, title: str) -> tuple[str, list[str]]:
    s = report.scope
    parts = [f"operator {s.operator}" if s.operator else "", f"fleet {s.fleet}" if s.fleet else ""]
    named = (("fleet", s.fleets), ("VIN", s.vins), ("station", s.stations), ("charger", s.chargers))
    for name, values in named:
        if values:
            parts.append(f"{name} {', '.join(values[:5])}{' ...' if len(values) > 5 else ''}")
    scope = "; ".join(p for p in parts if p) or "all registered"
    zones = sorted({r.tz for r in report.rows}) or [str(report.parameters.get("timezone", ""))]
    return title, [
        f"{report.start_day.isoformat()} to {report.end_day.isoformat()} (local days: "
        f"{', '.join(zones)})",
        f"Scope: {scope}",
        f"Generated {report.generated_at.strftime('%Y-%m-%d %H:%M:%S')} UTC by silkgate",
    ]


def vehicles_document(report: Report) -> Document:
    rows = cast(Sequence[VehicleDay], report.rows)
    title, sub = _head(report, "Vehicle reporting compliance (GB/T 32960)")
    days = _days(report)
    by_day = _group(rows, lambda r: r.day.isoformat())
    frames = sum(r.frames for r in rows)
    expected = sum(r.expected_frames for r in rows)
    judged = [r for r in rows if r.compliant is not None]
    gaps = [(r, g) for r in rows for g in r.gaps]
    unique_gaps = {(r.vin, g.start, g.end): (r, g) for r, g in gaps}
    stretches = {(r.vin, s.start): (r, s) for r in rows for s in r.alarm3_stretches}
    a_iv = sum(r.alarm3_intervals for r in rows)
    a_late = sum(r.alarm3_intervals_late for r in rows)
    iv = sum(r.intervals for r in rows)
    iv_late = sum(r.intervals_late for r in rows)
    figures = [
        ("Vehicles", num(len({r.vin for r in rows}), 0)),
        ("Vehicle-days online", num(sum(1 for r in rows if r.online_s > 0), 0)),
        ("Frames received / expected", f"{num(frames, 0)} / {num(expected, 0)}"),
        ("Completeness", f"{num(pct(frames, expected), 2)} %"),
        ("Intervals on time", f"{num(pct(iv - iv_late, iv), 2)} %"),
        ("Compliant vehicle-days", f"{sum(1 for r in judged if r.compliant)} of {len(judged)}"),
        (
            "Gaps",
            f"{len(unique_gaps)} ({hours(sum(g.seconds for _, g in unique_gaps.values()))} h)",
        ),
        ("Level-3 alarm stretches", num(len(stretches), 0)),
        ("Intervals on time in level-3 alarms", f"{num(pct(a_iv - a_late, a_iv), 2)} %"),
        ("Distance (odometer)", f"{num(sum(r.distance_km or 0.0 for r in rows), 1)} km"),
        (
            "Energy out / in",
            f"{num(sum(r.energy_out_kwh for r in rows), 1)} / "
            f"{num(sum(r.energy_in_kwh for r in rows), 1)} kWh",
        ),
    ]
    labels = [d.strftime("%m-%d") for d in days]
    daily = [by_day.get(d.isoformat(), []) for d in days]
    charts = [
        Chart(
            "Completeness per day (frames received / expected)",
            labels,
            [
                Series(
                    "completeness",
                    [
                        pct(sum(r.frames for r in g), sum(r.expected_frames for r in g))
                        for g in daily
                    ],
                )
            ],
            unit="%",
            y_max=100.0,
        ),
        Chart(
            "Gaps and level-3 alarm stretches per day",
            labels,
            [
                Series("gaps", [float(sum(r.gap_count for r in g)) for g in daily], PALETTE[1]),
                Series(
                    "level-3 stretches",
                    [float(sum(len(r.alarm3_stretches) for r in g)) for g in daily],
                    PALETTE[2],
                ),
            ],
        ),
    ]
    per_vehicle: list[list[str]] = []
    for vin, rs in sorted(_group(rows, lambda r: r.vin).items()):
        f, e = sum(r.frames for r in rs), sum(r.expected_frames for r in rs)
        i, late = sum(r.intervals for r in rs), sum(r.intervals_late for r in rs)
        judged_v = [r for r in rs if r.compliant is not None]
        per_vehicle.append(
            [
                vin,
                rs[0].plate or "",
                num(sum(1 for r in rs if r.online_s > 0), 0),
                hours(sum(r.online_s for r in rs)),
                num(f, 0),
                num(e, 0),
                num(pct(f, e), 1),
                num(pct(i - late, i), 1),
                num(sum(r.gap_count for r in rs), 0),
                num(max((r.longest_gap_s for r in rs), default=0.0) / 60.0, 1),
                num(sum(r.alarm3_intervals_late for r in rs), 0),
                num(sum(r.distance_km or 0.0 for r in rs), 1),
                num(sum(r.energy_out_kwh for r in rs), 1),
                f"{sum(1 for r in judged_v if r.compliant)}/{len(judged_v)}",
            ]
        )
    per_vehicle, note = _cut(per_vehicle, "vehicles")
    tables = [
        Table(
            "Per vehicle",
            [
                "VIN",
                "Plate",
                "Days online",
                "Online h",
                "Frames",
                "Expected",
                "Complete %",
                "On time %",
                "Gaps",
                "Longest gap min",
                "L3 late",
                "km",
                "kWh out",
                "Compliant days",
            ],
            per_vehicle,
            note,
            numeric_from=2,
        )
    ]
    gap_rows = [
        [
            r.vin,
            local(g.start, r.tz),
            local(g.end, r.tz),
            num(g.seconds / 60.0, 1),
            "yes" if g.during_alarm else "",
        ]
        for r, g in sorted(unique_gaps.values(), key=lambda x: -x[1].seconds)
    ]
    gap_rows, note = _cut(gap_rows, "gaps")
    tables.append(
        Table(
            "Gaps, longest first",
            ["VIN", "From", "To", "Minutes", "In L3 alarm"],
            gap_rows,
            note,
            3,
        )
    )
    stretch_rows = [
        [r.vin, local(s.start, r.tz), local(s.end, r.tz), num(s.seconds, 0)]
        for r, s in sorted(stretches.values(), key=lambda x: (x[0].vin, x[1].start))
    ]
    stretch_rows, note = _cut(stretch_rows, "stretches")
    tables.append(
        Table("Level-3 alarm stretches", ["VIN", "From", "To", "Seconds"], stretch_rows, note, 3)
    )
    return Document(title, sub, figures, charts, tables)


def chargers_document(report: Report) -> Document:
    rows = cast(Sequence[ConnectorDay], report.rows)
    title, sub = _head(report, "Charging stations: availability, sessions and energy")
    days = _days(report)
    available = sum(r.available_s for r in rows)
    known = sum(r.available_s + r.unavailable_s + r.offline_s for r in rows)
    codes: dict[str, int] = {}
    for r in rows:
        for k, v in r.fault_codes.items():
            codes[k] = codes.get(k, 0) + v
    figures = [
        ("Chargers", num(len({r.charger_id for r in rows}), 0)),
        ("Connectors", num(len({(r.charger_id, r.evse_id, r.connector_id) for r in rows}), 0)),
        ("Sessions", num(sum(r.sessions for r in rows), 0)),
        ("Energy delivered", f"{num(sum(r.energy_wh for r in rows) / 1000.0, 1)} kWh"),
        ("Availability", f"{num(pct(available, known), 2)} %"),
        ("Faults reported", num(sum(r.faults for r in rows), 0)),
    ]
    conn_key: Callable[[ConnectorDay], str] = lambda r: (  # noqa: E731
        f"{r.charger_id}/{'' if r.evse_id is None else f'{r.evse_id}/'}{r.connector_id}"
    )
    by_conn = sorted(_group(rows, conn_key).items())
    avail = [
        (
            k,
            pct(
                sum(r.available_s for r in rs),
                sum(r.available_s + r.unavailable_s + r.offline_s for r in rs),
            ),
        )
        for k, rs in by_conn
    ]
    shown = sorted(avail, key=lambda x: x[1] if x[1] is not None else 101.0)[:40]
    by_day = _group(rows, lambda r: r.day.isoformat())
    charts = [
        Chart(
            "Energy delivered per day (completed sessions)",
            [d.strftime("%m-%d") for d in days],
            [
                Series(
                    "energy",
                    [
                        sum(r.energy_wh for r in by_day.get(d.isoformat(), [])) / 1000.0
                        for d in days
                    ],
                )
            ],
            unit="kWh",
        ),
        Chart(
            "Availability per connector" + (" (the 40 lowest)" if len(avail) > 40 else ""),
            [k for k, _ in shown],
            [Series("availability", [v for _, v in shown], PALETTE[3])],
            unit="%",
            y_max=100.0,
        ),
    ]
    table_rows = []
    for k, rs in by_conn:
        a = sum(r.available_s for r in rs)
        u = sum(r.unavailable_s for r in rs)
        o = sum(r.offline_s for r in rs)
        meters = [r.meter_energy_wh for r in rs if r.meter_energy_wh is not None]
        table_rows.append(
            [
                k,
                rs[0].station_id or "",
                num(pct(a, a + u + o), 1),
                hours(a),
                hours(u),
                hours(o),
                hours(sum(r.unknown_s for r in rs)),
                num(sum(r.faults for r in rs), 0),
                num(sum(r.sessions for r in rs), 0),
                num(sum(r.energy_wh for r in rs) / 1000.0, 1),
                num(sum(meters) / 1000.0, 1) if meters else "-",
            ]
        )
    table_rows, note = _cut(table_rows, "connectors")
    station_rows = []
    for sid, rs in sorted(_group(rows, lambda r: r.station_id or "(none)").items()):
        a = sum(r.available_s for r in rs)
        known_s = sum(r.available_s + r.unavailable_s + r.offline_s for r in rs)
        station_rows.append(
            [
                sid,
                num(len({r.charger_id for r in rs}), 0),
                num(len({(r.charger_id, r.evse_id, r.connector_id) for r in rs}), 0),
                num(pct(a, known_s), 1),
                num(sum(r.faults for r in rs), 0),
                num(sum(r.sessions for r in rs), 0),
                num(sum(r.energy_wh for r in rs) / 1000.0, 1),
            ]
        )
    station_rows, station_note = _cut(station_rows, "stations")
    tables = [
        Table(
            "Per station",
            ["Station", "Chargers", "Connectors", "Avail. %", "Faults", "Sessions", "kWh"],
            station_rows,
            station_note,
        ),
        Table(
            "Per connector (charger/[EVSE/]connector)",
            [
                "Connector",
                "Station",
                "Avail. %",
                "Avail. h",
                "Unavail. h",
                "Offline h",
                "Unknown h",
                "Faults",
                "Sessions",
                "kWh",
                "Meter kWh",
            ],
            table_rows,
            note,
            numeric_from=2,
        ),
        Table(
            "Fault codes",
            ["Code", "Reports"],
            [[k, num(v, 0)] for k, v in sorted(codes.items(), key=lambda x: -x[1])],
        ),
    ]
    return Document(title, sub, figures, charts, tables)


def swap_document(report: Report) -> Document:
    rows = cast(Sequence[SwapStationDay], report.rows)
    title, sub = _head(report, "Battery-swap stations: swaps, failures and packs")
    days = _days(report)
    swaps = sum(r.swaps for r in rows)
    ok = sum(r.succeeded for r in rows)
    faults: dict[str, int] = {}
    for r in rows:
        for k, v in r.swap_faults.items():
            faults[k] = faults.get(k, 0) + v
    figures = [
        ("Stations", num(len({r.station_id for r in rows}), 0)),
        ("Swaps", num(swaps, 0)),
        ("Succeeded", f"{num(ok, 0)} ({num(pct(ok, swaps), 1)} %)"),
        (
            "Failed / aborted",
            f"{num(sum(r.failed for r in rows), 0)} / {num(sum(r.aborted for r in rows), 0)}",
        ),
        ("Energy handed over", f"{num(sum(r.energy_swapped_wh for r in rows) / 1000.0, 1)} kWh"),
    ]
    by_day = _group(rows, lambda r: r.day.isoformat())
    daily = [by_day.get(d.isoformat(), []) for d in days]
    charts = [
        Chart(
            "Swaps per day",
            [d.strftime("%m-%d") for d in days],
            [
                Series("success", [float(sum(r.succeeded for r in g)) for g in daily], PALETTE[3]),
                Series("failed", [float(sum(r.failed for r in g)) for g in daily], PALETTE[2]),
                Series("aborted", [float(sum(r.aborted for r in g)) for g in daily], PALETTE[1]),
            ],
            stacked=True,
        )
    ]
    table_rows = []
    for sid, rs in sorted(_group(rows, lambda r: r.station_id).items()):
        n = sum(r.swaps for r in rs)
        known = sum(v for r in rs for k, v in r.state_s.items() if k != "Unknown")
        operating = sum(r.state_s.get("operating", 0.0) for r in rs)
        means = [(r.duration_mean_s, r.succeeded) for r in rs if r.duration_mean_s is not None]
        weight = sum(w for _, w in means)
        table_rows.append(
            [
                sid,
                num(n, 0),
                num(sum(r.succeeded for r in rs), 0),
                num(sum(r.failed for r in rs), 0),
                num(sum(r.aborted for r in rs), 0),
                num(pct(n - sum(r.succeeded for r in rs), n), 1),
                num(sum(m * w for m, w in means) / weight, 0) if weight else "-",
                num(max((r.duration_max_s or 0.0 for r in rs), default=0.0), 0),
                num(max(r.packs_seen for r in rs), 0),
                num(sum(r.energy_swapped_wh for r in rs) / 1000.0, 1),
                num(pct(operating, known), 1),
            ]
        )
    table_rows, note = _cut(table_rows, "stations")
    tables = [
        Table(
            "Per station",
            [
                "Station",
                "Swaps",
                "OK",
                "Failed",
                "Aborted",
                "Fail %",
                "Mean s",
                "Max s",
                "Packs/day max",
                "kWh",
                "Operating %",
            ],
            table_rows,
            note,
        ),
        Table(
            "Swap faults",
            ["Fault", "Swaps"],
            [[k, num(v, 0)] for k, v in sorted(faults.items(), key=lambda x: -x[1])],
        ),
    ]
    return Document(title, sub, figures, charts, tables)


def document(report: Report) -> Document:
    """The printable content of a report."""
    if report.kind == "vehicles":
        return vehicles_document(report)
    if report.kind == "chargers":
        return chargers_document(report)
    return swap_document(report)
