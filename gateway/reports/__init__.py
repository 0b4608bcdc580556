"""Compliance reports: per vehicle and day (GB/T 32960 reporting), per charger connector and
day (availability, sessions, energy), per swap station and day (swaps, failures, packs).
Field definitions, methods and the time-zone rule: docs/reports.md.

Public API (``conn`` is an asyncpg connection or pool connection on a migrated schema; days are
``datetime.date``, both ends included, local to each operator's / station's time zone)::

    from gateway.reports import Scope, vehicle_daily, to_csv

    rows = await vehicle_daily(conn, Scope(operator="op1"), date(2026, 3, 1), date(2026, 3, 31))
    body: str = to_csv(rows)

    async def vehicle_daily(conn, scope: Scope, start_day: date, end_day: date, *,
                            settings: ReportsConfig | None = None, tz: str | None = None,
                            rollups: bool = True, now: datetime | None = None,
                            progress: Progress | None = None) -> list[VehicleDay]
    async def charger_daily(conn, scope, start_day, end_day, *, settings=None, tz=None,
                            now=None, progress=None) -> list[ConnectorDay]
    async def swap_daily(conn, scope, start_day, end_day, *, settings=None, tz=None,
                         now=None, progress=None) -> list[SwapStationDay]
    async def build_report(conn, kind: ReportKind, scope, start_day, end_day, **same) -> Report
    async def refresh_vehicle_days(conn, start_day, end_day, *, scope=Scope(), settings=None,
                                   now=None, progress=None) -> int   # rollup rows written
    async def refresh_recent(conn, settings=None, *, now=None) -> int  # the scheduled refresh:
                                   # the last settings.refresh_days complete days

    to_csv(rows, kind=None) -> str   # header + one line per row; nested values as JSON text
    iter_csv(rows, kind=None)        # the same in pieces, for a streaming response
    to_json(rows) -> bytes           # a JSON array of the rows
    report_to_json(report) -> bytes  # {"kind", "start_day", ..., "parameters", "rows"}
    to_html(report) -> str           # printable page, inline SVG charts, no JavaScript
    to_pdf(report) -> bytes          # the same content as PDF (fpdf2)
    render(report, fmt) -> bytes     # fmt in FORMATS ("csv", "json", "html", "pdf")
    MEDIA_TYPES[fmt] -> str          # Content-Type for each format

``Scope(operator=, fleet=, fleets=, vins=, stations=, chargers=)`` selects what is reported
(empty: all registered). ``settings`` defaults to ``ReportsConfig()`` (the ``[reports]``
config section); ``tz`` forces one time zone for every row; ``rollups=False`` computes
everything from the raw rows (the benchmark's baseline); ``now`` bounds the current day
(tests); ``progress(done, total)`` is called as work units complete. Bad arguments (end
before start, a range longer than ``settings.max_days``, an unknown time zone) raise
:class:`ReportError` (a ``ValueError``).

The names load on first use (PEP 562): ``gateway.config`` imports :mod:`.config`, which must
not pull in the report code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.lazy import lazy_getattr

if TYPE_CHECKING:
    from gateway.reports.build import (
        FORMATS,
        MEDIA_TYPES,
        ReportFormat,
        build_report,
        iter_csv,
        render,
        report_to_json,
        to_csv,
        to_json,
    )
    from gateway.reports.chargers import charger_daily
    from gateway.reports.config import ReportsConfig
    from gateway.reports.html import to_html
    from gateway.reports.intervals import Progress, ReportError
    from gateway.reports.model import (
        REPORT_KINDS,
        AlarmStretch,
        ConnectorDay,
        Gap,
        Report,
        ReportKind,
        ReportRow,
        Scope,
        SessionSpan,
        SwapStationDay,
        VehicleDay,
    )
    from gateway.reports.pdf import to_pdf
    from gateway.reports.swap import swap_daily
    from gateway.reports.vehicles import refresh_recent, refresh_vehicle_days, vehicle_daily

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "REPORT_KINDS",
    "AlarmStretch",
    "ConnectorDay",
    "Gap",
    "Progress",
    "Report",
    "ReportError",
    "ReportFormat",
    "ReportKind",
    "ReportRow",
    "ReportsConfig",
    "Scope",
    "SessionSpan",
    "SwapStationDay",
    "VehicleDay",
    "build_report",
    "charger_daily",
    "iter_csv",
    "refresh_recent",
    "refresh_vehicle_days",
    "render",
    "report_to_json",
    "swap_daily",
    "to_csv",
    "to_html",
    "to_json",
    "to_pdf",
    "vehicle_daily",
]

_WHERE = {
    "FORMATS": "build",
    "MEDIA_TYPES": "build",
    "ReportFormat": "build",
    "build_report": "build",
    "iter_csv": "build",
    "render": "build",
    "report_to_json": "build",
    "to_csv": "build",
    "to_json": "build",
    "charger_daily": "chargers",
    "ReportsConfig": "config",
    "to_html": "html",
    "Progress": "intervals",
    "ReportError": "intervals",
    "REPORT_KINDS": "model",
    "AlarmStretch": "model",
    "ConnectorDay": "model",
    "Gap": "model",
    "Report": "model",
    "ReportKind": "model",
    "ReportRow": "model",
    "Scope": "model",
    "SessionSpan": "model",
    "SwapStationDay": "model",
    "VehicleDay": "model",
    "to_pdf": "pdf",
    "swap_daily": "swap",
    "refresh_recent": "vehicles",
    "refresh_vehicle_days": "vehicles",
    "vehicle_daily": "vehicles",
}

__getattr__ = lazy_getattr(__name__, _WHERE)
