"""The local authorization list of the OCPP central system: table ``id_tokens`` (migration
0008) read through a bounded TTL cache, and the answer Authorize (and the transaction messages)
give a token, as OCPP 1.6 ``idTagInfo`` or 2.0.1 ``idTokenInfo``.

Rules, in this order: a token missing from the list gets the configured ``unknown_status``
(``Invalid``, or ``Accepted`` for open sites); a token of another operator (``operator_id`` set
and not the charger's) is ``Invalid`` in 1.6 and ``NotAtThisLocation`` in 2.0.1 ("valid, but the
driver has no access to this location"); a 2.0.1 token presented with another type than the
list names (``token_type`` set) is ``Invalid``; then the row's status (``Blocked``,
``Expired``, ``Invalid``); an ``Accepted`` row whose ``expires_at`` has passed is ``Expired``.
1.6 idTags carry no type, so ``token_type`` is not checked for them. An accepted token's
``expires_at`` becomes ``expiryDate`` / ``cacheExpiryDateTime``; ``parent_id_tag`` becomes
``parentIdTag`` / ``groupIdToken`` (type ``Central``: the list does not say what kind of
identifier a group is).

Cache: hits and misses (unknown tokens) alike are kept ``ttl_s`` seconds, so a token added or
blocked in the table takes effect within that time, or at once after :meth:`IdTokens.invalidate`.
While the database is away a lookup answers from the cache, even an expired entry; with no entry
it raises (the shell answers InternalError and the charger retries or uses its own offline
rules): a database outage must not turn into a definite "Invalid" or "Accepted".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg
from msgspec import UNSET

from gateway.ocpp import v16, v201
from gateway.pipeline import is_outage
from gateway.ttl_cache import TtlCache

# OCPP ID tokens are case-insensitive (1.6 IdToken, 2.0.1 IdTokenType): matched on lower(),
# which migration 0010 indexes (and keeps unique).
_SELECT_SQL: Final = """
SELECT operator_id, token_type, status, expires_at, parent_id_tag FROM id_tokens
WHERE lower(id_token) = lower($1)
"""

NOT_AT_THIS_LOCATION: Final = "NotAtThisLocation"
"""The neutral status of a token of another operator (1.6 has no such status: Invalid there)."""


@dataclass(frozen=True, slots=True)
class IdTokenEntry:
    """One row of ``id_tokens``."""

    id_token: str
    operator_id: str | None
    token_type: str | None
    status: str
    expires_at: datetime | None
    parent_id_tag: str | None


@dataclass(frozen=True, slots=True)
class Authorization:
    """The verdict on one token, before it is spelt for a version (:func:`id_tag_info`,
    :func:`id_token_info`). ``status``: Accepted, Blocked, Expired, Invalid, NotAtThisLocation."""

    status: str
    expires_at: datetime | None = None
    parent_id_tag: str | None = None
    known: bool = True  # the token is in the list


class IdTokens:
    """Cached access to the local authorization list (see the module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl_s: float = 60.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._cache: TtlCache[str, IdTokenEntry | None] = TtlCache(ttl_s, max_entries, clock)

    async def get(self, id_token: str) -> IdTokenEntry | None:
        """The list's row for ``id_token`` (None: not in the list)."""
        key = id_token.lower()
        cached = self._cache.lookup(key)
        if cached is not None and cached.fresh:
            return cached.value
        try:
            row: Any = await self._pool.fetchrow(_SELECT_SQL, id_token)
        except Exception as exc:
            if cached is not None and is_outage(exc):
                return cached.value
            raise
        entry = (
            None
            if row is None
            else IdTokenEntry(
                id_token=id_token,
                operator_id=row["operator_id"],
                token_type=row["token_type"],
                status=row["status"],
                expires_at=row["expires_at"],
                parent_id_tag=row["parent_id_tag"],
            )
        )
        self._cache.put(key, entry)
        return entry

    def invalidate(self, id_token: str | None = None) -> None:
        """Forget one cached token, or all of them (after the list changed)."""
        if id_token is None:
            self._cache.clear()
        else:
            self._cache.discard(id_token.lower())

    async def authorize(
        self,
        id_token: str,
        *,
        operator_id: str | None,
        token_type: str | None,
        now: datetime,
        unknown_status: str,
    ) -> Authorization:
        """The verdict on ``id_token`` presented at a charger of ``operator_id``.

        ``token_type``: the 2.0.1 idToken type (None for 1.6: not checked).
        """
        entry = await self.get(id_token)
        return judge(entry, operator_id, token_type, now, unknown_status)


def judge(
    entry: IdTokenEntry | None,
    operator_id: str | None,
    token_type: str | None,
    now: datetime,
    unknown_status: str,
) -> Authorization:
    """The rules of the module docstring applied to one list entry (None: not in the list)."""
    if entry is None:
        return Authorization(unknown_status, known=False)
    parent = entry.parent_id_tag
    if entry.operator_id is not None and entry.operator_id != operator_id:
        return Authorization(NOT_AT_THIS_LOCATION, parent_id_tag=parent)
    if token_type is not None and entry.token_type is not None and entry.token_type != token_type:
        return Authorization("Invalid", parent_id_tag=parent)
    if entry.status != "Accepted":
        return Authorization(entry.status, parent_id_tag=parent)
    if entry.expires_at is not None and entry.expires_at <= now:
        return Authorization("Expired", parent_id_tag=parent)
    return Authorization("Accepted", expires_at=entry.expires_at, parent_id_tag=parent)


def id_tag_info(auth: Authorization) -> v16.IdTagInfo:
    """The OCPP 1.6 ``idTagInfo`` of a verdict."""
    status = "Invalid" if auth.status == NOT_AT_THIS_LOCATION else auth.status
    return v16.IdTagInfo(
        status=status,  # type: ignore[arg-type]  # one of the 1.6 statuses by construction
        expiryDate=auth.expires_at if auth.expires_at is not None else UNSET,
        # a parent longer than the 1.6 field (20) is left out rather than sent invalid
        parentIdTag=(
            auth.parent_id_tag
            if auth.parent_id_tag is not None and len(auth.parent_id_tag) <= 20
            else UNSET
        ),
    )


def id_token_info(auth: Authorization) -> v201.IdTokenInfoType:
    """The OCPP 2.0.1 ``idTokenInfo`` of a verdict."""
    parent = auth.parent_id_tag
    return v201.IdTokenInfoType(
        status=auth.status,  # type: ignore[arg-type]  # one of the 2.0.1 statuses by construction
        cacheExpiryDateTime=auth.expires_at if auth.expires_at is not None else UNSET,
        groupIdToken=(
            v201.IdTokenType(idToken=parent, type="Central")
            if parent is not None and len(parent) <= 36
            else UNSET
        ),
    )
