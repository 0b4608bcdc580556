"""Connection limits (per IP and in total) and the per-listener counters.

Both are plain objects owned by one listener in one event loop: no locks.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Final

REFUSED_TOTAL: Final = "max_connections"
REFUSED_PER_IP: Final = "max_connections_per_ip"


class ConnectionLimiter:
    """Counts open connections per peer IP and in total; refuses beyond the limits."""

    def __init__(self, max_total: int, max_per_ip: int) -> None:
        if max_total < 1 or max_per_ip < 1:
            raise ValueError("connection limits must be positive")
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self.open = 0
        self._per_ip: dict[str, int] = {}

    def acquire(self, ip: str) -> str | None:
        """Take a slot for a connection from ``ip``: None when granted, else the limit hit."""
        if self.open >= self.max_total:
            return REFUSED_TOTAL
        n = self._per_ip.get(ip, 0)
        if n >= self.max_per_ip:
            return REFUSED_PER_IP
        self._per_ip[ip] = n + 1
        self.open += 1
        return None

    def release(self, ip: str) -> None:
        """Give back the slot of a connection from ``ip`` that was granted one."""
        n = self._per_ip.get(ip, 0)
        if n <= 0:
            raise ValueError(f"no open connection from {ip} to release")
        if n == 1:
            del self._per_ip[ip]
        else:
            self._per_ip[ip] = n - 1
        self.open -= 1

    def from_ip(self, ip: str) -> int:
        """Open connections from ``ip``."""
        return self._per_ip.get(ip, 0)


#: Upper bounds (seconds) of the ack latency buckets: 0.5 ms to 30 s, roughly x2 apart.
LATENCY_BOUNDS: Final = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
)  # fmt: skip


@dataclass
class LatencyHistogram:
    """Fixed buckets (Prometheus style): count, sum, max and approximate quantiles."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.count += 1
        self.total_s += seconds
        if seconds > self.max_s:
            self.max_s = seconds

    def quantile(self, q: float) -> float:
        """The upper bound of the bucket holding the ``q`` quantile (``max_s`` beyond the last
        bound); 0.0 before any observation."""
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank and n:
                return LATENCY_BOUNDS[i] if i < len(LATENCY_BOUNDS) else self.max_s
        return self.max_s


@dataclass
class ListenerStats:
    """What one listener did: for the status line and /metrics."""

    protocol: str
    connections_open: int = 0
    connections_total: int = 0  # accepted
    refused: dict[str, int] = field(default_factory=dict)  # by the limit that was hit
    closed: dict[str, int] = field(default_factory=dict)  # by reason
    frames: int = 0  # complete frames received
    bad_frames: int = 0  # garbage, bad checksums, undecodable, cut off
    #: Where the listener counts them itself (OCPP; the TCP listeners' Ingestor has its own):
    calls: dict[str, int] = field(default_factory=dict)  # requests from devices, by action
    dead_letters: dict[str, int] = field(default_factory=dict)  # by reason
    acks_sent: int = 0  # replies sent after their frames were durable
    not_durable: int = 0  # connections closed because a completion failed (no ack sent)
    ack_latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())

    def summary(self) -> str:
        """One short line for the status display."""
        lat = self.ack_latency
        return (
            f"{self.protocol} {self.connections_open:,} conns "
            f"({self.refused_total:,} refused) {self.frames:,} frames "
            f"{self.bad_frames:,} bad {self.acks_sent:,} acks "
            f"p99 {lat.quantile(0.99) * 1000:.0f} ms"
        )
