"""Helpers of every report: the range check and batching, local days as UTC instants, half-open
time intervals (union, intersection, clipping), time-zone checks, percentages and the
status-history accounting shared by the charger and swap reports."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.reports.config import ReportsConfig

T = TypeVar("T")

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called as a report's work units complete."""

Span = tuple[datetime, datetime]
"""A half-open interval ``[start, end)`` of UTC instants."""


class ReportError(ValueError):
    """A report was asked with bad arguments (range, time zone)."""


@cache
def zone(name: str) -> ZoneInfo:
    """The zone for an IANA name (a :class:`ReportError` when unknown)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(f"unknown time zone {name!r}") from None


def valid_zone(name: str | None, default: str) -> str:
    """``name`` when it is a known zone, else ``default`` (registry rows may hold anything)."""
    if name:
        try:
            zone(name)
            return name
        except ReportError:
            pass
    return default


@dataclass(frozen=True, slots=True)
class Day:
    """A local calendar day and its UTC bounds ``[start, end)`` (23 or 25 h across DST)."""

    day: date
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def local_days(start_day: date, end_day: date, tz: str) -> list[Day]:
    """Every day from ``start_day`` to ``end_day`` (both included) in zone ``tz``."""
    zi = zone(tz)
    out: list[Day] = []
    d = start_day
    lo = datetime.combine(d, time(), zi).astimezone(UTC)
    while d <= end_day:
        nxt = d + timedelta(days=1)
        hi = datetime.combine(nxt, time(), zi).astimezone(UTC)
        out.append(Day(d, lo, hi))
        d, lo = nxt, hi
    return out


def check_range(start_day: date, end_day: date, max_days: int) -> None:
    """A :class:`ReportError` unless ``start_day <= end_day`` within ``max_days`` days."""
    if end_day < start_day:
        raise ReportError(f"the range ends ({end_day}) before it starts ({start_day})")
    days = (end_day - start_day).days + 1
    if days > max_days:
        raise ReportError(f"the range covers {days} days; at most {max_days} (reports.max_days)")


def prepare(
    settings: ReportsConfig | None, start_day: date, end_day: date, now: datetime | None
) -> tuple[ReportsConfig, datetime]:
    """A report's settings (the defaults for None) and its ``now`` (the clock for None), once
    the range is checked against ``settings.max_days``."""
    settings = settings or ReportsConfig()
    check_range(start_day, end_day, settings.max_days)
    return settings, now or datetime.now(UTC)


def batched(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size`` (one SQL pass each)."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def union(spans: Iterable[Span]) -> list[Span]:
    """The sorted, disjoint union of ``spans`` (empty ones dropped; touching ones merged)."""
    out: list[Span] = []
    for lo, hi in sorted(s for s in spans if s[1] > s[0]):
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def intersect(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    """The intersection of two sorted disjoint span lists."""
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def clip(spans: Sequence[Span], lo: datetime, hi: datetime) -> list[Span]:
    """``spans`` (sorted, disjoint) cut to ``[lo, hi)``."""
    out: list[Span] = []
    if hi <= lo:
        return out
    i = max(bisect.bisect_right(spans, lo, key=_start) - 1, 0)
    for k in range(i, len(spans)):
        a, b = spans[k]
        if a >= hi:
            break
        if b > lo:
            out.append((max(a, lo), min(b, hi)))
    return out


def _start(span: Span) -> datetime:
    return span[0]


def seconds(spans: Iterable[Span]) -> float:
    """The total length of disjoint spans, in seconds."""
    return sum(((hi - lo).total_seconds() for lo, hi in spans), 0.0)


def overlap_s(a: Span, lo: datetime, hi: datetime) -> float:
    """Seconds of span ``a`` inside ``[lo, hi)``."""
    return max((min(a[1], hi) - max(a[0], lo)).total_seconds(), 0.0)


def covering(spans: Sequence[Span], t: datetime) -> int | None:
    """The index of the span of sorted disjoint ``spans`` containing ``t`` (ends included)."""
    i = bisect.bisect_right(spans, (t, datetime.max.replace(tzinfo=UTC))) - 1
    if i >= 0 and spans[i][0] <= t <= spans[i][1]:
        return i
    return None


def pct(part: float, whole: float) -> float | None:
    """``100 * part / whole`` rounded to 3 decimals; None when ``whole`` is 0."""
    if whole <= 0:
        return None
    return round(100.0 * part / whole, 3)


def state_seconds(
    history: Sequence[tuple[datetime, str]],
    lo: datetime,
    hi: datetime,
    *,
    overlay: Sequence[Span] = (),
    overlay_state: str = "Offline",
    unknown: str = "Unknown",
) -> dict[str, float]:
    """Seconds spent in each state within ``[lo, hi)``.

    ``history`` is a time-sorted list of ``(time, state)`` changes, the state holding until the
    next change; time before the first entry is ``unknown``. Spans of ``overlay`` (sorted,
    disjoint; e.g. while the charger was disconnected) count as ``overlay_state`` whatever the
    history says.
    """
    out: dict[str, float] = {}
    if hi <= lo:
        return out
    pieces: list[tuple[datetime, datetime, str]] = []
    cur_state, cur_from = unknown, lo
    first = max(bisect.bisect_right(history, lo, key=lambda h: h[0]) - 1, 0)
    for t, state in history[first:]:
        if t >= hi:
            break
        if t > cur_from:
            pieces.append((cur_from, t, cur_state))
            cur_from = t
        cur_state = state
    pieces.append((cur_from, hi, cur_state))
    over = clip(union(overlay), lo, hi)
    for a, b, state in pieces:
        span_s = (b - a).total_seconds()
        hidden = seconds(clip(over, a, b))
        if span_s - hidden > 0:
            out[state] = out.get(state, 0.0) + span_s - hidden
    if over:
        out[overlay_state] = out.get(overlay_state, 0.0) + seconds(over)
    return {k: round(v, 3) for k, v in out.items()}


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0-1) of ``values`` by linear interpolation; None when empty."""
    if not values:
        return None
    s = sorted(values)
    pos = q * (len(s) - 1)
    i = int(pos)
    if i + 1 >= len(s):
        return s[-1]
    return s[i] + (s[i + 1] - s[i]) * (pos - i)
