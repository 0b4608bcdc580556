"""TimescaleDB store: schema migrations, COPY writers, retention and rollups.

Start-up: ``await migrate(dsn)``, then ``pool = await create_pool(dsn)``. Per batch::

    async with pool.acquire() as conn, conn.transaction():
        await write(conn, VehicleRealtime, rows)
        await write(conn, Position, positions)

Modules: :mod:`.migrate` (versioned .sql migrations), :mod:`.tables` (record -> row),
:mod:`.writer` (de-duplicating COPY), :mod:`.connection` (connect / pools),
:mod:`.timescale` (license features, retention, rollups), :mod:`.testing` (scratch schemas),
:mod:`.conntype` (the connection type accepted).
"""

from gateway.store.connection import connect, create_pool
from gateway.store.conntype import Conn
from gateway.store.migrate import MigrationError, migrate
from gateway.store.tables import TABLES, TableSpec, spec_for
from gateway.store.timescale import (
    Features,
    LicenseError,
    apply_retention,
    detect_features,
    features,
    refresh_rollups,
    run_retention,
)
from gateway.store.writer import prepare, write

__all__ = [
    "TABLES",
    "Conn",
    "Features",
    "LicenseError",
    "MigrationError",
    "TableSpec",
    "apply_retention",
    "connect",
    "create_pool",
    "detect_features",
    "features",
    "migrate",
    "prepare",
    "refresh_rollups",
    "run_retention",
    "spec_for",
    "write",
]
