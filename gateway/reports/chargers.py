"""The charger report (:func:`charger_daily`): per connector and local day, the time in each
status (availability), faults, completed charging sessions and the energy they delivered, and
the energy register's advance. Read from ``charger_status``, ``charger_events`` (connect /
disconnect), ``charging_sessions`` and ``meter_values``; rules in docs/reports.md, "Chargers".
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from gateway.reports import scope as registry
from gateway.reports.config import ReportsConfig
from gateway.reports.intervals import (
    Day,
    Progress,
    Span,
    pct,
    prepare,
    state_seconds,
)
from gateway.reports.model import ConnectorDay, Scope
from gateway.reports.scope import Site, site_days
from gateway.store.conntype import Conn

AVAILABLE: frozenset[str] = frozenset(
    {
        "Available",
        "Preparing",
        "Charging",
        "SuspendedEV",
        "SuspendedEVSE",
        "Finishing",
        "Reserved",
        "Occupied",
    }
)
"""Statuses in which a connector serves (or is ready to serve) a vehicle."""

OFFLINE = "Offline"
UNKNOWN = "Unknown"
NO_ERROR = frozenset({"", "NoError"})
REGISTER = "Energy.Active.Import.Register"
BATCH_CHARGERS = 500

_STATUS = """
SELECT charger_id, evse_id, connector_id, time, status, error_code, vendor_error_code
FROM charger_status
WHERE charger_id = ANY($1::text[]) AND time >= $2 AND time < $3
UNION ALL
SELECT * FROM (
    SELECT DISTINCT ON (charger_id, evse_id, connector_id)
           charger_id, evse_id, connector_id, time, status, NULL::text, NULL::text
    FROM charger_status
    WHERE charger_id = ANY($1::text[]) AND time < $2
    ORDER BY charger_id, evse_id, connector_id, time DESC
) before
ORDER BY 1, 2, 3, 4
"""

_LINK = """
SELECT charger_id, time, event
FROM charger_events
WHERE charger_id = ANY($1::text[]) AND event IN ('connect', 'disconnect')
  AND time >= $2 AND time < $3
UNION ALL
SELECT * FROM (
    SELECT DISTINCT ON (charger_id) charger_id, time, event
    FROM charger_events
    WHERE charger_id = ANY($1::text[]) AND event IN ('connect', 'disconnect') AND time < $2
    ORDER BY charger_id, time DESC
) before
ORDER BY 1, 2
"""

# Transactions that stopped in the range, with what all their events say.
_SESSIONS = """
WITH stops AS (
    SELECT DISTINCT charger_id, transaction_id
    FROM charging_sessions
    WHERE charger_id = ANY($1::text[]) AND event = 'stop' AND time >= $2 AND time < $3
)
SELECT s.charger_id, s.transaction_id,
       max(c.time) FILTER (WHERE c.event = 'stop') AS stopped,
       (array_agg(c.evse_id ORDER BY c.time) FILTER (WHERE c.evse_id IS NOT NULL))[1] AS evse_id,
       (array_agg(c.connector_id ORDER BY c.time)
           FILTER (WHERE c.connector_id IS NOT NULL))[1] AS connector_id,
       max(c.energy_wh) FILTER (WHERE c.event = 'stop') AS stop_wh,
       max(c.meter_stop_wh) FILTER (WHERE c.event = 'stop')
           - min(c.meter_start_wh) AS meter_wh,
       max(c.energy_wh) AS any_wh
FROM stops s
JOIN charging_sessions c USING (charger_id, transaction_id)
GROUP BY s.charger_id, s.transaction_id
"""

_REGISTER = f"""
SELECT m.charger_id, m.evse_id, m.connector_id, (m.time AT TIME ZONE v.tz)::date AS day,
       min(m.value) AS lo_wh, max(m.value) AS hi_wh
FROM unnest($1::text[], $2::text[]) AS v(charger_id, tz)
JOIN meter_values m ON m.charger_id = v.charger_id
WHERE m.measurand = '{REGISTER}' AND m.phase IS NULL
  AND coalesce(m.location, 'Outlet') = 'Outlet'
  AND m.time >= $3 AND m.time < $4
