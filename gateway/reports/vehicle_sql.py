"""The vehicle report's SQL: per-day frame summaries computed from ``vehicle_realtime`` and
``alarms`` (one window pass per batch of vehicles), read from or written to the rollup table
``report_vehicle_days`` (migration 0013), and the login / logout events.

Every query takes parallel arrays (vin, zone, period) so one statement serves a batch of
vehicles in different zones; ``lo`` / ``hi`` bound the UTC instants scanned and the local
``day`` filter drops what falls outside the asked days in each vehicle's zone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from gateway.reports.vehicle_calc import DaySummary, Silence, VehicleInfo
from gateway.store.conntype import Conn

GBT = "gbt32960"

_BATCH = """
WITH v AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::float8[]) AS v(vin, tz, iv)
),
f AS (
    SELECT r.vin, r.time, r.reissue, r.alarm_level, r.odometer_km, r.soc_pct, r.speed_kmh,
           r.total_voltage_v::float8 * r.total_current_a AS p_w,
           CASE WHEN r.fix_valid THEN r.lat END AS lat,
           CASE WHEN r.fix_valid THEN r.lon END AS lon,
           true AS inside
    FROM vehicle_realtime r JOIN v ON r.vin = v.vin
    WHERE r.time >= $4 AND r.time < $5
    UNION ALL
    -- each vehicle's last frame before the range: the start of the first interval
    SELECT p.vin, p.time, p.reissue, p.alarm_level, NULL, NULL, NULL, p.p_w, p.lat, p.lon, false
    FROM v CROSS JOIN LATERAL (
        SELECT r.vin, r.time, r.reissue, r.alarm_level,
               r.total_voltage_v::float8 * r.total_current_a AS p_w,
               CASE WHEN r.fix_valid THEN r.lat END AS lat,
               CASE WHEN r.fix_valid THEN r.lon END AS lon
        FROM vehicle_realtime r
        WHERE r.vin = v.vin AND r.time < $4
        ORDER BY r.time DESC LIMIT 1
    ) p
),
w AS (
    SELECT f.*, v.tz, v.iv,
           lag(f.time) OVER s AS prev_time,
           lag(f.alarm_level) OVER s AS prev_alarm,
           lag(f.p_w) OVER s AS prev_p_w,
           lag(f.lat) OVER s AS prev_lat,
           lag(f.lon) OVER s AS prev_lon
    FROM f JOIN v USING (vin)
    WINDOW s AS (PARTITION BY f.vin ORDER BY f.time)
),
x AS (
    SELECT w.*,
           (w.time AT TIME ZONE w.tz)::date AS day,
           extract(epoch FROM w.time - w.prev_time)::float8 AS dt,
           coalesce(w.prev_alarm = 3, false) AS in_alarm
    FROM w
    WHERE w.inside
),
y AS (
    SELECT x.*,
           x.dt <= 2 * x.iv AS short,
           x.dt > (CASE WHEN x.in_alarm THEN $8::float8 ELSE x.iv END) * (1 + $9::float8) AS late,
           CASE WHEN x.dt <= 2 * x.iv THEN (x.p_w + x.prev_p_w) / 2 * x.dt / 3600 END AS e_wh,
           CASE WHEN x.prev_lat IS NOT NULL AND x.lat IS NOT NULL
                     AND x.prev_lon IS NOT NULL AND x.lon IS NOT NULL
                THEN 2 * 6371.0088 * asin(least(1, sqrt(
                    power(sin(radians(x.lat - x.prev_lat) / 2), 2)
                    + cos(radians(x.prev_lat)) * cos(radians(x.lat))
                      * power(sin(radians(x.lon - x.prev_lon) / 2), 2))))
           END AS step_km
    FROM x
    WHERE x.day BETWEEN $6 AND $7
)
SELECT
    vin, tz, day,
    count(*)::int AS frames,
    count(*) FILTER (WHERE reissue)::int AS reissued,
    count(*) FILTER (WHERE alarm_level = 1)::int AS alarm1_frames,
    count(*) FILTER (WHERE alarm_level = 2)::int AS alarm2_frames,
    count(*) FILTER (WHERE alarm_level = 3)::int AS alarm3_frames,
    min(time) AS first_time,
    max(time) AS last_time,
    coalesce(max(time) FILTER (WHERE alarm_level = 3) = max(time), false) AS ends_in_alarm,
    count(*) FILTER (WHERE short AND NOT in_alarm)::int AS intervals,
    count(*) FILTER (WHERE short AND NOT in_alarm AND late)::int AS intervals_late,
    count(*) FILTER (WHERE short AND in_alarm)::int AS alarm_intervals,
    count(*) FILTER (WHERE short AND in_alarm AND late)::int AS alarm_late,
    coalesce(array_agg(prev_time ORDER BY time) FILTER (WHERE dt IS NULL OR NOT short),
             '{}') AS silence_from,
    coalesce(array_agg(time ORDER BY time) FILTER (WHERE dt IS NULL OR NOT short),
             '{}') AS silence_to,
    coalesce(array_agg(in_alarm ORDER BY time) FILTER (WHERE dt IS NULL OR NOT short),
             '{}') AS silence_alarm,
    coalesce(array_agg(time ORDER BY time)
             FILTER (WHERE alarm_level = 3 AND prev_alarm IS DISTINCT FROM 3), '{}')
        AS alarm_starts,
    coalesce(array_agg(prev_time ORDER BY time)
             FILTER (WHERE prev_alarm = 3 AND alarm_level IS DISTINCT FROM 3), '{}')
        AS alarm_ends,
    min(odometer_km) AS odometer_min_km,
    max(odometer_km) AS odometer_max_km,
    min(soc_pct) AS soc_min_pct,
    max(soc_pct) AS soc_max_pct,
    max(speed_kmh) AS speed_max_kmh,
    coalesce(sum(greatest(e_wh, 0)), 0)::float8 AS energy_out_wh,
    coalesce(sum(greatest(-e_wh, 0)), 0)::float8 AS energy_in_wh,
    coalesce(sum(step_km), 0)::float8 AS track_km
