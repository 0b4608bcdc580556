"""``silkgate report``: run a compliance report into a file (CSV, JSON, HTML or PDF), or refresh
the vehicle report's rollup. Only argparse at import time: the report code loads when the
command runs."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any, TextIO

KINDS = ("vehicles", "chargers", "swap", "refresh")
FORMAT_NAMES = ("csv", "json", "html", "pdf")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None


class ProgressBar:
    """``progress(done, total)`` drawn on a stream: a redrawn bar on a terminal, otherwise a
    line each time another tenth is done."""

    def __init__(self, stream: TextIO, label: str, *, tty: bool) -> None:
        self.stream = stream
        self.label = label
        self.tty = tty
        self.last = -1
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        total = max(total, 1)
        done = min(done, total)
        share = done / total
        elapsed = time.monotonic() - self.started
        if self.tty:
            bar = "#" * round(30 * share)
            self.stream.write(
                f"\r{self.label} [{bar:<30}] {share:4.0%} {done}/{total} {elapsed:5.1f} s"
            )
            if done == total:
                self.stream.write("\n")
        else:
            tenth = int(share * 10)
            if tenth == self.last:
                return
            self.stream.write(f"{self.label}: {share:.0%} ({done}/{total}) {elapsed:.1f} s\n")
            self.last = tenth
        self.stream.flush()


def add_parser(sub: Any) -> None:
    """Add ``report`` to the ``silkgate`` subcommands (``sub``: argparse's subparsers)."""
    rep = sub.add_parser(
        "report",
        help="compliance reports: vehicles, chargers, swap stations (csv, json, html, pdf)",
        description="Write a compliance report for local days FROM to TO (both included; each "
        "operator's or station's time zone, see docs/reports.md), or refresh the vehicle "
        "report's rollup ('refresh'). The database comes from --dsn, SILKGATE_DSN or the "
        "config's database.dsn; [reports] in the config sets the rules.",
    )
    rep.add_argument("kind", choices=KINDS)
    rep.add_argument("--from", dest="start", type=_day, required=True, metavar="DAY")
    rep.add_argument("--to", dest="end", type=_day, default=None, metavar="DAY")
    rep.add_argument("--operator", default=None)
    rep.add_argument("--fleet", default=None, help="vehicles of this fleet")
    rep.add_argument("--vin", action="append", default=[], metavar="VIN", help="repeatable")
    rep.add_argument("--station", action="append", default=[], metavar="ID", help="repeatable")
    rep.add_argument("--charger", action="append", default=[], metavar="ID", help="repeatable")
    rep.add_argument("--tz", default=None, help="one IANA time zone for every row")
    rep.add_argument(
        "--format", choices=FORMAT_NAMES, default=None, help="default: from --out's suffix, or csv"
    )
    rep.add_argument("--out", default="-", metavar="FILE", help="- for stdout (the default)")
    rep.add_argument("--config", default=None, metavar="PATH", help="TOML configuration file")
    rep.add_argument("--dsn", default=None, help="PostgreSQL DSN (overrides the config)")
    rep.add_argument(
        "--no-rollups", action="store_true", help="vehicles: compute everything from raw rows"
    )
    rep.add_argument(
        "--progress", action="store_true", help="progress on stderr even when not a terminal"
    )
    rep.set_defaults(func=cmd_report)


def _format(ns: argparse.Namespace) -> str:
    if ns.format:
        return str(ns.format)
    suffix = Path(ns.out).suffix.lower().lstrip(".")
    return suffix if suffix in FORMAT_NAMES else "csv"


def cmd_report(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``silkgate report``; 0 done, 2 bad arguments or configuration, 1 database errors."""
    import asyncio

    import asyncpg

    from gateway.config import Config, ConfigError, load
    from gateway.reports.build import build_report, render
    from gateway.reports.intervals import ReportError
    from gateway.reports.model import Scope
    from gateway.reports.vehicles import refresh_vehicle_days
    from gateway.store.connection import connect

    try:
        cfg = load(ns.config) if ns.config else Config()
    except ConfigError as exc:
        print(f"silkgate report: {exc}", file=err)
        return 2
    settings = cfg.reports
    end = ns.end or ns.start
    scope = Scope(
        operator=ns.operator,
        fleet=ns.fleet,
        vins=tuple(ns.vin),
        stations=tuple(ns.station),
        chargers=tuple(ns.charger),
    )
    fmt = _format(ns)
    if fmt == "pdf" and ns.out == "-" and not hasattr(out, "buffer"):
        print("silkgate report: PDF needs --out FILE here", file=err)
        return 2
    show = ns.progress or err.isatty()
    progress = ProgressBar(err, f"report {ns.kind}", tty=err.isatty()) if show else None

    async def run() -> bytes | int:
        conn = await connect(ns.dsn or cfg.database_dsn())
        try:
            if ns.kind == "refresh":
                return await refresh_vehicle_days(
                    conn, ns.start, end, scope=scope, settings=settings, progress=progress
                )
            report = await build_report(
                conn,
                ns.kind,
                scope,
                ns.start,
                end,
                settings=settings,
                tz=ns.tz,
                rollups=not ns.no_rollups,
                progress=progress,
            )
            return render(report, fmt)
        finally:
            await conn.close()

    try:
        result = asyncio.run(run())
    except ReportError as exc:
        print(f"silkgate report: {exc}", file=err)
        return 2
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError) as exc:
        print(f"silkgate report: the database is not migrated to this version: {exc}", file=err)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"silkgate report: database: {exc}", file=err)
        return 1
    if isinstance(result, int):
        print(f"refreshed {result} vehicle-days", file=err)
        return 0
    if ns.out == "-":
        buffer = getattr(out, "buffer", None)
        if buffer is not None:
            buffer.write(result)
            buffer.flush()
        else:
            out.write(result.decode())
    else:
        Path(ns.out).write_bytes(result)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m gateway.reports.cli``: the report command alone."""
    parser = argparse.ArgumentParser(prog="silkgate")
    add_parser(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args(argv)
    status: int = ns.func(ns, sys.stdout, sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
