"""The audit of the API (``api_audit``, migration 0014): every command sent through it, and
every one refused, with who asked, what, when, and the result; token management too."""

from __future__ import annotations

import logging
import uuid
from typing import Any, Final

import asyncpg

from gateway.api.auth import Principal

log = logging.getLogger("silkgate.api.audit")

_INSERT: Final = """
INSERT INTO api_audit (token_id, role, operator_id, peer, action, device_id, protocol, command,
    request, command_id, result, http_status, error, worker, duration_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
RETURNING audit_id
"""
_UPDATE: Final = """
UPDATE api_audit SET command_id = $2, result = $3, http_status = $4, error = $5, worker = $6,
    duration_ms = $7
WHERE audit_id = $1
"""

PENDING: Final = "pending"
REFUSED: Final = "refused"
MASK: Final = "***"
_SECRET_KEYS: Final = ("password", "secret", "authorizationkey")
_SECRET_SETTINGS: Final = frozenset({"authorizationkey", "basicauthpassword"})


def redact(args: Any) -> Any:
    """Command arguments as audited: passwords and keys masked. Masked are the values of
    object keys naming a password or secret (the GB/T 32960 upgrade's ``password``), the
    ``value`` of an OCPP 1.6 ``AuthorizationKey`` configuration change, and the value of a
    2.0.1 ``BasicAuthPassword`` variable."""
    if isinstance(args, dict):
        out = {
            k: MASK if any(w in k.lower() for w in _SECRET_KEYS) else redact(v)
            for k, v in args.items()
        }
        key = args.get("key")
        if isinstance(key, str) and key.lower() in _SECRET_SETTINGS and "value" in out:
            out["value"] = MASK
        return out
    if isinstance(args, list):
        if len(args) >= 3 and any(_names_secret(item) for item in args[:2]):
            return [*args[:2], MASK, *args[3:]]
        return [redact(v) for v in args]
    return args


def _names_secret(item: Any) -> bool:
    name = item.get("name") if isinstance(item, dict) else item
    return isinstance(name, str) and name.lower() in _SECRET_SETTINGS


class AuditLog:
    """Writes ``api_audit`` rows through the API's pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.failed = 0  # rows that could not be written (logged)

    async def record(
        self,
        p: Principal | None,
        *,
        action: str,
        result: str,
        http_status: int,
        peer: str | None = None,
        device_id: str | None = None,
        protocol: str | None = None,
        command: str | None = None,
        request: Any = None,
        command_id: uuid.UUID | None = None,
        error: str | None = None,
        worker: int | None = None,
        duration_ms: float | None = None,
    ) -> int:
        """Insert a row; returns its id (for :meth:`finish`). A command's row is written
        ``pending`` before it is sent: the audit holds every command even if the process dies
        before it ends."""
        audit_id: int = await self.pool.fetchval(
            _INSERT,
            p.token_id if p else None,
            p.role if p else None,
            p.operator_id if p else None,
            peer,
            action,
            device_id,
            protocol,
            command,
            request,
            command_id,
            result,
            http_status,
            error,
            worker,
            duration_ms,
        )
        return audit_id

    async def finish(
        self,
        audit_id: int,
        *,
        result: str,
        http_status: int,
        command_id: uuid.UUID | None = None,
        error: str | None = None,
        worker: int | None = None,
        duration_ms: float | None = None,
    ) -> None:
        """Complete a row written ``pending`` (a failure is logged: the command happened)."""
        try:
            await self.pool.execute(
                _UPDATE, audit_id, command_id, result, http_status, error, worker, duration_ms
            )
        except Exception as exc:
            self.failed += 1
            log.warning("audit row %d: outcome %s not stored: %r", audit_id, result, exc)
