"""The COPY writer: records -> binary COPY rows, de-duplicated on the natural key.

``write(conn, RecordType, records)``:

* ``dedup=True`` (the default): a retried batch, a replayed spool or a GB/T 32960 reissue of a
  stored (vin, time) inserts nothing new. Most batches hold no duplicate at all, so the writer
  first tries a plain COPY straight into the hypertable inside a savepoint; only when that hits
  the natural key (``unique_violation``) is the savepoint rolled back and the batch written the
  de-duplicating way: COPY into a per-connection TEMP staging table, then one statement moves
  the rows into the hypertable::

      INSERT INTO <t> (...) SELECT ... FROM pg_temp.silkgate_stage_<t> ON CONFLICT DO NOTHING

  The staging path costs the server a second copy of every row (the move re-inserts each one
  with a speculative insertion), measured at ~1.6x the CPU of the plain COPY for wide realtime
  rows; the optimistic COPY costs a savepoint when it works, and the wasted part of a COPY when
  it does not. After a conflict the next ``_STAGED_AFTER_CONFLICT`` writes of that table go
  straight to the staging path (a spool replay after a crash is all duplicates), then the plain
  COPY is tried again. Either way the same keys end up stored and the count is the same.
  The staging table empties at commit (and rollback). A second staged write of the same table
  in one transaction re-offers the first write's rows too: they are in the table by then, so they
  conflict and are not counted (correct, just extra work; emptying the staging table after each
  move cost a third of the dedup throughput, measured).
* ``dedup=False``: COPY straight into the hypertable (a duplicate key fails the batch).

Rows are binary COPY rows made in C straight from the records (:mod:`gateway.store.binary`),
encoded while the COPY sends them, so the client's encoding overlaps the server's inserting;
with ``SILKGATE_NO_EXTENSIONS=1`` asyncpg's ``copy_records_to_table`` encodes tuples from
``TableSpec.to_row`` instead. Every direct COPY runs in a savepoint, so a failed one leaves
nothing of the batch behind.

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

from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast
from weakref import WeakKeyDictionary

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from gateway.store._copybin import CopyEncoder
from gateway.store.binary import BinaryRows, encoder_for
from gateway.store.conntype import Conn
from gateway.store.tables import SPECS, Row, TableSpec, spec_for

_STAGED: WeakKeyDictionary[asyncpg.Connection[Any], set[str]] = WeakKeyDictionary()
"""Per connection: the staging tables known to exist for the rest of the session."""

_STAGED_AFTER_CONFLICT = 16
"""Writes of a table that skip the optimistic plain COPY after it hit a duplicate key."""

_stage_next: dict[str, int] = {}
"""Per table: how many more de-duplicating writes go straight to the staging path."""


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
    batch = records if isinstance(records, list) else list(records)
    if not batch:
        return 0
    if not dedup:
        return _count(await _copy_direct(conn, spec, _LazyRows(spec.to_row, batch)))
    staging = await _ensure_staging(conn, spec)
    if not conn.is_in_transaction():
        # ON COMMIT DELETE ROWS: COPY and move must share a transaction.
        async with conn.transaction():
            return await _write_dedup(conn, spec, staging, batch)
    return await _write_dedup(conn, spec, staging, batch)


class _LazyRows:
    """asyncpg's path (no C encoder): the rows of ``records``, made as the COPY consumes them,
    so the client makes rows while the server inserts the ones already sent. Keeps a ``to_row``
    error for after the COPY (an exception raised inside the COPY's row iterator makes asyncpg
    cancel the statement out of band); the iteration just stops early then."""

    def __init__(self, to_row: Callable[[Any], Row], records: list[Any]) -> None:
        self.to_row = to_row
        self.records = records
        self.error: Exception | None = None

    def __iter__(self) -> Iterator[Row]:
        to_row = self.to_row
        for record in self.records:
            try:
                row = to_row(record)
            except Exception as exc:
                self.error = exc
                return
            yield row


async def _write_dedup(conn: Conn, spec: TableSpec, staging: str, records: list[Any]) -> int:
    """Plain COPY in a savepoint; the staging path if that hits a duplicate key."""
    skip = _stage_next.get(spec.name, 0)
    if skip:
        _stage_next[spec.name] = skip - 1
    else:
        lazy = _LazyRows(spec.to_row, records)
        try:
            return _count(await _copy_direct(conn, spec, lazy))
        except asyncpg.UniqueViolationError:
            _stage_next[spec.name] = _STAGED_AFTER_CONFLICT
    return await _copy_and_move(conn, spec, staging, records)


async def _copy_direct(conn: Conn, spec: TableSpec, lazy: _LazyRows) -> str:
    """COPY straight into the table, in a savepoint (a transaction when there is none): a
    duplicate key or an encoding error leaves nothing of the batch behind."""
    encoder = await encoder_for(conn, spec)
    async with conn.transaction():
        if encoder is not None:
            return await _copy_binary(conn, spec.name, spec, encoder, lazy.records)
        status = await conn.copy_records_to_table(spec.name, records=lazy, columns=spec.columns)
        if lazy.error is not None:
            raise lazy.error
    return status


async def _copy_binary(
    conn: Conn, table: str, spec: TableSpec, encoder: CopyEncoder, records: list[Any]
) -> str:
    """COPY ``records`` into ``table`` as binary rows made by the C encoder."""
    source = BinaryRows(encoder, records)
    try:
        status = await conn.copy_to_table(
            table, source=source, columns=spec.columns, format="binary"
        )
    except BaseException:
        if source.error is not None:  # the stream ended early: that is the cause
            raise source.error from None
        raise
    if source.error is not None:
        raise source.error
    return status


async def _copy_and_move(conn: Conn, spec: TableSpec, staging: str, records: list[Any]) -> int:
    encoder = await encoder_for(conn, spec)
    if encoder is not None:
        await _copy_binary(conn, staging, spec, encoder, records)
    else:
        to_row = spec.to_row
        rows = [to_row(r) for r in records]
        await conn.copy_records_to_table(staging, records=rows, columns=spec.columns)
    return _count(await conn.execute(_MOVE[spec.name]))
