"""A bounded cache whose entries go stale after a fixed time, kept in age order (the oldest
is dropped first). The registry and the OCPP ID-token list read the database through it; a
stale entry is still handed out (flagged) so callers can answer from it while the database is
away."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Cached(NamedTuple, Generic[V]):
    """A cached value and whether it is still within its time to live."""

    value: V
    fresh: bool


class TtlCache(Generic[K, V]):
    """At most ``max_entries`` values, each fresh for ``ttl_s`` seconds of ``clock``."""

    def __init__(
        self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}

    def lookup(self, key: K) -> Cached[V] | None:
        """The entry for ``key`` (fresh or stale), or None when there is none."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        return Cached(entry[1], entry[0] > self._clock())

    def put(self, key: K, value: V) -> None:
        """Store ``value``, fresh from now; drops the oldest entries beyond the bound."""
        entries = self._entries
        entries.pop(key, None)  # re-inserted last: insertion order is age order
        entries[key] = (self._clock() + self._ttl, value)
        while len(entries) > self._max:
            del entries[next(iter(entries))]

    def discard(self, key: K) -> None:
        """Forget one entry."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
