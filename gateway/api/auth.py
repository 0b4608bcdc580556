"""API tokens and who they make the caller (no FastAPI here: the CLI uses it too).

A token is ``sgt_<id>_<secret>``: ``id`` 12 hex digits (public: it names the token in lists,
the audit and revocations), ``secret`` 32 random bytes in URL-safe base64. Only
``sha256:<hex>`` of the whole token is stored (``api_tokens.hash``, migration 0014); the token
is shown once, when created. A lookup parses the id out of the presented token, reads that row
and compares hashes in constant time. 256 random bits make a fast unsalted hash enough.

Roles: ``admin`` (everything, token management included), ``operator`` (queries and commands
for the devices of its ``operator_id``), ``regulator`` (read only; the vehicles of its
``fleets`` and their terminals).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final, Literal, TypeAlias

import asyncpg
import msgspec

from gateway.ttl_cache import TtlCache

Role: TypeAlias = Literal["admin", "operator", "regulator"]
ROLES: Final[tuple[Role, ...]] = ("admin", "operator", "regulator")
PREFIX: Final = "sgt_"
_TOKEN = re.compile(r"^sgt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_HASH_PREFIX: Final = "sha256:"


class TokenError(ValueError):
    """A token that cannot be created as asked (bad role, missing operator or fleets)."""


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who a valid token makes the caller."""

    token_id: str
    name: str
    role: Role
    operator_id: str | None = None
    fleets: tuple[str, ...] = ()
    rate_per_s: float | None = None
    burst: int | None = None

    @property
    def can_write(self) -> bool:
        """Commands (admin, operator); regulators only read."""
        return self.role != "regulator"


class TokenInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A token as listed (never its hash)."""

    token_id: str
    name: str
    role: Role
    operator_id: str | None
    fleets: list[str]
    rate_per_s: float | None
    burst: int | None
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class NewToken(msgspec.Struct, frozen=True, kw_only=True):
    """A token just created: ``token`` is the secret, shown this once."""

    token: str
    info: TokenInfo


def new_token() -> tuple[str, str]:
    """A fresh ``(token_id, token)``."""
    token_id = secrets.token_hex(6)
    return token_id, f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return _HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def token_id_of(token: str) -> str | None:
    """The id in a well-formed token, or None."""
    match = _TOKEN.match(token)
    return match[1] if match else None


def check_token(token: str, stored_hash: str) -> bool:
    """True when ``token`` hashes to ``stored_hash`` (constant-time comparison)."""
    return hmac.compare_digest(hash_token(token).encode(), stored_hash.encode())


def check_grant(
    role: str,
    operator_id: str | None,
    fleets: Sequence[str],
    rate_per_s: float | None = None,
    burst: int | None = None,
) -> None:
    """:class:`TokenError` for a role and grant that do not go together."""
    if role not in ROLES:
        raise TokenError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    if (role == "operator") != bool(operator_id):
        raise TokenError("an operator token needs an operator (and only it has one)")
    if role == "regulator" and not fleets:
        raise TokenError("a regulator token needs at least one fleet")
    if role != "regulator" and fleets:
        raise TokenError("only regulator tokens are granted fleets")
    if rate_per_s is not None and not rate_per_s > 0:
        raise TokenError("rate_per_s must be positive")
    if burst is not None and burst < 1:
        raise TokenError("burst must be at least 1")


_COLUMNS: Final = (
    "token_id, name, role, operator_id, fleets, rate_per_s, burst, created_at, created_by, "
    "expires_at, revoked_at, last_used_at"
)
_INSERT: Final = f"""
INSERT INTO api_tokens (token_id, name, role, operator_id, fleets, hash, rate_per_s, burst,
    created_by, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING {_COLUMNS}
"""
_VALID: Final = """
SELECT token_id, name, role, operator_id, fleets, hash, rate_per_s, burst FROM api_tokens
WHERE token_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
"""
_REVOKE: Final = """
UPDATE api_tokens SET revoked_at = now() WHERE token_id = $1 AND revoked_at IS NULL
RETURNING token_id
"""
_TOUCH: Final = "UPDATE api_tokens SET last_used_at = now() WHERE token_id = $1"


def _info(row: Any) -> TokenInfo:
    return msgspec.convert({**dict(row), "fleets": list(row["fleets"])}, TokenInfo)


class TokenStore:
    """``api_tokens`` through a pool, with a short cache of lookups (``cache_s``: how long a
    revocation may take to reach a process that has the token cached; 0: no cache)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        cache_s: float = 5.0,
        cache_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self._cache_s = cache_s
        self._cache: TtlCache[str, tuple[str, Principal] | None] = TtlCache(
            cache_s, cache_entries, clock
        )
        self._clock = clock
        self._touched: dict[str, float] = {}

    async def create(
        self,
        *,
        role: str,
        name: str = "",
        operator_id: str | None = None,
        fleets: Sequence[str] = (),
        rate_per_s: float | None = None,
        burst: int | None = None,
        expires_at: datetime | None = None,
        created_by: str | None = None,
    ) -> NewToken:
        """Create a token; :class:`TokenError` for a bad combination (an unknown operator is
        an ``asyncpg.ForeignKeyViolationError``)."""
        check_grant(role, operator_id, fleets, rate_per_s, burst)
        fleets = list(dict.fromkeys(fleets))
        token_id, token = new_token()
        row = await self.pool.fetchrow(
            _INSERT,
            token_id,
            name or f"{role} token",
            role,
            operator_id or None,
            fleets,
            hash_token(token),
            rate_per_s,
            burst,
            created_by,
            expires_at,
        )
        return NewToken(token=token, info=_info(row))

    async def list(self, *, include_revoked: bool = False) -> list[TokenInfo]:
        """Every token, oldest first (revoked ones too when asked)."""
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM api_tokens{where} ORDER BY created_at, token_id"
        )
        return [_info(r) for r in rows]

    async def get(self, token_id: str) -> TokenInfo | None:
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE token_id = $1", token_id
        )
        return None if row is None else _info(row)

    async def revoke(self, token_id: str) -> bool:
        """Revoke a token (False: no such token, or revoked already)."""
        self._cache.discard(token_id)
        return await self.pool.fetchval(_REVOKE, token_id) is not None

    async def authenticate(self, token: str) -> Principal | None:
        """The principal of a valid token (known, not revoked, not expired), else None."""
        token_id = token_id_of(token)
        if token_id is None:
            return None
        cached = self._cache.lookup(token_id) if self._cache_s else None
        if cached is not None and cached.fresh:
            entry = cached.value
        else:
            row = await self.pool.fetchrow(_VALID, token_id)
            entry = None if row is None else (row["hash"], _principal(row))
            if self._cache_s:
                self._cache.put(token_id, entry)
        if entry is None or not check_token(token, entry[0]):
            return None
        await self._touch(token_id)
        return entry[1]

    async def _touch(self, token_id: str) -> None:
        """``last_used_at``, written at most once a minute per token and process."""
        now = self._clock()
        if now - self._touched.get(token_id, -1e9) < 60:
            return
        self._touched[token_id] = now
        if len(self._touched) > 10_000:
            self._touched.clear()
        await self.pool.execute(_TOUCH, token_id)


def _principal(row: Any) -> Principal:
    return Principal(
        token_id=row["token_id"],
        name=row["name"],
        role=row["role"],
        operator_id=row["operator_id"],
        fleets=tuple(row["fleets"]),
        rate_per_s=row["rate_per_s"],
        burst=row["burst"],
    )


__all__ = [
    "PREFIX",
    "ROLES",
    "NewToken",
    "Principal",
    "Role",
    "TokenError",
    "TokenInfo",
    "TokenStore",
    "check_grant",
    "check_token",
    "hash_token",
    "new_token",
    "token_id_of",
]
