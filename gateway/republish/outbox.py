"""The republish outbox (migration 0012): one row per committed batch, drained in durable order.

The store's writer (:class:`gateway.sink.StoreWriter` with ``outbox=True``) calls :func:`append`
inside the transaction that writes a batch, so a row exists exactly when its records are
committed: a rolled-back or spooled batch leaves none, and a spool replay adds its own when it
commits. The row holds the batch's republishable records (every type but :class:`RawFrame`
and :class:`DeadLetter`) in the spool's msgpack form (:func:`gateway.batch.encode`).

:class:`Outbox` reads rows in the gap-free ``(txid, seq)`` order of the forwarders
(:func:`gateway.forward.archive.committed_after`), keeps its cursor in ``forward_cursors``
(:class:`gateway.forward.archive.CursorRow`, ``republish:<name>``) and deletes the rows that
every republish cursor has passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from gateway import batch as batches
from gateway.batch import Batch
from gateway.forward.archive import CursorRow, Position, committed_after
from gateway.records import DeadLetter, RawFrame
from gateway.store.conntype import Conn

NOT_REPUBLISHED: frozenset[type] = frozenset({RawFrame, DeadLetter})

_INSERT = "INSERT INTO republish_outbox (records, batch) VALUES ($1, $2)"


def republishable(kind: type[msgspec.Struct]) -> bool:
    return kind not in NOT_REPUBLISHED


async def append(conn: Conn, groups: Batch) -> None:
    """One outbox row for ``groups`` (records already known to be republishable), in ``conn``'s
    transaction; nothing when there are no records."""
    n = batches.rows(groups)
    if n:
        await conn.execute(_INSERT, n, batches.encode(groups))


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One committed batch waiting to be published."""

    position: Position
    created_at: datetime  # the writing transaction's start (the store's now())
    records: int
    batch: bytes


@dataclass(frozen=True, slots=True)
class Lag:
    """What waits in the outbox after a position."""

    rows: int
    records: int
    oldest: datetime | None  # created_at of the oldest waiting row


class Outbox(CursorRow):
    """The outbox as one republisher reads it: its page size and its cursor row."""

    def __init__(self, cursor_name: str, *, page_rows: int) -> None:
        super().__init__(cursor_name)
        self.page_rows = page_rows
        # Ordered as the primary key (txid, seq): each read is one index range scan.
        self._fetch = f"""
            SELECT o.txid::text::bigint AS txid, o.seq, o.created_at, o.records, o.batch
            FROM republish_outbox o
            WHERE {committed_after("o")}
            ORDER BY o.txid, o.seq
            LIMIT $3
        """
        self._lag = """
            SELECT count(*) AS rows, coalesce(sum(o.records), 0) AS records,
                   min(o.created_at) AS oldest
            FROM republish_outbox o
            WHERE (o.txid, o.seq) > ($1::text::xid8, $2::bigint)
        """

    async def fetch(self, conn: Conn, after: Position) -> list[OutboxRow]:
        """Up to ``page_rows`` committed rows after ``after``, in order."""
        rows: Sequence[Any] = await conn.fetch(
            self._fetch, str(after.txid), after.seq, self.page_rows
        )
        return [
            OutboxRow(
                Position(r["txid"], r["seq"]), r["created_at"], r["records"], bytes(r["batch"])
            )
            for r in rows
        ]

    async def lag(self, conn: Conn, after: Position) -> Lag:
        """The committed rows after ``after``."""
        r = await conn.fetchrow(self._lag, str(after.txid), after.seq)
        assert r is not None
        return Lag(r["rows"], r["records"], r["oldest"])

    @staticmethod
    async def delete_passed(conn: Conn) -> int:
        """Delete the rows every republish cursor has passed; how many. Nothing while no
        republish cursor exists (a republisher that never ran must not lose its backlog)."""
        status: str = await conn.execute(
            """
            WITH low AS (
                SELECT txid, seq FROM forward_cursors WHERE name LIKE 'republish:%'
                ORDER BY txid, seq LIMIT 1
            )
            DELETE FROM republish_outbox o USING low WHERE (o.txid, o.seq) <= (low.txid, low.seq)
            """
        )
        return int(status.rsplit(" ", 1)[-1])
