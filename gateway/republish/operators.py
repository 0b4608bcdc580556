"""Which operator a record's device belongs to: the topic's operator level.

From the device registry (migration 0001): a vehicle by VIN (``vehicles``), a JT/T 808 terminal
by phone (``terminals.operator_id``, else its vehicle's), a charger by identity (``chargers``),
a swap station by id (``stations``). Answers, unknown devices included, are cached for
``ttl_s`` (``[registry] cache_ttl_s``), so a registry change shows in topics within that time.
Each batch costs at most one query per device kind, for the devices not cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from gateway import records as rec
from gateway.store.conntype import Conn
from gateway.ttl_cache import TtlCache

VEHICLE: Final = "vehicle"
TERMINAL: Final = "terminal"
CHARGER: Final = "charger"
STATION: Final = "station"

Key = tuple[str, str]  # (device kind, id)

_SQL: Final = {
    VEHICLE: "SELECT vin AS id, operator_id FROM vehicles WHERE vin = ANY($1::text[])",
    TERMINAL: "SELECT t.phone AS id, coalesce(t.operator_id, v.operator_id) AS operator_id "
    "FROM terminals t LEFT JOIN vehicles v ON v.vin = t.vin WHERE t.phone = ANY($1::text[])",
    CHARGER: "SELECT charger_id AS id, operator_id FROM chargers "
    "WHERE charger_id = ANY($1::text[])",
    STATION: "SELECT station_id AS id, operator_id FROM stations "
    "WHERE station_id = ANY($1::text[])",
}

_VEHICLE_EVENTS = (rec.Position, rec.Alarm, rec.SessionEvent)
_CHARGER_RECORDS = (rec.ChargerStatus, rec.MeterValue, rec.ChargingSession, rec.ChargerEvent)


def registry_key(record: Any) -> Key:
    """Where the registry keeps ``record``'s device."""
    kind = type(record)
    if kind is rec.VehicleRealtime:
        return VEHICLE, record.vin
    if kind in _VEHICLE_EVENTS:
        return (TERMINAL if record.protocol == "jt808" else VEHICLE), record.device_id
    if kind in _CHARGER_RECORDS:
        return CHARGER, record.charger_id
    return STATION, record.station_id


class Operators:
    """Cached device -> operator lookups (None: the registry does not know the device)."""

    def __init__(
        self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._cache: TtlCache[Key, str | None] = TtlCache(ttl_s, max_entries, clock)
        self.queries = 0

    def cached(self, keys: Iterable[Key]) -> dict[Key, str | None] | None:
        """The operator of every key from the cache alone; None when one is missing or stale."""
        out: dict[Key, str | None] = {}
        for key in set(keys):
            cached = self._cache.lookup(key)
            if cached is None or not cached.fresh:
                return None
            out[key] = cached.value
        return out

    async def resolve(self, conn: Conn, keys: Iterable[Key]) -> dict[Key, str | None]:
        """The operator of every key; database errors propagate (nothing is guessed)."""
        out: dict[Key, str | None] = {}
        missing: dict[str, list[str]] = {}
        for key in set(keys):
            cached = self._cache.lookup(key)
            if cached is not None and cached.fresh:
                out[key] = cached.value
            else:
                missing.setdefault(key[0], []).append(key[1])
        for kind, ids in missing.items():
            rows = await conn.fetch(_SQL[kind], ids)
            self.queries += 1
            found = {r["id"]: r["operator_id"] for r in rows}
            for device in ids:
                operator = found.get(device)
                self._cache.put((kind, device), operator)
                out[kind, device] = operator
        return out
