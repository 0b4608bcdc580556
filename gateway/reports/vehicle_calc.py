"""The vehicle report's pure part: from one vehicle's per-day frame summaries and its login /
logout events to :class:`VehicleDay` rows (online time, sessions, gaps, level-3 alarm stretches,
expected frames, compliance). The SQL side (:mod:`.vehicle_sql`) makes the summaries, from the
raw rows or the rollup; the rules are in docs/reports.md, "Vehicles"."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal, TypeVar

from gateway.reports.intervals import (
    Day,
    Span,
    clip,
    covering,
    intersect,
    overlap_s,
    pct,
    seconds,
    union,
)
from gateway.reports.model import AlarmStretch, Gap, SessionSpan, VehicleDay

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Silence:
    """Two consecutive frames further apart than two reporting periods.

    ``start`` is the earlier frame (None: there is no earlier frame at all), ``end`` the later
    one, or the end of the report range for the silence after the last frame (``open_end``).
    ``alarm``: the earlier frame carried a level-3 alarm.
    """

    start: datetime | None
    end: datetime
    alarm: bool = False
    open_end: bool = False


@dataclass(slots=True)
class DaySummary:
    """What the SQL pass gives for one vehicle and local day (see :mod:`.vehicle_sql`).

    Intervals are between consecutive frames and belong to the day of the later frame;
    ``intervals*`` count those of at most two reporting periods (``alarm_*``: after a level-3
    frame), longer ones are the ``silences``.
    """

    day: date
    frames: int = 0
    reissued: int = 0
    alarm_frames: dict[str, int] = field(default_factory=dict)
    first_time: datetime | None = None
    last_time: datetime | None = None
    ends_in_alarm: bool = False
    intervals: int = 0
    intervals_late: int = 0
    alarm_intervals: int = 0
    alarm_late: int = 0
    silences: list[Silence] = field(default_factory=list)
    alarm_starts: list[datetime] = field(default_factory=list)
    alarm_ends: list[datetime] = field(default_factory=list)
    odometer_min_km: float | None = None
    odometer_max_km: float | None = None
    soc_min_pct: int | None = None
    soc_max_pct: int | None = None
    speed_max_kmh: float | None = None
    energy_out_wh: float = 0.0
    energy_in_wh: float = 0.0
    track_km: float = 0.0
    alarm_flags: dict[str, int] = field(default_factory=dict)
    source: Literal["rollup", "raw"] = "raw"


@dataclass(frozen=True, slots=True)
class VehicleInfo:
    """A vehicle as the report sees it: registry fields, its zone and reporting period."""

    vin: str
    tz: str
    interval_s: float
    operator_id: str | None = None
    fleet_id: str | None = None
    plate: str | None = None


@dataclass(frozen=True, slots=True)
class Rules:
    """The judgement parameters (from ``[reports]``)."""

    alarm_interval_s: float = 1.0
    tolerance: float = 0.1
    gap_threshold_s: float = 60.0
    offline_after_s: float = 600.0
    min_completeness_pct: float = 95.0


def _silence_at(silences: Sequence[Silence], t: datetime) -> Silence | None:
    """The silence containing ``t`` (start < t <= end; a None start is minus infinity)."""
    for s in silences:
        if (s.start is None or s.start < t) and t <= s.end:
            return s
    return None


def build_sessions(
    events: Sequence[tuple[datetime, str]],
    silences: Sequence[Silence],
    range_end: datetime,
    interval_s: float,
) -> list[SessionSpan]:
    """Login sessions from time-ordered ``(time, "login" | "logout")`` events.

    A session runs from a login to the next logout. Without one it runs to the next login
    (``relogin``) or to ``range_end`` (``open``), unless the terminal had gone silent (more than
    two reporting periods without a frame) before that: then it ends one period after its last
    frame (``silence``), or at the login when it sent no frame at all. A logout without a
    login is ignored.
    """
    out: list[SessionSpan] = []
    step = timedelta(seconds=interval_s)

    def close(start: datetime, t: datetime, how: Literal["relogin", "open"]) -> SessionSpan:
        end = t
        ended_by: Literal["relogin", "open", "silence"] = how
        s = _silence_at(silences, t)
        if s is not None:
            last = s.start
            end = start if last is None or last < start else min(t, last + step)
            if end < t:
                ended_by = "silence"
        end = max(end, start)
        return SessionSpan(
            start=start, end=end, seconds=(end - start).total_seconds(), ended_by=ended_by
        )

    opened: datetime | None = None
    for t, event in events:
        if event == "login":
            if opened is not None:
                out.append(close(opened, t, "relogin"))
            opened = t
        elif event == "logout" and opened is not None:
            out.append(
                SessionSpan(
                    start=opened, end=t, seconds=(t - opened).total_seconds(), ended_by="logout"
                )
            )
            opened = None
    if opened is not None:
        out.append(close(opened, max(range_end, opened), "open"))
    return out


def activity_runs(
    silences: Sequence[Silence],
    first_frame: datetime,
    last_frame: datetime,
    range_start: datetime,
    interval_s: float,
    offline_after_s: float,
) -> list[Span]:
    """Frames as online time: runs of frames split where no frame came for more than
    ``offline_after_s``; each run lasts to one period after its last frame. A run reaching
    back before ``range_start`` (the frame before the range was close) starts there."""
    step = timedelta(seconds=interval_s)
    limit = timedelta(seconds=offline_after_s)
    before = next((s for s in silences if s.end == first_frame), None)
    if before is None:  # the frame before the range was at most two periods earlier
        run_start = min(range_start, first_frame)
    elif before.start is not None and first_frame - before.start <= limit:
        run_start = before.start
    else:
        run_start = first_frame
    runs: list[Span] = []
    for s in silences:
        if s.open_end or s.start is None or s.end <= first_frame or s.end > last_frame:
            continue
        if s.end - s.start > limit:
            runs.append((run_start, s.start + step))
            run_start = s.end
    runs.append((run_start, last_frame + step))
    return runs


def alarm_stretches(
    starts: Sequence[datetime],
    ends: Sequence[datetime],
    first_frame: datetime | None,
    last_frame: datetime | None,
    ends_in_alarm: bool,
) -> list[Span]:
    """Level-3 stretches ``(first level-3 frame, last level-3 frame)`` from their edges:
    ``starts`` (a level-3 frame after one that was not) and ``ends`` (the last level-3 frame
    before one that is not). A stretch open at the range start begins at its first frame, one
    still open at the end ends at the last frame."""
    if first_frame is None or last_frame is None:
        return []
    marks = sorted([(t, 0) for t in starts] + [(t, 1) for t in ends])
    cur: datetime | None = None
    if (not marks and ends_in_alarm) or (marks and marks[0][1] == 1):
        cur = first_frame
    out: list[Span] = []
    for t, kind in marks:
        if kind == 0:
            if cur is None:
                cur = t
        elif cur is not None:
            if t >= cur:
                out.append((cur, t))
            cur = None
    if cur is not None and ends_in_alarm:
        out.append((cur, last_frame))
    return out


def by_day(
    items: Sequence[T], days: Sequence[Day], span: Callable[[T], tuple[datetime, datetime]]
) -> list[list[T]]:
    """``items`` (sorted by start) per day of ``days``: each in every day its span
    ``[start, end]`` touches (a point ``start == end`` in the day holding it)."""
    out: list[list[T]] = [[] for _ in days]
    if not items:
        return out
    starts = [d.start for d in days]
    for item in items:
        lo, hi = span(item)
        i = max(bisect.bisect_right(starts, lo) - 1, 0)
        while i < len(days) and days[i].start <= hi:
            if lo < days[i].end and (hi > days[i].start or lo >= days[i].start):
                out[i].append(item)
            i += 1
    return out


def assemble(
    vehicle: VehicleInfo,
    days: Sequence[Day],
    summaries: dict[date, DaySummary],
    events: Sequence[tuple[datetime, str]],
    rules: Rules,
    now: datetime,
) -> list[VehicleDay]:
    """The rows of one vehicle for ``days`` (consecutive local days)."""
    iv = vehicle.interval_s
    r0 = days[0].start
    r1 = max(min(days[-1].end, now), r0)
    ordered = [summaries[d.day] for d in days if d.day in summaries]
    silences = [s for d in ordered for s in d.silences]
    with_frames = [d for d in ordered if d.frames]
    first_frame = min((d.first_time for d in with_frames if d.first_time), default=None)
    last_frame = max((d.last_time for d in with_frames if d.last_time), default=None)
    last_alarm = bool(with_frames) and with_frames[-1].ends_in_alarm
    if last_frame is None:
        silences.append(Silence(None, r1, open_end=True))
    elif (r1 - last_frame).total_seconds() > 2 * iv:
        silences.append(Silence(last_frame, r1, alarm=last_alarm, open_end=True))

    sessions = build_sessions(events, silences, r1, iv)
    spans: list[Span] = [(s.start, s.end) for s in sessions]
    if first_frame is not None and last_frame is not None:
        spans += activity_runs(silences, first_frame, last_frame, r0, iv, rules.offline_after_s)
    online = clip(union(spans), r0, r1)

    gap_threshold = max(rules.gap_threshold_s, 2 * iv)
    starts = [d.start for d in days]
    gaps: list[Gap] = []
    extra: dict[date, list[tuple[bool, bool]]] = {}  # day -> silences that were intervals
    for s in silences:
        lo = max(s.start, r0) if s.start is not None else r0
        for a, b in clip(online, lo, min(s.end, r1)):
            length = (b - a).total_seconds()
            if length > gap_threshold:
                gaps.append(Gap(start=a, end=b, seconds=length, during_alarm=s.alarm))
        if s.open_end or s.start is None:
            continue
        i = covering(online, max(s.start, r0))
        if i is not None and i == covering(online, s.end):
            limit = (rules.alarm_interval_s if s.alarm else iv) * (1 + rules.tolerance)
            is_late = (s.end - s.start).total_seconds() > limit
            i_day = bisect.bisect_right(starts, s.end) - 1
            if 0 <= i_day < len(days) and s.end < days[i_day].end:
                extra.setdefault(days[i_day].day, []).append((s.alarm, is_late))

    stretches = alarm_stretches(
        [t for d in ordered for t in d.alarm_starts],
        [t for d in ordered for t in d.alarm_ends],
        first_frame,
        last_frame,
        last_alarm,
    )
    step = timedelta(seconds=rules.alarm_interval_s)
    alarm_online = intersect(union((a, b + step) for a, b in stretches), online)

    # Everything bucketed per day in one sweep each (30-day reports of 1,000 vehicles).
    online_by_day = by_day(online, days, lambda x: x)
    alarm_by_day = by_day(alarm_online, days, lambda x: x)
    gaps_by_day = by_day(gaps, days, lambda g: (g.start, g.end))
    sessions_by_day = by_day(sessions, days, lambda s: (s.start, s.end))
    stretches_by_day = by_day(stretches, days, lambda x: x)
    events_by_day = by_day(events, days, lambda e: (e[0], e[0]))
    rows: list[VehicleDay] = []
    for n, d in enumerate(days):
        sm = summaries.get(d.day) or DaySummary(day=d.day, source="raw")
        hi = max(min(d.end, r1), d.start)
        online_s = seconds(clip(online_by_day[n], d.start, hi))
        alarm_s = seconds(clip(alarm_by_day[n], d.start, hi))
        expected = round((online_s - alarm_s) / iv + alarm_s / rules.alarm_interval_s)
        intervals, late = sm.intervals, sm.intervals_late
        a_intervals, a_late = sm.alarm_intervals, sm.alarm_late
        for alarm, is_late in extra.get(d.day, ()):
            if alarm:
                a_intervals += 1
                a_late += is_late
            else:
                intervals += 1
                late += is_late
        day_gaps = gaps_by_day[n]
        gap_s = sum((overlap_s((g.start, g.end), d.start, d.end) for g in day_gaps), 0.0)
        day_sessions = sessions_by_day[n]
        day_events = events_by_day[n]
        completeness = pct(sm.frames, expected)
        compliant: bool | None = None
        if online_s > 0:
            compliant = (
                completeness is not None
                and completeness >= rules.min_completeness_pct
                and not day_gaps
                and a_late == 0
            )
        distance = None
        if sm.odometer_min_km is not None and sm.odometer_max_km is not None:
            distance = round(sm.odometer_max_km - sm.odometer_min_km, 3)
        rows.append(
            VehicleDay(
                vin=vehicle.vin,
                day=d.day,
                tz=vehicle.tz,
                operator_id=vehicle.operator_id,
                fleet_id=vehicle.fleet_id,
                plate=vehicle.plate,
                interval_s=iv,
                frames=sm.frames,
                reissued=sm.reissued,
                expected_frames=expected,
                completeness_pct=completeness,
                online_s=round(online_s, 3),
                intervals=intervals,
                intervals_late=late,
                interval_compliance_pct=pct(intervals - late, intervals),
                alarm3_s=round(alarm_s, 3),
                alarm3_intervals=a_intervals,
                alarm3_intervals_late=a_late,
                alarm3_compliance_pct=pct(a_intervals - a_late, a_intervals),
                gap_count=len(day_gaps),
                gap_s=round(gap_s, 3),
                longest_gap_s=max((g.seconds for g in day_gaps), default=0.0),
                gaps=day_gaps,
                logins=sum(1 for _, e in day_events if e == "login"),
                logouts=sum(1 for _, e in day_events if e == "logout"),
                sessions=day_sessions,
                alarm_frames=dict(sm.alarm_frames),
                alarm_flags=dict(sm.alarm_flags),
                alarm3_stretches=[
                    AlarmStretch(start=a, end=b, seconds=(b - a).total_seconds())
                    for a, b in stretches_by_day[n]
                ],
                distance_km=distance,
                track_km=round(sm.track_km, 3),
                energy_out_kwh=round(sm.energy_out_wh / 1000.0, 3),
                energy_in_kwh=round(sm.energy_in_wh / 1000.0, 3),
                soc_min_pct=sm.soc_min_pct,
                soc_max_pct=sm.soc_max_pct,
                speed_max_kmh=sm.speed_max_kmh,
                first_frame=sm.first_time,
                last_frame=sm.last_time,
                compliant=compliant,
                source=sm.source,
            )
        )
    return rows
