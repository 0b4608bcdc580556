"""Per-token rate limits: a token bucket per API token, in this process.

Each token has a bucket of ``burst`` requests refilled at ``rate_per_s``; a request takes one.
An empty bucket refuses the request and says when the next one will be allowed (HTTP 429 with
``Retry-After``). With ``--workers N`` every worker process keeps its own buckets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    rate: float
    burst: int


class RateLimiter:
    """Token buckets by key (the API token id). ``max_keys`` bounds the memory: beyond it the
    full (idle) buckets are dropped, then the oldest."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self.refused = 0

    def take(self, key: str, rate_per_s: float | None = None, burst: int | None = None) -> float:
        """Take one request from ``key``'s bucket: 0.0 when allowed, else the seconds until
        one will be (nothing is taken then). ``rate_per_s`` / ``burst`` override the
        defaults for this key."""
        rate = rate_per_s or self.rate_per_s
        size = burst or self.burst
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate or bucket.burst != size:
            if bucket is None and len(self._buckets) >= self._max_keys:
                self._trim(now)
            bucket = self._buckets[key] = _Bucket(float(size), now, rate, size)
        else:
            bucket.tokens = min(float(size), bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        self.refused += 1
        return (1.0 - bucket.tokens) / rate

    def _trim(self, now: float) -> None:
        for key, b in list(self._buckets.items()):
            if b.tokens + (now - b.at) * b.rate >= b.burst:
                del self._buckets[key]
        while len(self._buckets) >= self._max_keys:
            del self._buckets[next(iter(self._buckets))]


def retry_after(wait_s: float) -> str:
    """The ``Retry-After`` value (whole seconds, at least 1) for a wait."""
    return str(max(1, math.ceil(wait_s)))
