"""Reading the raw frame archive in durable order, and the forwarders' cursors.

Order and cursor: ``(txid, seq)`` (migration 0005): the writing transaction's id, then the
row's place in that transaction's inserts (arrival order). :meth:`Archive.fetch` returns rows
after a cursor whose ``txid`` is below the xmin of the statement's own snapshot. Every
transaction below xmin has ended, so no row can later appear behind a cursor that has passed
it, whatever order transactions commit in; rows of a transaction still open wait until it ends
(a transaction left open anywhere in the cluster holds forwarding back that long).

When a read returns less than a page, everything below xmin has been seen: the returned
``horizon`` (xmin, 0) is a position the cursor may move to once the rows returned are done, so
a forwarder whose vehicles are quiet does not re-scan other vehicles' rows on every poll.

The order and the cursor rows are not the archive's alone: :func:`committed_after` and
:class:`CursorRow` serve every table stamped the same way (the republish outbox, migration 0012).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from gateway.forward.config import Selection
from gateway.store.conntype import Conn

GBT32960 = "gbt32960"
JT808 = "jt808"


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A place in the archive's forwarding order; rows strictly after it are still to come."""

    txid: int
    seq: int


BEGINNING = Position(0, 0)


@dataclass(frozen=True, slots=True)
class ArchiveRow:
    """One archived frame, as the forwarders see it."""

    position: Position
    frame_id: uuid.UUID
    received_at: datetime
    protocol: str
    version: str | None
    device_id: str | None
    frame: bytes


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[ArchiveRow]
    horizon: Position | None  # set when the read was short: nothing else below it to come


@dataclass(frozen=True, slots=True)
class Cursor:
    """A forwarder's saved state (one row of ``forward_cursors``)."""

    position: Position
    forwarded: int
    login_day: date | None = None
    login_serial: int | None = None


def committed_after(alias: str) -> str:
    """The WHERE fragment of the gap-free order for the table aliased ``alias``: its rows after
    the cursor (``$1``: txid as text, asyncpg has no xid8 codec; ``$2``: seq) written by
    transactions that have ended (below the statement's snapshot xmin)."""
    return (
        f"({alias}.txid, {alias}.seq) > ($1::text::xid8, $2::bigint) "
        f"AND {alias}.txid < pg_snapshot_xmin(pg_current_snapshot())"
    )


def selection_sql(
    select: Selection, protocols: tuple[str, ...], first_param: int
) -> tuple[str, list[Any]]:
    """A WHERE fragment choosing the selected vehicles' rows of ``protocols``, and its args.

    GB/T 32960 rows carry the VIN as ``device_id``; JT/T 808 rows the terminal's phone, mapped
    to a vehicle through ``terminals`` (its ``vin``, or its own ``operator_id``).
    """
    args: list[Any] = [list(protocols)]
    clauses = [f"f.protocol = ANY(${first_param}::text[])"]
    if select.all:
        return " AND ".join(clauses), args
    n = first_param + 1
    args += [select.vins, select.operators, select.fleets]
    vins, ops, fleets = f"${n}::text[]", f"${n + 1}::text[]", f"${n + 2}::text[]"
    vehicles = (
        f"SELECT v.vin FROM vehicles v WHERE v.vin = ANY({vins}) "
        f"OR v.operator_id = ANY({ops}) OR v.fleet_id = ANY({fleets})"
    )
    by_protocol = {
        GBT32960: f"(f.protocol = '{GBT32960}' AND "
        f"(f.device_id = ANY({vins}) OR f.device_id IN ({vehicles})))",
        JT808: f"(f.protocol = '{JT808}' AND f.device_id IN (SELECT t.phone FROM terminals t "
        f"WHERE t.operator_id = ANY({ops}) OR t.vin IN ({vehicles})))",
    }
    parts = [sql for protocol, sql in by_protocol.items() if protocol in protocols]
    clauses.append("(" + " OR ".join(parts) + ")")
    return " AND ".join(clauses), args