GROUP BY 1, 2, 3, 4
"""

_REGISTER_BEFORE = f"""
SELECT DISTINCT ON (charger_id, evse_id, connector_id)
       charger_id, evse_id, connector_id, value
FROM meter_values
WHERE charger_id = ANY($1::text[]) AND measurand = '{REGISTER}' AND phase IS NULL
  AND coalesce(location, 'Outlet') = 'Outlet'
  AND time < $2 AND time >= $2 - INTERVAL '31 days'
ORDER BY charger_id, evse_id, connector_id, time DESC
"""

Connector = tuple[int | None, int]
"""``(evse_id, connector_id)``; OCPP 1.6 has no EVSE (None)."""


@dataclass(slots=True)
class _Charger:
    """Everything read about one charger."""

    site: Site
    status: dict[Connector, list[tuple[datetime, str, str | None, str | None]]] = field(
        default_factory=dict
    )
    link: list[tuple[datetime, str]] = field(default_factory=list)
    sessions: list[tuple[datetime, Connector, float]] = field(default_factory=list)
    register: dict[Connector, dict[date, tuple[float, float]]] = field(default_factory=dict)
    register_before: dict[Connector, float] = field(default_factory=dict)


def offline_spans(link: Sequence[tuple[datetime, str]], end: datetime) -> list[Span]:
    """Disconnected spans from time-ordered connect / disconnect events: a disconnect until
    the next connect (or ``end``)."""
    out: list[Span] = []
    down: datetime | None = None
    for t, event in link:
        if event == "disconnect" and down is None:
            down = t
        elif event == "connect" and down is not None:
            out.append((down, t))
            down = None
    if down is not None and end > down:
        out.append((down, end))
    return out


def fault_code(status: str, error_code: str | None, vendor_code: str | None) -> str | None:
    """The fault a status notification reports (None: none): its error code, else the vendor's,
    else ``Faulted`` for a Faulted status without a code."""
    code = error_code if error_code not in NO_ERROR else None
    if code is None and status == "Faulted":
        code = vendor_code or "Faulted"
    return code


def connector_days(
    c: _Charger, connector: Connector, days: Sequence[Day], now: datetime
) -> list[ConnectorDay]:
    """The rows of one connector (pure: from what was read)."""
    history = c.status.get(connector, [])
    changes = [(t, s) for t, s, _, _ in history]
    end = max(min(days[-1].end, now), days[0].start)
    offline = offline_spans(c.link, end)
    reg = c.register.get(connector, {})
    prev_hi = c.register_before.get(connector)
    mine = sorted((t, wh) for t, k, wh in c.sessions if k == connector)
    rows: list[ConnectorDay] = []
    for d in days:
        hi = max(min(d.end, now), d.start)
        status_s = state_seconds(changes, d.start, hi, overlay=offline, overlay_state=OFFLINE)
        available = sum((v for k, v in status_s.items() if k in AVAILABLE), 0.0)
        offline_s = status_s.get(OFFLINE, 0.0)
        unknown_s = status_s.get(UNKNOWN, 0.0)
        unavailable = sum(status_s.values(), 0.0) - available - offline_s - unknown_s
        codes: dict[str, int] = {}
        i = bisect.bisect_left(history, d.start, key=lambda h: h[0])
        j = bisect.bisect_left(history, d.end, key=lambda h: h[0])
        changed, last = 0, history[i - 1][1] if i else None
        for _, s, err, vendor in history[i:j]:
            changed += s != last
            last = s
            code = fault_code(s, err, vendor)
            if code is not None:
                codes[code] = codes.get(code, 0) + 1
        i = bisect.bisect_left(mine, d.start, key=lambda x: x[0])
        j = bisect.bisect_left(mine, d.end, key=lambda x: x[0])
        sessions = [wh for _, wh in mine[i:j]]
        meter: float | None = None
        if d.day in reg:
            lo_wh, hi_wh = reg[d.day]
            base = prev_hi if prev_hi is not None and prev_hi <= hi_wh else lo_wh
            meter = round(hi_wh - base, 3)
            prev_hi = hi_wh
        rows.append(
            ConnectorDay(
                charger_id=c.site.id,
                station_id=c.site.station_id,
                operator_id=c.site.operator_id,
                evse_id=connector[0],
                connector_id=connector[1],
                day=d.day,
                tz=c.site.tz,
                status_s=status_s,
                available_s=round(available, 3),
                unavailable_s=round(unavailable, 3),
                offline_s=offline_s,
                unknown_s=unknown_s,
                availability_pct=pct(available, available + unavailable + offline_s),
                status_changes=changed,
                faults=sum(codes.values()),
                fault_codes=codes,
                sessions=len(sessions),
                energy_wh=round(sum(sessions, 0.0), 3),
                meter_energy_wh=meter,
            )
        )
    return rows


async def _read(
    conn: Conn, sites: Sequence[Site], lo: datetime, hi: datetime, start: date, end: date
) -> dict[str, _Charger]:
    by_id = {s.id: _Charger(s) for s in sites}
    ids = list(by_id)
    for r in await conn.fetch(_STATUS, ids, lo, hi):
        key = (r["evse_id"], r["connector_id"])
        by_id[r["charger_id"]].status.setdefault(key, []).append(
            (r["time"], r["status"], r["error_code"], r["vendor_error_code"])
        )
    for r in await conn.fetch(_LINK, ids, lo, hi):
        by_id[r["charger_id"]].link.append((r["time"], r["event"]))
    for r in await conn.fetch(_SESSIONS, ids, lo, hi):
        wh = r["stop_wh"] if r["stop_wh"] is not None else r["meter_wh"]
        wh = wh if wh is not None else r["any_wh"]
        key = (r["evse_id"], r["connector_id"] if r["connector_id"] is not None else 0)
        by_id[r["charger_id"]].sessions.append((r["stopped"], key, float(wh or 0.0)))
    tzs = [s.tz for s in sites]
    for r in await conn.fetch(_REGISTER, ids, tzs, lo, hi):
        if start <= r["day"] <= end:
            key = (r["evse_id"], r["connector_id"])
            by_id[r["charger_id"]].register.setdefault(key, {})[r["day"]] = (
                r["lo_wh"],
                r["hi_wh"],
            )
    for r in await conn.fetch(_REGISTER_BEFORE, ids, lo):
        by_id[r["charger_id"]].register_before[(r["evse_id"], r["connector_id"])] = r["value"]
    return by_id


def _sort_key(c: Connector) -> tuple[int, int]:
    return (-1 if c[0] is None else c[0], c[1])


async def charger_daily(
    conn: Conn,
    scope: Scope,
    start_day: date,
    end_day: date,
    *,
    settings: ReportsConfig | None = None,
    tz: str | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> list[ConnectorDay]:
    """One :class:`ConnectorDay` per connector seen (status, session or meter register) of
    ``scope``'s chargers and local day, ordered by charger, EVSE, connector and day. A charger
    with nothing seen has one row for connector 0, all Unknown."""
    settings, now = prepare(settings, start_day, end_day, now)
    sites = await registry.chargers(conn, scope, settings, tz)

    async def rows_of(
        batch: Sequence[Site], days: dict[str, list[Day]], lo: datetime, hi: datetime
    ) -> list[ConnectorDay]:
        rows: list[ConnectorDay] = []
        for c in (await _read(conn, batch, lo, hi, start_day, end_day)).values():
            connectors: set[Connector] = set(c.status) | set(c.register)
            connectors |= {k for _, k, _ in c.sessions}
            for key in sorted(connectors or {(None, 0)}, key=_sort_key):
                rows += connector_days(c, key, days[c.site.id], now)
        return rows

    return await site_days(sites, BATCH_CHARGERS, start_day, end_day, rows_of, progress)
