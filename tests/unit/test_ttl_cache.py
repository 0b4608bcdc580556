"""The bounded TTL cache behind the registry and the OCPP ID-token list."""

from __future__ import annotations

from gateway.ttl_cache import Cached, TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_go_stale_after_their_time_but_stay_readable() -> None:
    clock = Clock()
    cache: TtlCache[str, int | None] = TtlCache(10.0, 100, clock)
    assert cache.lookup("a") is None
    cache.put("a", 1)
    cache.put("none", None)  # "not in the database" is cached too
    assert cache.lookup("a") == Cached(1, True)
    assert cache.lookup("none") == Cached(None, True)
    clock.now = 9.999
    assert cache.lookup("a") == Cached(1, True)
    clock.now = 10.0
    assert cache.lookup("a") == Cached(1, False)
    cache.put("a", 2)  # refreshed from now
    assert cache.lookup("a") == Cached(2, True)


def test_the_oldest_entries_are_dropped_beyond_the_bound() -> None:
    clock = Clock()
    cache: TtlCache[int, int] = TtlCache(10.0, 3, clock)
    for key in range(3):
        cache.put(key, key)
    cache.put(0, 0)  # refreshed: now the youngest
    cache.put(3, 3)
    assert len(cache) == 3
    assert cache.lookup(1) is None
    assert [cache.lookup(k) is not None for k in (0, 2, 3)] == [True, True, True]
    cache.discard(2)
    assert cache.lookup(2) is None and len(cache) == 2
    cache.clear()
    assert len(cache) == 0