class CursorRow:
    """A reader's durable cursor: the row of ``forward_cursors`` named ``cursor_name``."""

    def __init__(self, cursor_name: str) -> None:
        self.cursor_name = cursor_name

    async def load(self, conn: Conn, start: Literal["latest", "earliest"]) -> Cursor:
        """The saved cursor; a new one (saved now) at the order's end or beginning."""
        row = await conn.fetchrow(
            "SELECT txid::text::bigint AS txid, seq, forwarded, login_day, login_serial "
            "FROM forward_cursors WHERE name = $1",
            self.cursor_name,
        )
        if row is not None:
            return Cursor(
                Position(row["txid"], row["seq"]),
                row["forwarded"],
                row["login_day"],
                row["login_serial"],
            )
        position = BEGINNING
        if start == "latest":
            # Rows of transactions from xmin on may still appear: start just before xmin.
            xmin: int = await conn.fetchval(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
            )
            position = Position(xmin, 0)
        await conn.execute(
            "INSERT INTO forward_cursors (name, txid, seq) VALUES ($1, $2::text::xid8, $3) "
            "ON CONFLICT (name) DO NOTHING",
            self.cursor_name,
            str(position.txid),
            position.seq,
        )
        return await self.load(conn, start)

    async def save(
        self,
        conn: Conn,
        position: Position,
        forwarded: int,
        last: ArchiveRow | None = None,
    ) -> None:
        """Move the cursor to ``position`` (never backwards) with the ``forwarded`` total.
        Absolute values: a save whose outcome was lost (cancelled, connection cut) can simply
        be repeated."""
        await conn.execute(
            """
            UPDATE forward_cursors SET
                txid = $2::text::xid8, seq = $3, forwarded = greatest(forwarded, $4),
                frame_id = coalesce($5, frame_id), received_at = coalesce($6, received_at),
                updated_at = now()
            WHERE name = $1 AND (txid, seq) <= ($2::text::xid8, $3)
            """,
            self.cursor_name,
            str(position.txid),
            position.seq,
            forwarded,
            last.frame_id if last else None,
            last.received_at if last else None,
        )

    async def save_login_serial(self, conn: Conn, day: date, serial: int) -> None:
        await conn.execute(
            "UPDATE forward_cursors SET login_day = $2, login_serial = $3, updated_at = now() "
            "WHERE name = $1",
            self.cursor_name,
            day,
            serial,
        )


class Archive(CursorRow):
    """The archive as one forwarder reads it: its selection, its page size, its cursor row."""

    def __init__(
        self,
        cursor_name: str,
        select: Selection,
        protocols: tuple[str, ...],
        *,
        page_rows: int,
        extra_where: str = "",
    ) -> None:
        super().__init__(cursor_name)
        self.page_rows = page_rows
        where, self._args = selection_sql(select, protocols, 4)
        if extra_where:
            where += f" AND ({extra_where})"
        # $1 / $2: the cursor; $3: the page size. txid travels as text (asyncpg has no xid8
        # codec); ORDER BY matches raw_frames_forward_idx, so each chunk is an index range scan.
        self._fetch = f"""
            SELECT f.txid::text::bigint AS txid, f.seq, f.frame_id, f.received_at, f.protocol,
                   f.version, f.device_id, f.frame, s.xmin
            FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin) s
            LEFT JOIN LATERAL (
                SELECT * FROM raw_frames f
                WHERE f.txid IS NOT NULL
                  AND {committed_after("f")}
                  AND {where}
                ORDER BY f.txid, f.seq
                LIMIT $3
            ) f ON true
        """

    async def fetch(self, conn: Conn, after: Position) -> Page:
        """Up to ``page_rows`` selected rows after ``after``, in order."""
        records = await conn.fetch(
            self._fetch, str(after.txid), after.seq, self.page_rows, *self._args
        )
        rows = [
            ArchiveRow(
                position=Position(r["txid"], r["seq"]),
                frame_id=r["frame_id"],
                received_at=r["received_at"],
                protocol=r["protocol"],
                version=r["version"],
                device_id=r["device_id"],
                frame=bytes(r["frame"]),
            )
            for r in records
            if r["txid"] is not None
        ]
        horizon = None
        if len(rows) < self.page_rows:
            xmin: int = records[0]["xmin"]
            if xmin > after.txid:
                horizon = Position(xmin, 0)
        return Page(rows, horizon)
