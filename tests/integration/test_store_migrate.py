"""Schema migrations against the real TimescaleDB: fresh apply, no-op re-apply, tampering.

Every test gets its own throw-away schema (gateway.store.testing), so tests do not see each
other's tables or those of other engineers in the shared database.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
import pytest_asyncio

from gateway.store.migrate import MIGRATIONS, MigrationError, load, migrate
from gateway.store.tables import SPECS
from gateway.store.testing import connect_retry, scratch_schema
from gateway.store.timescale import HYPERTABLES, ROLLUPS

if TYPE_CHECKING:
    from .conftest import Services

PLAIN_TABLES = {"operators", "fleets", "vehicles", "terminals", "chargers", "stations"}
SHIPPED = load("apache")  # the server here runs the Apache build
DEFAULTED_COLUMNS = {"raw_frames": {"txid", "seq"}}  # filled by defaults (forwarding's order)


@pytest_asyncio.fixture
async def dsn(services: Services) -> AsyncIterator[str]:
    async with scratch_schema(services.dsn) as scoped:
        yield scoped


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )
    return {r["table_name"] for r in rows}


@pytest.mark.asyncio
async def test_fresh_then_noop(dsn: str) -> None:
    applied = await migrate(dsn)
    assert [(m.version, m.name) for m in applied] == [(m.version, m.name) for m in SHIPPED]
    assert [(m.version, m.name) for m in applied[:3]] == [
        (1, "base"),
        (2, "hypertables"),
        (3, "rollups.apache"),
    ]
    assert await migrate(dsn) == []  # re-applied on a migrated schema: nothing to do

    conn = await connect_retry(dsn)
    try:
        tables = await _tables(conn)
        assert PLAIN_TABLES | set(HYPERTABLES) | {"silkgate_migrations"} <= tables
        hypertables = await conn.fetch(
            "SELECT hypertable_name FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = current_schema()"
        )
        assert {r["hypertable_name"] for r in hypertables} == set(HYPERTABLES)
        views = await conn.fetch(
            "SELECT matviewname FROM pg_matviews WHERE schemaname = current_schema()"
        )
        assert {r["matviewname"] for r in views} == set(ROLLUPS)
        history = await conn.fetch(
            "SELECT version, name, checksum, applied_at FROM silkgate_migrations ORDER BY version"
        )
        assert [(r["version"], r["name"]) for r in history] == [
            (m.version, m.name) for m in applied
        ]
        assert [r["checksum"] for r in history] == [m.checksum for m in applied]
        assert all(r["applied_at"] is not None for r in history)
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_every_table_has_its_natural_key_and_the_spec_columns(dsn: str) -> None:
    await migrate(dsn)
    conn = await connect_retry(dsn)
    try:
        for spec in SPECS:
            columns = await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = $1",
                spec.name,
            )
            extra = DEFAULTED_COLUMNS.get(spec.name, set())
            assert {r["column_name"] for r in columns} == set(spec.columns) | extra, spec.name
            keys = await conn.fetch(
                """
                SELECT array_agg(a.attname ORDER BY k.ord) AS cols
                FROM pg_index i
                CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                WHERE i.indrelid = $1::regclass AND i.indisunique
                GROUP BY i.indexrelid
                """,
                spec.name,
            )
            assert [set(spec.key)] == [set(r["cols"]) for r in keys], spec.name
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_migrate_on_a_connection_and_concurrently(dsn: str) -> None:
    conns = [await connect_retry(dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        # The advisory lock serializes them: exactly one applies, the others find nothing to do.
        assert sorted(len(r) for r in results) == [0, 0, len(SHIPPED)]
    finally:
        for c in conns:
            await c.close()


@pytest.mark.asyncio
async def test_changed_checksum_is_an_error(dsn: str, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, directory)
    await migrate(dsn, directory=directory)
    base = directory / "0001_base.sql"
    base.write_text(base.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match=r"0001 'base' was applied with checksum"):
        await migrate(dsn, directory=directory)


@pytest.mark.asyncio
async def test_unknown_applied_version_and_failed_migration(dsn: str, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, directory)
    (directory / "0999_broken.sql").write_text("CREATE TABLE later (id int);\nSELECT 1/0;\n")
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate(dsn, directory=directory)
    conn = await connect_retry(dsn)
    try:
        # One transaction: nothing of the failed run stays, not even the shipped migrations.
        assert "silkgate_migrations" not in await _tables(conn)
        assert "later" not in await _tables(conn)
    finally:
        await conn.close()

    (directory / "0999_broken.sql").write_text("CREATE TABLE later (id int);\n")
    assert len(await migrate(dsn, directory=directory)) == len(SHIPPED) + 1
    with pytest.raises(MigrationError, match="migrated by a newer version"):
        await migrate(dsn)  # the shipped set does not know 0999


def test_load_picks_the_license_variant(tmp_path: Path) -> None:
    apache = load("apache")
    community = load("timescale")
    assert [m.name for m in apache[:3]] == ["base", "hypertables", "rollups.apache"]
    assert [m.name for m in community[:3]] == ["base", "hypertables", "rollups.timescale"]
    assert [m.name for m in apache[3:]] == [m.name for m in community[3:]]  # no other variants
    assert apache[0].checksum == community[0].checksum
    assert apache[2].checksum != community[2].checksum
    with pytest.raises(MigrationError, match="none for 'enterprise'"):
        load("enterprise")

    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 2;")
    with pytest.raises(MigrationError, match="defined twice"):
        load("apache", tmp_path)
    (tmp_path / "0001_b.sql").unlink()
    (tmp_path / "notes.sql").write_text("")
    with pytest.raises(MigrationError, match="not a migration name"):
        load("apache", tmp_path)
