"""Versioned schema migrations from ``migrations/*.sql``.

A migration is a file ``NNNN_name.sql``, or a license variant ``NNNN_name.<license>.sql`` of
which the one matching ``timescaledb.license`` is used (see :mod:`gateway.store.timescale`).
:func:`migrate` applies the pending ones in one transaction under an advisory lock, so gateway
processes starting together apply each migration once, and records them in
``silkgate_migrations(version, name, checksum, applied_at)``. Re-running is a no-op. An applied
migration whose file changed (checksum), was renamed, or that this gateway does not know (a
newer database) is an error: fix the deployment, never the history.

Tables are created unqualified, in the first schema of the connection's ``search_path``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from gateway.store.conntype import Conn
from gateway.store.timescale import detect_features

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""The shipped migrations (``resolve()``: the strict editable install links files one by one)."""

_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)(?:\.(?P<variant>[a-z]+))?\.sql$")

_TRACKING = """
CREATE TABLE IF NOT EXISTS silkgate_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migration files or the database's migration history are inconsistent."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # "base", or "rollups.apache" for a license variant
    sql: str
    checksum: str  # sha256 of the file, hex


def load(license: str, directory: Path = MIGRATIONS) -> list[Migration]:
    """The migrations for a TimescaleDB license, in version order."""
    plain: dict[int, Migration] = {}
    variants: dict[int, dict[str, Migration]] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: not a migration name (NNNN_name[.variant].sql)")
        raw = path.read_bytes()
        version, variant = int(match["version"]), match["variant"]
        name = match["name"] if variant is None else f"{match['name']}.{variant}"
        migration = Migration(version, name, raw.decode(), hashlib.sha256(raw).hexdigest())
        if variant is None:
            if version in plain or version in variants:
                raise MigrationError(f"{path.name}: version {version} is defined twice")
            plain[version] = migration
        else:
            if version in plain:
                raise MigrationError(f"{path.name}: version {version} is defined twice")
            variants.setdefault(version, {})[variant] = migration
    for version, by_variant in variants.items():
        if license not in by_variant:
            raise MigrationError(
                f"migration {version:04d} has variants {sorted(by_variant)}, none for {license!r}"
            )
        plain[version] = by_variant[license]
    return [plain[v] for v in sorted(plain)]


async def migrate(dsn_or_conn: str | Conn, *, directory: Path = MIGRATIONS) -> list[Migration]:
    """Apply the pending migrations; returns those applied now (empty when up to date)."""
    if isinstance(dsn_or_conn, str):
        conn = await asyncpg.connect(dsn_or_conn)
        try:
            return await _migrate(conn, directory)
        finally:
            await conn.close()
    return await _migrate(dsn_or_conn, directory)


async def _migrate(conn: Conn, directory: Path) -> list[Migration]:
    feats = await detect_features(conn)
    migrations = load(feats.variant, directory)
    async with conn.transaction():
        # One lock per schema: processes migrating the same schema wait for each other.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('silkgate_migrations.' "
            "|| current_schema(), 0))"
        )
        await conn.execute(_TRACKING)
        rows = await conn.fetch("SELECT version, name, checksum FROM silkgate_migrations")
        applied = {r["version"]: (r["name"], r["checksum"]) for r in rows}
        _check_history(applied, migrations)
        done: list[Migration] = []
        for m in migrations:
            if m.version in applied:
                continue
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO silkgate_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                m.version,
                m.name,
                m.checksum,
            )
            done.append(m)
    return done


def _check_history(applied: dict[int, tuple[str, str]], migrations: list[Migration]) -> None:
    known = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items()):
        m = known.get(version)
        if m is None:
            raise MigrationError(
                f"the database has migration {version:04d} {name!r}, which this gateway does not "
                "know: it was migrated by a newer version"
            )
        if m.name != name:
            raise MigrationError(
                f"migration {version:04d} was applied as {name!r}, the gateway now has {m.name!r}"
                " (a license change needs a manual migration)"
            )
        if m.checksum != checksum:
            raise MigrationError(
                f"migration {version:04d} {name!r} was applied with checksum {checksum[:12]}..., "
                f"the file now has {m.checksum[:12]}...: applied migrations must not change"
            )
