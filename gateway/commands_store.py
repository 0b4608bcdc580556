"""The ``commands`` table (migration 0007): one row per command, inserted when it is sent (or
refused), updated with its outcome; read back as :class:`CommandResult`."""

from __future__ import annotations

import uuid
from typing import Any, Final

import asyncpg
import msgspec

from gateway.commands_types import CommandResult

_COLUMNS: Final = (
    "id, device_id, protocol, command, request, status, reply, created_at, sent_at, "
    "replied_at, error"
)
_INSERT: Final = f"""
INSERT INTO commands ({_COLUMNS})
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7::jsonb, $8, $9, $10, $11)
"""
_UPDATE: Final = """
UPDATE commands SET status = $2, reply = $3::jsonb, sent_at = $4, replied_at = $5, error = $6
WHERE id = $1
"""
_SELECT: Final = f"SELECT {_COLUMNS} FROM commands"

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _json(value: object) -> str | None:
    return None if value is None else _encode(value).decode()


class CommandStore:
    """Reads and writes ``commands`` through a pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def insert(self, r: CommandResult) -> None:
        await self.pool.execute(
            _INSERT,
            r.id,
            r.device,
            r.protocol,
            r.command,
            _json(r.request),
            r.status,
            _json(r.reply),
            r.created_at,
            r.sent_at,
            r.replied_at,
            r.error,
        )

    async def update(self, r: CommandResult) -> None:
        await self.pool.execute(
            _UPDATE, r.id, r.status, _json(r.reply), r.sent_at, r.replied_at, r.error
        )

    async def get(self, command_id: uuid.UUID) -> CommandResult | None:
        row = await self.pool.fetchrow(f"{_SELECT} WHERE id = $1", command_id)
        return None if row is None else _result(row)

    async def history(self, device_id: str, limit: int) -> list[CommandResult]:
        """The device's latest commands, newest first."""
        rows = await self.pool.fetch(
            f"{_SELECT} WHERE device_id = $1 ORDER BY created_at DESC LIMIT $2", device_id, limit
        )
        return [_result(row) for row in rows]


def _result(row: Any) -> CommandResult:
    return CommandResult(
        id=row["id"],
        device=row["device_id"],
        protocol=row["protocol"],
        command=row["command"],
        request=_decode(row["request"]),
        status=row["status"],
        reply=None if row["reply"] is None else _decode(row["reply"]),
        created_at=row["created_at"],
        sent_at=row["sent_at"],
        replied_at=row["replied_at"],
        error=row["error"],
    )


__all__ = ["CommandStore"]
