"""The device registry as the listeners see it: vehicles by VIN (GB/T 32960), JT/T 808
terminals by phone and OCPP chargers by identity, read through a bounded TTL cache (known and
unknown devices alike); JT/T 808 authentication codes and OCPP passwords are stored as hashes,
never the secret itself (tables of ``gateway/store/migrations/0001_base.sql``, 0008).

While the database is away a lookup answers from the cache, even an expired entry; with no entry
at all it answers ``Device(known=False, verified=False)`` so that sessions can go on (flagged)
while the pipeline spools. Writes (registration) raise: a code that was not stored must not be
handed out.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg
import msgspec

from gateway.pipeline import is_outage
from gateway.ttl_cache import TtlCache

VEHICLE: Final = "vehicle"
TERMINAL: Final = "terminal"
CHARGER: Final = "charger"
_HASH_PREFIX: Final = "sha256:"


class Device(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """What the registry says about one device.

    ``known``: a registry row exists (for vehicles: not decommissioned). ``verified``: False
    when the registry could not be asked (database away, nothing cached).
    """

    device_id: str
    known: bool
    verified: bool = True
    operator_id: str | None = None
    vin: str | None = None
    auth_code_hash: str | None = None  # JT/T 808 auth code; OCPP Basic-auth password
    station_id: str | None = None  # chargers
    security_profile: int | None = None  # chargers: None = the listener's default


class Registration(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """A JT/T 808 registration (0x0100) to store, with the code issued for it."""

    phone: str
    version: int
    auth_code: str
    maker: str
    model: str
    terminal_id: str
    plate_color: int
    plate: str
    auto: bool  # the terminal was not in the registry (unknown_devices = "accept")


def hash_auth_code(code: str) -> str:
    """The stored form of an authentication code. The codes are random (64 bits and more), so a
    fast unsalted hash is enough: it only keeps the code itself out of the database."""
    return _HASH_PREFIX + hashlib.sha256(code.encode("utf-8", "surrogateescape")).hexdigest()


def hash_password(password: bytes) -> str:
    """The stored form of an OCPP Basic-auth password (``chargers.auth_hash``): the raw bytes
    hashed, so binary AuthorizationKeys (16 to 20 random bytes) work like text ones."""
    return _HASH_PREFIX + hashlib.sha256(password).hexdigest()


def check_password(password: bytes, stored: str | None) -> bool:
    """True when ``password`` matches the stored hash (constant-time comparison)."""
    if not stored:
        return False
    return hmac.compare_digest(hash_password(password), stored)


def check_auth_code(code: str, stored: str | None) -> bool:
    """True when ``code`` matches the stored hash (constant-time comparison)."""
    if not stored:
        return False
    return hmac.compare_digest(hash_auth_code(code), stored)


@dataclass
class RegistryStats:
    hits: int = 0
    misses: int = 0
    unavailable: int = 0  # lookups answered without the database


_VEHICLE_SQL: Final = """
SELECT operator_id FROM vehicles
WHERE vin = $1 AND (decommissioned_at IS NULL OR decommissioned_at > now())
"""
_TERMINAL_SQL: Final = "SELECT operator_id, vin, auth_code_hash FROM terminals WHERE phone = $1"
_CHARGER_SQL: Final = """
SELECT operator_id, station_id, auth_hash, security_profile FROM chargers WHERE charger_id = $1
"""
_REGISTER_SQL: Final = """
INSERT INTO terminals AS t (phone, protocol_version, manufacturer_id, terminal_model,
    terminal_id, plate, plate_color, vin, auth_code_hash, registered_at, attributes)
VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT vin FROM vehicles WHERE vin = $8), $9, $10,
    CASE WHEN $11 THEN '{"auto_registered": true}'::jsonb END)