FROM y
GROUP BY vin, tz, day
"""

_FLAGS = """
SELECT a.device_id AS vin, (a.time AT TIME ZONE v.tz)::date AS day, n.name, count(*)::int AS n
FROM unnest($1::text[], $2::text[]) AS v(vin, tz)
JOIN alarms a ON a.device_id = v.vin AND a.protocol = 'gbt32960'
CROSS JOIN LATERAL unnest(a.names) AS n(name)
WHERE a.time >= $3 AND a.time < $4 AND (a.time AT TIME ZONE v.tz)::date BETWEEN $5 AND $6
GROUP BY 1, 2, 3
"""

_EVENTS = """
SELECT s.device_id AS vin, s.time, s.event
FROM vehicle_sessions s
WHERE s.device_id = ANY($1::text[]) AND s.protocol = 'gbt32960'
  AND s.event IN ('login', 'logout') AND s.time >= $2 AND s.time < $3
UNION ALL
SELECT p.vin, p.time, p.event
FROM unnest($1::text[]) AS v(vin) CROSS JOIN LATERAL (
    SELECT s.device_id AS vin, s.time, s.event
    FROM vehicle_sessions s
    WHERE s.device_id = v.vin AND s.protocol = 'gbt32960'
      AND s.event IN ('login', 'logout') AND s.time < $2
    ORDER BY s.time DESC, s.event DESC LIMIT 1
) p
ORDER BY 1, 2, 3
"""

ROLLUP_COLUMNS: tuple[str, ...] = (
    "vin",
    "tz",
    "day",
    "interval_s",
    "alarm_interval_s",
    "tolerance",
    "refreshed_at",
    "frames",
    "reissued",
    "alarm1_frames",
    "alarm2_frames",
    "alarm3_frames",
    "first_time",
    "last_time",
    "ends_in_alarm",
    "intervals",
    "intervals_late",
    "alarm_intervals",
    "alarm_late",
    "silence_from",
    "silence_to",
    "silence_alarm",
    "alarm_starts",
    "alarm_ends",
    "odometer_min_km",
    "odometer_max_km",
    "soc_min_pct",
    "soc_max_pct",
    "speed_max_kmh",
    "energy_out_wh",
    "energy_in_wh",
    "track_km",
    "alarm_flags",
)

_ROLLUP = f"""
SELECT {", ".join(f"r.{c}" for c in ROLLUP_COLUMNS)}
FROM report_vehicle_days r
JOIN unnest($1::text[], $2::text[], $3::float8[]) AS v(vin, tz, iv)
  ON r.vin = v.vin AND r.tz = v.tz AND r.interval_s = v.iv
