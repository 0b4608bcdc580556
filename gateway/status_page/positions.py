"""The vehicles' last positions for the status page's map, from the ``positions`` hypertable.

One asyncpg connection of its own, opened on the first request (never at start: a gateway
whose database is away still serves its page), with short timeouts. Answers are cached for
``cache_s`` and computed once for concurrent requests. When the database cannot be reached
or does not answer in time the answer says ``unavailable`` with the reason (and the devices of
the last good answer, marked by its time); a new connection is tried ``retry_s`` later at the
earliest, so a page polled every few seconds never piles up connection attempts.

The query is a loose index scan over ``positions_key`` (device_id, protocol, time): one index
probe per device for the next device, one for its newest fix, both limited to the last
``hours``. A plain ``DISTINCT ON`` reads every row of the window instead (10x slower with 3000
devices reporting every 10 s over a day).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger("silkgate.status")

LAST_POSITIONS_SQL: Final = """
WITH RECURSIVE devices AS (
    (SELECT device_id, protocol FROM positions
      WHERE time > $1 ORDER BY device_id, protocol LIMIT 1)
    UNION ALL
    SELECT n.device_id, n.protocol
      FROM devices d CROSS JOIN LATERAL (
        SELECT p.device_id, p.protocol FROM positions p
         WHERE (p.device_id, p.protocol) > (d.device_id, d.protocol) AND p.time > $1
         ORDER BY p.device_id, p.protocol LIMIT 1) n
)
SELECT d.device_id, d.protocol, f.time, f.lat, f.lon, f.speed_kmh, f.heading_deg
  FROM devices d
 CROSS JOIN LATERAL (
    SELECT p.time, p.lat, p.lon, p.speed_kmh, p.heading_deg FROM positions p
     WHERE p.device_id = d.device_id AND p.protocol = d.protocol AND p.time > $1
       AND p.lat IS NOT NULL AND p.lon IS NOT NULL AND p.fix_valid
     ORDER BY p.time DESC LIMIT 1) f
 LIMIT $2
"""

State = Literal["ok", "unavailable", "starting"]


@dataclass
class MapAnswer:
    """What the map shows: ``state``, the reason when unavailable, the devices (of the last
    good answer when unavailable) and when they were read (Unix seconds; 0: never)."""

    state: State
    devices: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    error: str = ""
    read_at: float = 0.0

    def to_json(self, hours: float, max_devices: int) -> dict[str, Any]:
        return {
            "state": self.state,
            "error": self.error,
            "hours": hours,
            "max_devices": max_devices,
            "read_at": self.read_at,
            "truncated": self.truncated,
            "devices": self.devices,
        }


def _device(row: Any) -> dict[str, Any]:
    t: datetime = row["time"]
    speed, heading = row["speed_kmh"], row["heading_deg"]
    return {
        "id": row["device_id"],
        "protocol": row["protocol"],
        "time": round(t.timestamp(), 3),
        "lat": round(float(row["lat"]), 6),
        "lon": round(float(row["lon"]), 6),
        "speed_kmh": None if speed is None else round(float(speed), 1),
        "heading_deg": heading,
    }


class LastPositions:
    """The newest valid fix of every device seen in the last ``hours`` (at most
    ``max_devices``), cached for ``cache_s`` (see the module docstring)."""

    def __init__(
        self,
        dsn: str,
        *,
        hours: float = 24.0,
        max_devices: int = 5000,
        cache_s: float = 2.0,
        connect_timeout_s: float = 3.0,
        query_timeout_s: float = 5.0,
        retry_s: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.hours, self.max_devices, self.cache_s = hours, max_devices, cache_s
        self.connect_timeout_s, self.query_timeout_s = connect_timeout_s, query_timeout_s
        self.retry_s = retry_s
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._answer = MapAnswer("starting")
        self._answered = 0.0  # monotonic time of self._answer
        self._next_connect = 0.0  # monotonic: no connection attempt before this
        self._good: MapAnswer | None = None

    async def get(self) -> MapAnswer:
        """The cached answer when fresh, else a new one (one query for concurrent callers)."""
        if self._fresh():
            return self._answer
        async with self._lock:
            if not self._fresh():
                self._answer = await self._read()
                self._answered = time.monotonic()
            return self._answer

    def _fresh(self) -> bool:
        return self._answered > 0 and time.monotonic() - self._answered < self.cache_s

    def _unavailable(self, why: str) -> MapAnswer:
        good = self._good
        if good is None:
            return MapAnswer("unavailable", error=why)
        return MapAnswer("unavailable", good.devices, good.truncated, why, good.read_at)

    async def _read(self) -> MapAnswer:
        conn = self._conn
        if conn is None or conn.is_closed():
            if time.monotonic() < self._next_connect:
                return self._unavailable(self._answer.error or "database unavailable")
            try:
                conn = self._conn = await self._connect()
            except Exception as exc:  # any failure to connect is shown, never raised
                self._next_connect = time.monotonic() + self.retry_s
                return self._unavailable(_reason(exc, self.dsn))
        since = datetime.now(UTC) - timedelta(hours=self.hours)
        try:
            rows = await conn.fetch(
                LAST_POSITIONS_SQL, since, self.max_devices + 1, timeout=self.query_timeout_s
            )
        except Exception as exc:
            await self._drop()
            self._next_connect = time.monotonic() + self.retry_s
            return self._unavailable(_reason(exc, self.dsn))
        devices = [_device(r) for r in rows[: self.max_devices]]
        devices.sort(key=lambda d: (d["protocol"], d["id"]))
        self._good = MapAnswer("ok", devices, len(rows) > self.max_devices, "", time.time())
        return self._good

    async def _connect(self) -> asyncpg.Connection:
        import asyncpg  # on first use: importing this module stays light

        conn: asyncpg.Connection = await asyncpg.connect(
            self.dsn,
            timeout=self.connect_timeout_s,
            command_timeout=self.query_timeout_s,
            server_settings={"application_name": "silkgate-status", "TimeZone": "UTC"},
        )
        return conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 1.0)
            if not conn.is_closed():
                conn.terminate()

    async def close(self) -> None:
        """Close the connection (the answer cache stays)."""
        await self._drop()


def _reason(exc: BaseException, dsn: str) -> str:
    """A short reason for people, without the DSN's password (the page has no login)."""
    if isinstance(exc, TimeoutError):
        return "database did not answer in time"
    lines = str(exc).strip().splitlines()
    name = type(exc).__name__
    text = f"{name}: {lines[0]}"[:300] if lines else name
    with contextlib.suppress(ValueError):
        password = urlsplit(dsn).password
        if password:
            text = text.replace(password, "***")
    return text