ON CONFLICT (phone) DO UPDATE SET
    protocol_version = EXCLUDED.protocol_version,
    manufacturer_id = EXCLUDED.manufacturer_id,
    terminal_model = EXCLUDED.terminal_model,
    terminal_id = EXCLUDED.terminal_id,
    plate = EXCLUDED.plate,
    plate_color = EXCLUDED.plate_color,
    vin = COALESCE(EXCLUDED.vin, t.vin),
    auth_code_hash = EXCLUDED.auth_code_hash,
    registered_at = EXCLUDED.registered_at,
    updated_at = now()
RETURNING operator_id, vin
"""
_AUTH_SQL: Final = "UPDATE terminals SET last_auth_at = $2, updated_at = now() WHERE phone = $1"


class Registry:
    """Cached registry access over an asyncpg pool (see the module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl_s: float = 60.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._cache: TtlCache[tuple[str, str], Device] = TtlCache(ttl_s, max_entries, clock)
        self.stats = RegistryStats()

    async def vehicle(self, vin: str) -> Device:
        """The vehicle with this VIN (``known=False`` when absent or decommissioned)."""
        return await self._lookup(VEHICLE, vin)

    async def terminal(self, phone: str) -> Device:
        """The JT/T 808 terminal with this phone number, with its auth code hash."""
        return await self._lookup(TERMINAL, phone)

    async def charger(self, charger_id: str) -> Device:
        """The charger (OCPP charge point identity) with its password hash and profile."""
        return await self._lookup(CHARGER, charger_id)

    async def register_terminal(self, reg: Registration, at: datetime) -> Device:
        """Store a registration and the hash of its new auth code (insert or update)."""
        vin = reg.plate if reg.plate_color == 0 else None
        code_hash = hash_auth_code(reg.auth_code)
        row = await self._pool.fetchrow(
            _REGISTER_SQL,
            reg.phone,
            reg.version,
            reg.maker,
            reg.model,
            reg.terminal_id,
            reg.plate,
            reg.plate_color,
            vin,
            code_hash,
            at,
            reg.auto,
        )
        device = Device(
            device_id=reg.phone,
            known=True,
            operator_id=row["operator_id"] if row else None,
            vin=row["vin"] if row else None,
            auth_code_hash=code_hash,
        )
        self._cache.put((TERMINAL, reg.phone), device)
        return device

    async def record_auth(self, phone: str, at: datetime) -> None:
        """Note a successful authentication (``terminals.last_auth_at``)."""
        await self._pool.execute(_AUTH_SQL, phone, at)

    def invalidate(self, kind: str, key: str) -> None:
        """Forget a cached entry (after an operator changed the registry)."""
        self._cache.discard((kind, key))

    async def _lookup(self, kind: str, key: str) -> Device:
        entry = self._cache.lookup((kind, key))
        if entry is not None and entry.fresh:
            self.stats.hits += 1
            return entry.value
        self.stats.misses += 1
        try:
            device = await self._fetch(kind, key)
        except Exception as exc:
            if not is_outage(exc):
                raise
            self.stats.unavailable += 1
            if entry is not None:
                return entry.value
            return Device(device_id=key, known=False, verified=False)
        self._cache.put((kind, key), device)
        return device

    async def _fetch(self, kind: str, key: str) -> Device:
        if kind == VEHICLE:
            row: Any = await self._pool.fetchrow(_VEHICLE_SQL, key)
            if row is None:
                return Device(device_id=key, known=False)
            return Device(device_id=key, known=True, operator_id=row["operator_id"], vin=key)
        if kind == CHARGER:
            row = await self._pool.fetchrow(_CHARGER_SQL, key)
            if row is None:
                return Device(device_id=key, known=False)
            return Device(
                device_id=key,
                known=True,
                operator_id=row["operator_id"],
                station_id=row["station_id"],
                auth_code_hash=row["auth_hash"],
                security_profile=row["security_profile"],
            )
        row = await self._pool.fetchrow(_TERMINAL_SQL, key)
        if row is None:
            return Device(device_id=key, known=False)
        return Device(
            device_id=key,
            known=True,
            operator_id=row["operator_id"],
            vin=row["vin"],
            auth_code_hash=row["auth_code_hash"],
        )
