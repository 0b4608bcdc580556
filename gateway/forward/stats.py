"""What each forwarder reports for the status line and /metrics."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass
class ForwarderStats:
    """Counters and state of one forwarder (all counts since this process started)."""

    name: str
    kind: str  # "gbt32960" or "json"
    connected: bool = False  # GB/T: logged in to the upstream; JSON: no POST failing
    forwarded: int = 0  # GB/T: frames acknowledged; JSON: records in accepted batches
    forwarded_total: int = 0  # the same, over the cursor's whole life (forward_cursors)
    pending: int = 0  # archive rows read and not yet acknowledged
    oldest_pending_at: datetime | None = None  # received_at of the oldest of those
    caught_up: bool = False  # the last read found nothing more to forward
    reads: int = 0  # archive queries run
    rejected: int = 0  # GB/T: negative acks; JSON: batches refused with a 4xx
    skipped: int = 0  # frames that could not be converted or decoded (logged)
    failures: int = 0  # connection failures, timeouts, 5xx answers
    last_error: str | None = None
    last_error_at: datetime | None = None

    @property
    def lag_s(self) -> float:
        """Age of the oldest frame not yet acknowledged (0 when none is waiting)."""
        if self.oldest_pending_at is None:
            return 0.0
        return max(0.0, (datetime.now(UTC) - self.oldest_pending_at).total_seconds())

    def error(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = datetime.now(UTC)

    def line(self) -> str:
        """``name: up 1,234 fwd, lag 0.2 s`` for the gateway's status line."""
        state = "up" if self.connected else "DOWN"
        text = f"{self.name}: {state} {self.forwarded:,} fwd, lag {self.lag_s:.1f} s"
        if self.rejected:
            text += f", {self.rejected:,} rejected"
        return text


class RateLimitedLog:
    """Logs the first few messages of a kind at once, then one in every ``every`` (with the
    count), so a flood of identical problems cannot flood the log."""

    def __init__(self, logger: logging.Logger, first: int = 5, every_s: float = 60.0) -> None:
        self.logger = logger
        self.first = first
        self.every_s = every_s
        self._seen: dict[str, tuple[int, float]] = {}

    def __call__(self, level: int, key: str, msg: str, *args: object) -> None:
        count, last = self._seen.get(key, (0, 0.0))
        count += 1
        now = time.monotonic()
        if count <= self.first or now - last >= self.every_s:
            suffix = f" ({count} so far)" if count > self.first else ""
            self.logger.log(level, msg + suffix, *args)
            last = now
        self._seen[key] = (count, last)
