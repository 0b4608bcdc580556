"""The COPY writer: records -> rows -> binary COPY, de-duplicated on the natural key.

``write(conn, RecordType, records)``:

* ``dedup=True`` (the default): COPY into a per-connection TEMP staging table, then one
  statement moves the rows into the hypertable::

      INSERT INTO <t> (...) SELECT ... FROM pg_temp.silkgate_stage_<t> ON CONFLICT DO NOTHING

  so a retried batch, a replayed spool or a GB/T 32960 reissue of a stored (vin, time) inserts
  nothing. The staging table empties at commit (and rollback). A second write of the same table
  in one transaction re-offers the first write's rows too: they are in the table by then, so they
  conflict and are not counted (correct, just extra work; emptying the staging table after each
  move cost a third of the dedup throughput, measured).
* ``dedup=False``: COPY straight into the hypertable (fastest; a duplicate key fails the batch).

The caller owns the transaction: the pipeline writes several tables in one ``async with
conn.transaction()`` and commits once per batch (outside a transaction, a dedup write makes its
own). Returns the number of rows inserted (new rows, not duplicates).

Staging tables are ``CREATE TEMP TABLE ... (LIKE <t> INCLUDING DEFAULTS) ON COMMIT DELETE ROWS``,
made once per connection: :func:`prepare` makes them all (the helpers in
:mod:`gateway.store.connection` call it on every new connection). A staging table that
:func:`write` had to create inside a transaction is re-declared (``IF NOT EXISTS``) until one is
made outside a transaction, as a rollback of that transaction takes the table with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast
from weakref import WeakKeyDictionary

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from gateway.store.conntype import Conn
from gateway.store.tables import SPECS, Row, TableSpec, spec_for

_STAGED: WeakKeyDictionary[asyncpg.Connection[Any], set[str]] = WeakKeyDictionary()
"""Per connection: the staging tables known to exist for the rest of the session."""


def _staging_name(spec: TableSpec) -> str:
    return f"silkgate_stage_{spec.name}"


def _quoted(columns: Iterable[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _create_staging_sql(spec: TableSpec) -> str:
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS {_staging_name(spec)} "
        f"(LIKE {spec.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )


def _move_sql(spec: TableSpec) -> str:
    cols = _quoted(spec.columns)
    return (
        f"INSERT INTO {spec.name} ({cols}) SELECT {cols} FROM pg_temp.{_staging_name(spec)} "
        "ON CONFLICT DO NOTHING"
    )


_MOVE = {spec.name: _move_sql(spec) for spec in SPECS}


def _connection(conn: Conn) -> asyncpg.Connection[Any]:
    """The connection itself: a pool hands out a new PoolConnectionProxy per acquire."""
    if not isinstance(conn, PoolConnectionProxy):  # isinstance(proxy, Connection) is True
        return conn
    inner = getattr(conn, "_con", None)
    if inner is None:
        raise asyncpg.InterfaceError("the pool connection has been released")
    return cast("asyncpg.Connection[Any]", inner)


def _count(status: str) -> int:
    """Rows of a command status: ``COPY 12``, ``INSERT 0 12``."""
    return int(status.rsplit(" ", 1)[-1])


async def prepare(conn: Conn) -> None:
    """Create every staging table on this connection (the schema must be migrated)."""
    await conn.execute(";\n".join(_create_staging_sql(s) for s in SPECS))
    if not conn.is_in_transaction():
        _STAGED.setdefault(_connection(conn), set()).update(_staging_name(s) for s in SPECS)


async def _ensure_staging(conn: Conn, spec: TableSpec) -> str:
    name = _staging_name(spec)
    known = _STAGED.setdefault(_connection(conn), set())
    if name not in known:
        await conn.execute(_create_staging_sql(spec))
        if not conn.is_in_transaction():
            known.add(name)
    return name


async def write(
    conn: Conn,
    record_type: type,
    records: Iterable[Any],
    *,
    dedup: bool = True,
) -> int:
    """COPY ``records`` (all of ``record_type``) into their table; returns the rows inserted."""
    spec = spec_for(record_type)
    to_row = spec.to_row
    rows = [to_row(r) for r in records]
    if not rows:
        return 0
    if not dedup:
        status = await conn.copy_records_to_table(spec.name, records=rows, columns=spec.columns)
        return _count(status)
    staging = await _ensure_staging(conn, spec)
    if not conn.is_in_transaction():
        # ON COMMIT DELETE ROWS: COPY and move must share a transaction.
        async with conn.transaction():
            return await _copy_and_move(conn, spec, staging, rows)
    return await _copy_and_move(conn, spec, staging, rows)


async def _copy_and_move(conn: Conn, spec: TableSpec, staging: str, rows: list[Row]) -> int:
    await conn.copy_records_to_table(staging, records=rows, columns=spec.columns)
    return _count(await conn.execute(_MOVE[spec.name]))