WHERE r.day BETWEEN $4 AND $5 AND r.alarm_interval_s = $6::float8 AND r.tolerance = $7::float8
"""

Key = tuple[str, date]


def _summary(r: Any, source: str) -> DaySummary:
    silences = [
        Silence(a, b, bool(al))
        for a, b, al in zip(r["silence_from"], r["silence_to"], r["silence_alarm"], strict=True)
    ]
    levels = {"1": r["alarm1_frames"], "2": r["alarm2_frames"], "3": r["alarm3_frames"]}
    return DaySummary(
        day=r["day"],
        frames=r["frames"],
        reissued=r["reissued"],
        alarm_frames={k: v for k, v in levels.items() if v},
        first_time=r["first_time"],
        last_time=r["last_time"],
        ends_in_alarm=r["ends_in_alarm"],
        intervals=r["intervals"],
        intervals_late=r["intervals_late"],
        alarm_intervals=r["alarm_intervals"],
        alarm_late=r["alarm_late"],
        silences=silences,
        alarm_starts=list(r["alarm_starts"]),
        alarm_ends=list(r["alarm_ends"]),
        odometer_min_km=r["odometer_min_km"],
        odometer_max_km=r["odometer_max_km"],
        soc_min_pct=r["soc_min_pct"],
        soc_max_pct=r["soc_max_pct"],
        speed_max_kmh=r["speed_max_kmh"],
        energy_out_wh=r["energy_out_wh"],
        energy_in_wh=r["energy_in_wh"],
        track_km=r["track_km"],
        source="rollup" if source == "rollup" else "raw",
    )


def _arrays(vehicles: Sequence[VehicleInfo]) -> tuple[list[str], list[str], list[float]]:
    return (
        [v.vin for v in vehicles],
        [v.tz for v in vehicles],
        [v.interval_s for v in vehicles],
    )


async def raw_summaries(
    conn: Conn,
    vehicles: Sequence[VehicleInfo],
    lo: datetime,
    hi: datetime,
    start_day: date,
    end_day: date,
    alarm_interval_s: float,
    tolerance: float,
) -> dict[Key, DaySummary]:
    """Per (vin, day) summaries from the raw rows between ``lo`` and ``hi`` (UTC), keeping the
    local days from ``start_day`` to ``end_day``."""
    vins, tzs, ivs = _arrays(vehicles)
    rows = await conn.fetch(
        _BATCH, vins, tzs, ivs, lo, hi, start_day, end_day, alarm_interval_s, tolerance
    )
    out = {(r["vin"], r["day"]): _summary(r, "raw") for r in rows}
    flags = await conn.fetch(_FLAGS, vins, tzs, lo, hi, start_day, end_day)
    for f in flags:
        key = (f["vin"], f["day"])
        if key not in out:  # an alarm row without its realtime row: count it anyway
            out[key] = DaySummary(day=f["day"])
        out[key].alarm_flags[f["name"]] = f["n"]
    return out


async def rollup_summaries(
    conn: Conn,
    vehicles: Sequence[VehicleInfo],
    start_day: date,
    end_day: date,
    alarm_interval_s: float,
    tolerance: float,
) -> dict[Key, DaySummary]:
    """The rollup rows made with the same zone and periods as asked."""
    vins, tzs, ivs = _arrays(vehicles)
    rows = await conn.fetch(
        _ROLLUP, vins, tzs, ivs, start_day, end_day, alarm_interval_s, tolerance
    )
    out: dict[Key, DaySummary] = {}
    for r in rows:
        summary = _summary(r, "rollup")
        flags = r["alarm_flags"]  # text; msgspec.Raw on the API's connections (gateway.api.db)
        summary.alarm_flags = dict(json.loads(flags if isinstance(flags, str) else bytes(flags)))
        out[(r["vin"], r["day"])] = summary
    return out


async def session_events(
    conn: Conn, vins: Sequence[str], lo: datetime, hi: datetime
) -> dict[str, list[tuple[datetime, str]]]:
    """Login / logout events per VIN in ``[lo, hi)``, each preceded by its last one before."""
    out: dict[str, list[tuple[datetime, str]]] = {}
    for r in await conn.fetch(_EVENTS, list(vins), lo, hi):
        out.setdefault(r["vin"], []).append((r["time"], r["event"]))
    return out


def rollup_record(
    vehicle: VehicleInfo,
    s: DaySummary,
    alarm_interval_s: float,
    tolerance: float,
    refreshed_at: datetime,
) -> tuple[Any, ...]:
    """A ``report_vehicle_days`` row (in :data:`ROLLUP_COLUMNS` order) for a summary."""
    return (
        vehicle.vin,
        vehicle.tz,
        s.day,
        vehicle.interval_s,
        alarm_interval_s,
        tolerance,
        refreshed_at,
        s.frames,
        s.reissued,
        s.alarm_frames.get("1", 0),
        s.alarm_frames.get("2", 0),
        s.alarm_frames.get("3", 0),
        s.first_time,
        s.last_time,
        s.ends_in_alarm,
        s.intervals,
        s.intervals_late,
        s.alarm_intervals,
        s.alarm_late,
        [x.start for x in s.silences],
        [x.end for x in s.silences],
        [x.alarm for x in s.silences],
        s.alarm_starts,
        s.alarm_ends,
        s.odometer_min_km,
        s.odometer_max_km,
        s.soc_min_pct,
        s.soc_max_pct,
        s.speed_max_kmh,
        s.energy_out_wh,
        s.energy_in_wh,
        s.track_km,
        json.dumps(s.alarm_flags, sort_keys=True),
    )
