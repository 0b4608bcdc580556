"""A fixed-bucket histogram for the hot paths (one bucket increment per observation) and the
bucket bounds of the pipeline's batch size and commit latency. Plain attributes, no locks: each
histogram belongs to one event loop. Rendered for Prometheus by :mod:`gateway.metrics`."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Final

#: Rows per committed batch (``pipeline.batch_rows`` is 5000 by default).
BATCH_ROWS_BOUNDS: Final = (
    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 25000.0, 100000.0,
)  # fmt: skip

#: Seconds from the start of a batch's write to its commit: 1 ms to 30 s.
COMMIT_SECONDS_BOUNDS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class Histogram:
    """Counts per bucket (Prometheus semantics: bucket ``i`` holds the observations ``v`` with
    ``bounds[i-1] < v <= bounds[i]``; the last one, beyond the last bound, is ``+Inf``), the
    sum and the count of the observations."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("histogram bounds must be increasing and not empty")
        self.bounds: tuple[float, ...] = tuple(float(b) for b in bounds)
        self.counts: list[int] = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[int]:
        """Observations ``<=`` each bound, then the total (the ``+Inf`` bucket)."""
        out: list[int] = []
        seen = 0
        for n in self.counts:
            seen += n
            out.append(seen)
        return out
