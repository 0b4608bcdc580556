"""The pipeline's writer over the TimescaleDB store: one transaction per batch (with
``outbox=True`` also holding the batch's row of the republish outbox, :mod:`gateway.republish`)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import asyncpg
import msgspec

from gateway.batch import Batch
from gateway.records import DeadLetter
from gateway.republish import outbox
from gateway.store.tables import spec_for
from gateway.store.writer import write

_REJECT_NAMESPACE = uuid.UUID("6f1d2c1e-3a52-4b8e-9a57-5b7c0d6e8a11")
_json = msgspec.json.Encoder()


class StoreWriter:
    """Writes batches with the store's COPY writer; rejected records become dead letters.

    ``outbox``: every batch written also inserts one row into the republish outbox, in the same
    transaction, holding the records it wrote except raw frames and dead letters (the store's
    de-duplication is not consulted: a record the store already had is republished again).
    """

    def __init__(self, pool: asyncpg.Pool, *, dedup: bool = True, outbox: bool = False) -> None:
        self.pool = pool
        self.dedup = dedup
        self.outbox = outbox
        self.inserted_rows = 0  # new rows (duplicates not counted)

    async def write_batch(self, batch: Batch) -> None:
        inserted = 0
        republish: Batch = {}
        async with _transaction(self.pool) as conn:
            for kind, records in batch.items():
                rows = first_of_each_key(kind, records) if self.dedup else records
                inserted += await write(conn, kind, rows, dedup=self.dedup)
                if self.outbox and outbox.republishable(kind):
                    republish[kind] = rows if isinstance(rows, list) else list(rows)
            if republish:
                await outbox.append(conn, republish)
        self.inserted_rows += inserted

    async def write_rejected(self, batch: Batch, error: BaseException) -> None:
        letters = [rejected(rec, error) for recs in batch.values() for rec in recs]
        async with _transaction(self.pool) as conn:
            await write(conn, DeadLetter, letters, dedup=True)


class ConnectionLost(ConnectionResetError):
    """The database connection was lost while a batch was being written."""


@contextlib.asynccontextmanager
async def _transaction(pool: asyncpg.Pool) -> AsyncIterator[Any]:
    """A pooled connection in a transaction, for one batch; a lost connection ends the write
    with :class:`ConnectionLost` (an outage for the pipeline).

    asyncpg (0.32) does not wake a COPY that waits for socket flow control (its
    ``writing_allowed`` event) when the connection is lost: with the server killed mid-COPY the
    write waited forever, and the pipeline never noticed the outage. A termination listener
    cancels the writing task instead, and the cancellation is turned into ConnectionLost.
    """
    task = asyncio.current_task()
    lost = False

    def on_lost(_conn: object) -> None:
        nonlocal lost
        if task is not None and armed and not task.done():
            lost = True
            task.cancel()

    async with pool.acquire() as conn:
        armed = True
        conn.add_termination_listener(on_lost)
        try:
            async with conn.transaction():
                yield conn
        except (asyncio.CancelledError, asyncpg.exceptions.InterfaceError) as exc:
            if not lost or task is None:
                raise
            task.uncancel()
            raise ConnectionLost("the database connection was lost during the write") from exc
        finally:
            armed = False
            with contextlib.suppress(Exception):
                conn.remove_termination_listener(on_lost)


_KEYS: dict[type, Callable[[Any], Any]] = {}


def first_of_each_key(kind: type, records: Sequence[Any]) -> Sequence[Any]:
    """``records`` without the later copies of a natural key, so the first copy is stored.

    The store's ``INSERT ... ON CONFLICT DO NOTHING`` keeps one row per key, but within one
    statement not necessarily the first: a batch holding a frame and its duplicate or 0x03
    reissue could otherwise store the reissue's flag and receive time. Records whose key has a
    None are kept (the store fills some in, e.g. a session event's time, and NULLs differ)."""
    key = _KEYS.get(kind)
    if key is None:
        key = _KEYS[kind] = attrgetter(*spec_for(kind).key)
    keys = list(map(key, records))
    if len(set(keys)) == len(keys):  # the common case, at C speed: no key repeats
        return records
    seen: set[Any] = set()
    out: list[Any] = []
    for rec, k in zip(records, keys, strict=True):
        if k in seen:
            continue
        if None not in (k if isinstance(k, tuple) else (k,)):
            seen.add(k)
        out.append(rec)
    return out if len(out) < len(records) else records


def rejected(record: Any, error: BaseException) -> DeadLetter:
    """A dead letter for a record the database refused: the record as JSON, and why.

    The id is derived from the content, so a replayed rejection is stored once (records
    without any time are stamped now, so those may repeat after a crash)."""
    raw = _json.encode(record)
    when = getattr(record, "received_at", None) or getattr(record, "time", None)
    return DeadLetter(
        frame_id=uuid.uuid5(_REJECT_NAMESPACE, raw.hex()),
        received_at=when if isinstance(when, datetime) else datetime.now(UTC),
        peer="pipeline",
        protocol=getattr(record, "protocol", type(record).__name__),
        reason="store_rejected",
        message=f"{type(error).__name__}: {error}"[:1000],
        raw=raw,
    )
