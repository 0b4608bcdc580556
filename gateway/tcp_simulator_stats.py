"""Counters and the ack-latency distribution of the TCP terminal simulator.

One :class:`TerminalStats` per protocol, shared by that protocol's terminals (asyncio is
single-threaded, so plain integer fields are enough). Latencies go into a log-bucketed
histogram: O(1) per sample, a few KiB however many frames are measured, percentiles within 2 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Final

_BASE: Final = 1.02  # bucket width: each bucket is 2 % wider than the previous one
_LOG_BASE: Final = math.log(_BASE)
_MIN_S: Final = 1e-6  # latencies under 1 us share bucket 0
_BUCKETS: Final = int(math.log(1000.0 / _MIN_S) / _LOG_BASE) + 2  # up to 1000 s


class LatencyHistogram:
    """Distribution of latencies (seconds in, milliseconds out)."""

    __slots__ = ("count", "counts", "max_s", "total_s")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.count = 0
        self.total_s = 0.0
        self.max_s = 0.0

    def add(self, seconds: float) -> None:
        if seconds > _MIN_S:
            i = min(int(math.log(seconds / _MIN_S) / _LOG_BASE) + 1, _BUCKETS - 1)
        else:
            i = 0
        self.counts[i] += 1
        self.count += 1
        self.total_s += seconds
        if seconds > self.max_s:
            self.max_s = seconds

    def merge(self, other: LatencyHistogram) -> None:
        for i, n in enumerate(other.counts):
            if n:
                self.counts[i] += n
        self.count += other.count
        self.total_s += other.total_s
        self.max_s = max(self.max_s, other.max_s)

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0 < q <= 1) in ms: the upper bound of its bucket; None if empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                upper = _MIN_S * _BASE**i
                return round(min(upper, self.max_s) * 1000, 3)
        return round(self.max_s * 1000, 3)  # not reached: the counts add up to count

    def summary(self) -> dict[str, float | int | None]:
        mean = self.total_s / self.count * 1000 if self.count else None
        return {
            "count": self.count,
            "p50": self.percentile(0.50),
            "p90": self.percentile(0.90),
            "p99": self.percentile(0.99),
            "max": round(self.max_s * 1000, 3) if self.count else None,
            "mean": None if mean is None else round(mean, 3),
        }


@dataclass(slots=True)
class TerminalStats:
    """What the terminals of one protocol did. Frame counts are data frames (reports).

    ``generated``: reports made by the truck model; ``sent``: data frames written to a socket,
    realtime and resent alike (a JT/T 808 blind-area batch counts its reports); ``resent``: of
    those, sent again as reissue (GB/T 0x03) or blind-area batch items (JT/T 808 0x0704);
    ``acked`` / ``rejected``: acknowledged with success / with an error result; ``unacked``:
    reports still waiting for an ack or still buffered when the counters were read at the end;
    ``dropped``: reports discarded because a terminal's buffer (``buffer_limit``) was full.
    """

    terminals: int = 0
    connected: int = 0  # connections open right now
    online: int = 0  # logged in / authenticated right now
    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    logins: int = 0  # GB/T 32960 vehicle logins and JT/T 808 authentications accepted
    login_failures: int = 0  # refused or unanswered logins, registrations, authentications
    registrations: int = 0  # JT/T 808 0x0100 answered with an auth code
    logouts: int = 0
    generated: int = 0
    sent: int = 0
    resent: int = 0
    acked: int = 0
    rejected: int = 0
    unacked: int = 0
    dropped: int = 0
    heartbeats: int = 0
    heartbeat_acks: int = 0
    time_syncs: int = 0
    commands: int = 0  # platform commands answered (including "not supported" answers)
    bytes_sent: int = 0
    bad_frames: int = 0  # bytes from the platform that were not a good frame
    errors: int = 0  # undecodable platform frames, unexpected acks, protocol violations
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def merge(self, other: TerminalStats) -> None:
        for f in fields(self):
            if f.name == "latency":
                self.latency.merge(other.latency)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "latency"
        }
        out["ack_latency_ms"] = self.latency.summary()
        return out


@dataclass(slots=True)
class FleetStats:
    """Counters per protocol; ``total`` adds them up."""

    gbt32960: TerminalStats = field(default_factory=TerminalStats)
    jt808: TerminalStats = field(default_factory=TerminalStats)
    elapsed_s: float = 0.0  # from start to now (or to the end of the stop)
    reporting_s: float = 0.0  # from the first login to now (or to the stop request)

    @property
    def total(self) -> TerminalStats:
        out = TerminalStats()
        out.merge(self.gbt32960)
        out.merge(self.jt808)
        return out

    def summary(self) -> dict[str, Any]:
        """The JSON-able summary: totals at the top, then one object per protocol."""
        total = self.total
        out = total.as_dict()
        span = self.reporting_s
        out["elapsed_s"] = round(self.elapsed_s, 3)
        out["reporting_s"] = round(span, 3)
        # rates over the reporting span (acks that came in while stopping count too)
        out["sent_per_s"] = round(total.sent / span, 1) if span else 0.0
        out["acked_per_s"] = round(total.acked / span, 1) if span else 0.0
        out["gbt32960"] = self.gbt32960.as_dict()
        out["jt808"] = self.jt808.as_dict()
        return out
