"""Timing helpers of the forwarders: exponential backoff, a frames-per-second limit, and a sleep
that a shutdown interrupts."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable


class Backoff:
    """Delays that double from ``low`` up to ``high``, with jitter over their upper half (so
    gateways that lost an upstream together do not come back in step); :meth:`reset` after a
    success."""

    def __init__(self, low: float, high: float, *, rng: random.Random | None = None) -> None:
        self.low, self.high = low, high
        self.attempts = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        delay = min(self.high, self.low * 2.0 ** min(self.attempts, 60))
        self.attempts += 1
        return delay * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempts = 0


class RateLimiter:
    """At most ``rate`` events per second on average, bursts of up to ``burst`` events."""

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()

    def delay(self) -> float:
        """Take one token; the seconds to wait before the event may happen (0: now)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def acquire(self) -> None:
        wait = self.delay()
        if wait > 0:
            await asyncio.sleep(wait)


async def sleep_unless(event: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` or until ``event`` is set; True when the event is set."""
    if event.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    return event.is_set()
