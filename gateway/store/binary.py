"""Binary COPY rows made in C (``gateway.store._copybin``) for the store's writer.

:func:`encoder_for` builds, once per table, a :class:`~gateway.store._copybin.CopyEncoder` from
the table's :class:`~gateway.store.tables.TableSpec` sources and the column types the database
reports (``format_type`` from ``pg_attribute``, so the encoder always matches the migrated
schema). It returns None, and the writer keeps asyncpg's ``copy_records_to_table``, when a column
has a type the encoder does not know or when ``SILKGATE_NO_EXTENSIONS=1`` (the pure-Python path
the equivalence tests compare against).

:class:`BinaryRows` is the COPY's source: the header, then the rows in chunks of
``CHUNK_ROWS``, then the trailer. The rows are encoded as the COPY consumes them, so the client
encodes while the server inserts. An encoding error (a value the column cannot hold) ends the
stream early and is kept in ``error``: the caller raises it after the COPY, inside the savepoint
it rolls back (raising inside the source would make asyncpg cancel the statement out of band).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec

from gateway.codecs._select import extensions_disabled
from gateway.store import _copybin
from gateway.store.conntype import Conn
from gateway.store.tables import TableSpec

CHUNK_ROWS = 256
"""Rows per COPY data message: ~180 KB of wide realtime rows."""

_TYPES_SQL = """
SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""

_encoders: dict[str, _copybin.CopyEncoder | None] = {}
_json_encode = msgspec.json.Encoder().encode


async def encoder_for(conn: Conn, spec: TableSpec) -> _copybin.CopyEncoder | None:
    """The table's binary encoder (made on first use), or None to use asyncpg's encoding."""
    if extensions_disabled():
        return None
    if spec.name in _encoders:
        return _encoders[spec.name]
    types = dict(await conn.fetch(_TYPES_SQL, spec.name))
    codes = [_copybin.type_code(types.get(column, "")) for column in spec.columns]
    encoder = None
    if -1 not in codes:
        columns = [
            (code, src.attrs, src.now, src.json)
            for code, src in zip(codes, spec.sources, strict=True)
        ]
        encoder = _copybin.CopyEncoder(spec.record_type, columns, _json_encode)
    _encoders[spec.name] = encoder
    return encoder


class BinaryRows:
    """The binary COPY stream of ``records`` (an async iterable of bytes)."""

    def __init__(self, encoder: _copybin.CopyEncoder, records: list[Any]) -> None:
        self.encoder = encoder
        self.records = records
        self.error: Exception | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        now = datetime.now(UTC)  # the write time of columns that fall back to it
        rows = self.encoder.rows
        yield _copybin.HEADER  # first, so even a failed first row leaves a well-formed stream
        for start in range(0, len(self.records), CHUNK_ROWS):
            try:
                chunk = rows(self.records, start, start + CHUNK_ROWS, now)
            except Exception as exc:
                self.error = exc
                return
            yield chunk
        yield _copybin.TRAILER
