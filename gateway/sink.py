"""The pipeline's writer over the TimescaleDB store: one transaction per batch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from gateway.batch import Batch
from gateway.records import DeadLetter
from gateway.store.writer import write

_REJECT_NAMESPACE = uuid.UUID("6f1d2c1e-3a52-4b8e-9a57-5b7c0d6e8a11")
_json = msgspec.json.Encoder()


class StoreWriter:
    """Writes batches with the store's COPY writer; rejected records become dead letters."""

    def __init__(self, pool: asyncpg.Pool, *, dedup: bool = True) -> None:
        self.pool = pool
        self.dedup = dedup
        self.inserted_rows = 0  # new rows (duplicates not counted)

    async def write_batch(self, batch: Batch) -> None:
        inserted = 0
        async with self.pool.acquire() as conn, conn.transaction():
            for kind, records in batch.items():
                inserted += await write(conn, kind, records, dedup=self.dedup)
        self.inserted_rows += inserted

    async def write_rejected(self, batch: Batch, error: BaseException) -> None:
        letters = [rejected(rec, error) for recs in batch.values() for rec in recs]
        async with self.pool.acquire() as conn, conn.transaction():
            await write(conn, DeadLetter, letters, dedup=True)


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
