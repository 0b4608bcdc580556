"""Whole reports and their serializations: :func:`build_report` runs one kind of report,
:func:`render` turns it into CSV, JSON, HTML or PDF bytes.

CSV: one line per row, the row's fields in declaration order; times ISO 8601 UTC with ``Z``,
days ``YYYY-MM-DD``, booleans ``true`` / ``false``, None empty, nested values (gap lists,
status maps) as compact JSON text in the cell.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any, Literal

import msgspec

from gateway.render import iso_utc
from gateway.reports.chargers import charger_daily
from gateway.reports.config import ReportsConfig
from gateway.reports.intervals import Progress
from gateway.reports.model import (
    ConnectorDay,
    Report,
    ReportKind,
    ReportRow,
    Scope,
    SwapStationDay,
    VehicleDay,
)
from gateway.reports.swap import swap_daily
from gateway.reports.vehicles import vehicle_daily
from gateway.store.conntype import Conn

ReportFormat = Literal["csv", "json", "html", "pdf"]
FORMATS: tuple[ReportFormat, ...] = ("csv", "json", "html", "pdf")
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}
ROW_TYPES: dict[ReportKind, type[ReportRow]] = {
    "vehicles": VehicleDay,
    "chargers": ConnectorDay,
    "swap": SwapStationDay,
}

_json = msgspec.json.Encoder()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list | tuple | msgspec.Struct):
        return _json.encode(value).decode()
    return str(value)


def columns(kind: ReportKind) -> tuple[str, ...]:
    """The CSV columns of a report kind (its row's fields)."""
    return ROW_TYPES[kind].__struct_fields__


def _kind_of(rows: Sequence[ReportRow], kind: ReportKind | None) -> ReportKind:
    if kind is not None:
        return kind
    if not rows:
        raise ValueError("an empty report needs its kind for the CSV header")
    return next(k for k, t in ROW_TYPES.items() if isinstance(rows[0], t))


def iter_csv(rows: Sequence[ReportRow], kind: ReportKind | None = None) -> Iterator[str]:
    """The CSV text in pieces (the header, then one line per row): for streaming."""
    fields = columns(_kind_of(rows, kind))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(fields)
    yield buf.getvalue()
    for row in rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow([_cell(getattr(row, f)) for f in fields])
        yield buf.getvalue()


def to_csv(rows: Sequence[ReportRow], kind: ReportKind | None = None) -> str:
    """The rows as CSV with a header line (``kind`` is needed when ``rows`` is empty)."""
    return "".join(iter_csv(rows, kind))


def to_json(rows: Sequence[ReportRow]) -> bytes:
    """The rows as one JSON array (times ISO 8601 UTC with ``Z``, days ``YYYY-MM-DD``)."""
    return _json.encode(rows)


def report_to_json(report: Report) -> bytes:
    """The whole report as one JSON object: kind, days, scope, parameters and rows."""
    return _json.encode(report)


def parameters(settings: ReportsConfig, tz: str | None, rollups: bool) -> dict[str, Any]:
    """The settings a report was made with (kept in :attr:`Report.parameters`)."""
    params: dict[str, Any] = msgspec.structs.asdict(settings)
    for key in ("refresh_days", "refresh_every_s", "refresh_delay_s"):  # not report rules
        params.pop(key, None)
    params["forced_timezone"] = tz
    params["rollups"] = rollups
    return params


async def build_report(
    conn: Conn,
    kind: ReportKind,
    scope: Scope,
    start_day: date,
    end_day: date,
    *,
    settings: ReportsConfig | None = None,
    tz: str | None = None,
    rollups: bool = True,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> Report:
    """Run the ``kind`` report and wrap its rows with how they were made."""
    settings = settings or ReportsConfig()
    generated = datetime.now(UTC)
    rows: list[VehicleDay] | list[ConnectorDay] | list[SwapStationDay]
    if kind == "vehicles":
        rows = await vehicle_daily(
            conn,
            scope,
            start_day,
            end_day,
            settings=settings,
            tz=tz,
            rollups=rollups,
            now=now,
            progress=progress,
        )
    elif kind == "chargers":
        rows = await charger_daily(
            conn, scope, start_day, end_day, settings=settings, tz=tz, now=now, progress=progress
        )
    elif kind == "swap":
        rows = await swap_daily(
            conn, scope, start_day, end_day, settings=settings, tz=tz, now=now, progress=progress
        )
    else:
        raise ValueError(f"unknown report kind {kind!r}")
    return Report(
        kind=kind,
        start_day=start_day,
        end_day=end_day,
        generated_at=generated,
        scope=scope,
        parameters=parameters(settings, tz, rollups),
        rows=rows,
    )


def render(report: Report, fmt: ReportFormat | str) -> bytes:
    """The report in a format of :data:`FORMATS` (CSV and HTML UTF-8 encoded)."""
    if fmt == "csv":
        return to_csv(report.rows, report.kind).encode()
    if fmt == "json":
        return report_to_json(report)
    if fmt == "html":
        from gateway.reports.html import to_html

        return to_html(report).encode()
    if fmt == "pdf":
        from gateway.reports.pdf import to_pdf

        return to_pdf(report)
    raise ValueError(f"unknown report format {fmt!r}; one of {', '.join(FORMATS)}")
