"""TimescaleDB features by license: detection, retention and rollup refresh.

Debian's TimescaleDB is the Apache-licensed build (``timescaledb.license = 'apache'``):
hypertables, ``time_bucket`` and ``drop_chunks`` but no compression, policies or continuous
aggregates. The community build (``'timescale'``) has them all. :func:`features` maps the
license to what the store uses; the migrations pick their variant with it (``0003_rollups.apache``
or ``0003_rollups.timescale``).

On the Apache build the gateway's scheduler calls :func:`run_retention` and
:func:`refresh_rollups`; on the community build retention policies (:func:`apply_retention`) and
continuous-aggregate policies do that work inside the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from gateway.store.conntype import Conn

APACHE = "apache"
COMMUNITY = "timescale"

HYPERTABLES: tuple[str, ...] = (
    "vehicle_realtime",
    "positions",
    "alarms",
    "vehicle_sessions",
    "charger_status",
    "meter_values",
    "charging_sessions",
    "charger_events",
    "swap_events",
    "station_status",
    "battery_inventory",
    "battery_charging",
    "raw_frames",
    "dead_letters",
)
"""Every hypertable the migrations create."""

ROLLUPS: tuple[str, ...] = (
    "vehicle_realtime_hourly",
    "vehicle_realtime_daily",  # reads vehicle_realtime_hourly: refreshed after it
    "charging_energy_hourly",
    "charging_energy_daily",
)
"""The rollup views, in refresh order."""


class LicenseError(RuntimeError):
    """The server has no TimescaleDB, or a license this store does not know."""


@dataclass(frozen=True, slots=True)
class Features:
    """What the store uses on a server with a given TimescaleDB license."""

    license: str
    compression: bool
    policies: bool  # retention, compression and continuous-aggregate refresh policies
    rollups: Literal["continuous", "materialized"]

    @property
    def variant(self) -> str:
        """The suffix of the license-specific migration files (``0003_rollups.<variant>.sql``)."""
        return self.license


_FEATURES = {
    APACHE: Features(APACHE, compression=False, policies=False, rollups="materialized"),
    COMMUNITY: Features(COMMUNITY, compression=True, policies=True, rollups="continuous"),
}


def features(license: str) -> Features:
    """The feature set for a ``timescaledb.license`` value; unknown values are an error."""
    try:
        return _FEATURES[license]
    except KeyError:
        raise LicenseError(
            f"timescaledb.license is {license!r}; silkgate knows {sorted(_FEATURES)}"
        ) from None


async def detect_license(conn: Conn) -> str:
    """``SHOW timescaledb.license`` (the extension must be installed in the database)."""
    try:
        value = await conn.fetchval("SHOW timescaledb.license")
    except asyncpg.UndefinedObjectError:
        raise LicenseError("TimescaleDB is not loaded on this server") from None
    installed = await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    if installed is None:
        raise LicenseError("the timescaledb extension is not installed in this database")
    return str(value)


async def detect_features(conn: Conn) -> Features:
    """The features the connected server licenses."""
    return features(await detect_license(conn))


def _hypertable(table: str) -> str:
    if table not in HYPERTABLES:
        raise ValueError(f"{table!r} is not a silkgate hypertable")
    return table


async def run_retention(conn: Conn, table: str, older_than: timedelta | datetime) -> list[str]:
    """Drop the chunks of ``table`` whose data is all older than ``older_than``.

    ``older_than`` is an age (``timedelta``, relative to now) or an absolute UTC time. Returns
    the names of the dropped chunks. Works under either license (``drop_chunks`` is Apache).
    """
    cast = "interval" if isinstance(older_than, timedelta) else "timestamptz"
    rows = await conn.fetch(
        f"SELECT chunk FROM drop_chunks($1::regclass, older_than => $2::{cast}) AS chunk",
        _hypertable(table),
        older_than,
    )
    return [str(r["chunk"]) for r in rows]


async def refresh_rollups(conn: Conn, feats: Features | None = None) -> list[str]:
    """Refresh every rollup view, in dependency order; returns the views refreshed.

    Apache: ``REFRESH MATERIALIZED VIEW`` (``CONCURRENTLY`` once populated, so readers are not
    blocked). Community: ``refresh_continuous_aggregate`` over all time, which cannot run inside
    a transaction block (the policies normally do this).
    """
    feats = feats or await detect_features(conn)
    for view in ROLLUPS:
        if feats.rollups == "continuous":
            await conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
            continue
        populated = await conn.fetchval(
            "SELECT relispopulated FROM pg_class WHERE oid = $1::regclass", view
        )
        how = "CONCURRENTLY " if populated else ""
        await conn.execute(f"REFRESH MATERIALIZED VIEW {how}{view}")
    return list(ROLLUPS)


def retention_sql(table: str, keep: timedelta) -> str:
    """Community SQL that (re)sets the retention policy of ``table`` to ``keep``."""
    seconds = int(keep.total_seconds())
    name = _hypertable(table)
    return (
        f"SELECT remove_retention_policy('{name}', if_exists => true);\n"
        f"SELECT add_retention_policy('{name}', INTERVAL '{seconds} seconds');\n"
    )


async def apply_retention(
    conn: Conn, keep: Mapping[str, timedelta], feats: Features | None = None
) -> bool:
    """Install retention policies where licensed; returns False on Apache (no policies), where
    the scheduler calls :func:`run_retention` with the same ages instead."""
    feats = feats or await detect_features(conn)
    if not feats.policies:
        return False
    async with conn.transaction():
        for table, age in keep.items():
            await conn.execute(retention_sql(table, age))
    return True
