"""The reports' pure computations: local days, span arithmetic, status accounting, and the
vehicle rules (sessions, online time, gaps, level-3 stretches, expected frames)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.reports.intervals import (
    Day,
    ReportError,
    check_range,
    clip,
    covering,
    intersect,
    local_days,
    pct,
    quantile,
    seconds,
    state_seconds,
    union,
    valid_zone,
)
from gateway.reports.model import SessionSpan
from gateway.reports.vehicle_calc import (
    DaySummary,
    Rules,
    Silence,
    VehicleInfo,
    activity_runs,
    alarm_stretches,
    assemble,
    build_sessions,
    by_day,
)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- local days -------------------------------------------------------------------------------


def test_local_days_in_whole_and_half_hour_zones() -> None:
    (bkk,) = local_days(date(2026, 3, 2), date(2026, 3, 2), "Asia/Bangkok")
    assert (bkk.start, bkk.end, bkk.seconds) == (
        t("2026-03-01 17:00"),
        t("2026-03-02 17:00"),
        86400,
    )
    (ygn,) = local_days(date(2026, 3, 2), date(2026, 3, 2), "Asia/Yangon")  # UTC+6:30
    assert ygn.start == t("2026-03-01 17:30")
    days = local_days(date(2026, 3, 1), date(2026, 3, 3), "Asia/Kolkata")  # UTC+5:30
    assert [d.day for d in days] == [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
    assert all(a.end == b.start for a, b in itertools.pairwise(days))


def test_local_days_across_daylight_saving() -> None:
    spring, autumn = (
        local_days(date(2026, 3, 29), date(2026, 3, 29), "Europe/Berlin")[0],
        local_days(date(2026, 10, 25), date(2026, 10, 25), "Europe/Berlin")[0],
    )
    assert (spring.seconds, autumn.seconds) == (23 * 3600, 25 * 3600)


def test_ranges_and_zones_are_checked() -> None:
    check_range(date(2026, 3, 1), date(2026, 3, 31), 31)
    with pytest.raises(ReportError, match="before it starts"):
        check_range(date(2026, 3, 2), date(2026, 3, 1), 31)
    with pytest.raises(ReportError, match="at most 31"):
        check_range(date(2026, 3, 1), date(2026, 4, 1), 31)
    with pytest.raises(ReportError, match="unknown time zone"):
        local_days(date(2026, 3, 1), date(2026, 3, 1), "Asia/Atlantis")
    assert valid_zone("Asia/Atlantis", "UTC") == "UTC"
    assert valid_zone(None, "Asia/Dubai") == "Asia/Dubai"
    assert valid_zone("Asia/Riyadh", "UTC") == "Asia/Riyadh"


# --- spans ------------------------------------------------------------------------------------


def test_union_intersect_clip() -> None:
    a, b, c, d = (
        t("2026-03-01 00:00"),
        t("2026-03-01 01:00"),
        t("2026-03-01 02:00"),
        t("2026-03-01 03:00"),
    )
    assert union([(c, d), (a, b), (b, c), (d, d)]) == [(a, d)]  # touching merge, empty dropped
    assert union([(a, c), (b, b)]) == [(a, c)]
    assert intersect([(a, b), (c, d)], [(a, d)]) == [(a, b), (c, d)]
    assert intersect([(a, c)], [(b, d)]) == [(b, c)]
    assert clip([(a, d)], b, c) == [(b, c)] and clip([(a, d)], c, b) == []
    assert seconds([(a, b), (c, d)]) == 7200.0 and seconds([]) == 0.0
    assert covering([(a, b), (c, d)], b) == 0 and covering([(a, b), (c, d)], c) == 1
    assert covering([(a, b), (c, d)], t("2026-03-01 01:30")) is None


def test_state_seconds_with_an_overlay() -> None:
    lo, hi = t("2026-03-02 00:00"), t("2026-03-03 00:00")
    history = [
        (t("2026-03-01 12:00"), "Available"),  # before the window: its state at lo
        (t("2026-03-02 06:00"), "Charging"),
        (t("2026-03-02 08:00"), "Available"),
        (t("2026-03-03 01:00"), "Faulted"),  # after the window: ignored
    ]
    offline = [(t("2026-03-02 07:00"), t("2026-03-02 09:00"))]
    assert state_seconds(history, lo, hi, overlay=offline) == {
        "Available": 6 * 3600 + 15 * 3600,
        "Charging": 3600.0,
        "Offline": 7200.0,
    }
    assert state_seconds([(t("2026-03-02 12:00"), "Available")], lo, hi) == {
        "Unknown": 43200.0,
        "Available": 43200.0,
    }
    assert state_seconds(history, hi, lo) == {}


def test_pct_and_quantile() -> None:
    assert pct(1, 3) == 33.333 and pct(5, 0) is None
    assert quantile([], 0.5) is None and quantile([7.0], 0.95) == 7.0
    assert quantile([240.0, 300.0], 0.95) == pytest.approx(297.0)
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5


# --- vehicle rules ----------------------------------------------------------------------------


def test_sessions_end_at_logout_relogin_or_silence() -> None:
    events = [
        (t("2026-03-02 08:00"), "login"),
        (t("2026-03-02 09:00"), "logout"),
        (t("2026-03-02 09:30"), "logout"),  # a logout without a login: ignored
        (t("2026-03-02 10:00"), "login"),
        (t("2026-03-02 11:00"), "login"),  # reconnect while reporting: the first ends here
        (t("2026-03-02 12:00"), "login"),  # after a silence: the second ended after its frames
        (t("2026-03-02 13:00"), "login"),  # still open at the range end
    ]
    silences = [Silence(t("2026-03-02 11:30"), t("2026-03-02 12:00:10"))]
    sessions = build_sessions(events, silences, t("2026-03-02 14:00"), 30.0)
    assert [(s.start.hour, s.end.strftime("%H:%M:%S"), s.ended_by) for s in sessions] == [
        (8, "09:00:00", "logout"),
        (10, "11:00:00", "relogin"),
        (11, "11:30:30", "silence"),
        (12, "13:00:00", "relogin"),
        (13, "14:00:00", "open"),
    ]


def test_a_session_without_frames_has_no_length() -> None:
    silences = [Silence(t("2026-03-01 20:00"), t("2026-03-02 14:00"), open_end=True)]
    (s,) = build_sessions([(t("2026-03-02 08:00"), "login")], silences, t("2026-03-02 14:00"), 30)
    assert s == SessionSpan(start=s.start, end=s.start, seconds=0.0, ended_by="silence")


def test_activity_runs_split_where_the_vehicle_went_offline() -> None:
    silences = [
        Silence(None, t("2026-03-02 08:00")),
        Silence(t("2026-03-02 09:00"), t("2026-03-02 09:05")),  # short: stays one run
        Silence(t("2026-03-02 10:00"), t("2026-03-02 12:00")),  # over offline_after: splits
    ]
    runs = activity_runs(
        silences, t("2026-03-02 08:00"), t("2026-03-02 13:00"), t("2026-03-02 00:00"), 60, 600
    )
    assert runs == [
        (t("2026-03-02 08:00"), t("2026-03-02 10:01")),
        (t("2026-03-02 12:00"), t("2026-03-02 13:01")),
    ]
    # the frame before the range was close: the run reaches back to the range start
    close = activity_runs(
        [], t("2026-03-02 00:00:30"), t("2026-03-02 01:00"), t("2026-03-02"), 60, 600
    )
    assert close == [(t("2026-03-02 00:00"), t("2026-03-02 01:01"))]


def test_alarm_stretches_from_edges() -> None:
    first, last = t("2026-03-02 08:00"), t("2026-03-02 18:00")
    starts = [t("2026-03-02 09:00"), t("2026-03-02 10:00"), t("2026-03-02 17:00")]
    ends = [t("2026-03-02 07:59"), t("2026-03-02 09:00"), t("2026-03-02 10:05")]
    assert alarm_stretches(starts, ends, first, last, ends_in_alarm=True) == [
        (t("2026-03-02 09:00"), t("2026-03-02 09:00")),  # a single level-3 frame
        (t("2026-03-02 10:00"), t("2026-03-02 10:05")),
        (t("2026-03-02 17:00"), last),  # still on at the end
    ]
    # on at the range start: from the first frame
    assert alarm_stretches([], [t("2026-03-02 08:10")], first, last, False) == [
        (first, t("2026-03-02 08:10"))
    ]
    assert alarm_stretches([], [], first, last, True) == [(first, last)]
    assert alarm_stretches([], [], None, None, True) == []


def test_by_day_puts_spans_in_every_day_they_touch() -> None:
    days = [
        Day(date(2026, 3, 1), t("2026-03-01"), t("2026-03-02")),
        Day(date(2026, 3, 2), t("2026-03-02"), t("2026-03-03")),
    ]
    spans = [
        (t("2026-03-01 23:00"), t("2026-03-02 01:00")),
        (t("2026-03-02 05:00"), t("2026-03-02 05:00")),
        (t("2026-03-02 00:00"), t("2026-03-02 00:00")),
    ]
    assert by_day(spans, days, lambda x: x) == [[spans[0]], [spans[0], spans[1], spans[2]]]


def _summary(day: date, frames: list[datetime], iv: float) -> DaySummary:
    """A raw-path summary of evenly spaced frames (what the SQL would give)."""
    s = DaySummary(day=day, frames=len(frames), first_time=frames[0], last_time=frames[-1])
    s.intervals = len(frames) - 1
    s.silences = [Silence(None, frames[0])]
    return s


def test_assemble_a_day_with_a_gap_inside_a_session() -> None:
    day = Day(date(2026, 3, 2), t("2026-03-02"), t("2026-03-03"))
    frames = [t("2026-03-02 08:00") + timedelta(seconds=30 * k) for k in range(120)]
    frames = [f for f in frames if not t("2026-03-02 08:20") < f < t("2026-03-02 08:30")]
    s = _summary(day.day, frames, 30)
    s.intervals -= 1
    s.silences.append(Silence(t("2026-03-02 08:20"), t("2026-03-02 08:30")))
    events = [(t("2026-03-02 08:00"), "login"), (t("2026-03-02 09:00"), "logout")]
    (row,) = assemble(
        VehicleInfo(vin="V", tz="UTC", interval_s=30),
        [day],
        {day.day: s},
        events,
        Rules(),
        now=t("2026-03-05"),
    )
    assert (row.online_s, row.expected_frames, row.frames) == (3600.0, 120, 101)
    assert [(g.start, g.end, g.seconds) for g in row.gaps] == [
        (t("2026-03-02 08:20"), t("2026-03-02 08:30"), 600.0)
    ]
    assert (row.intervals, row.intervals_late) == (100, 1)  # the silence counts, late
    assert row.completeness_pct == pytest.approx(100 * 101 / 120, abs=1e-3)
    assert (row.compliant, row.logins, row.logouts) == (False, 1, 1)


def test_assemble_stops_at_now_and_keeps_empty_days() -> None:
    days = local_days(date(2026, 3, 2), date(2026, 3, 3), "UTC")
    frames = [t("2026-03-02 23:00") + timedelta(seconds=60 * k) for k in range(61)]
    s = _summary(days[0].day, frames[:60], 60)
    s2 = _summary(days[1].day, frames[60:], 60)
    s2.silences = []  # the frame before (23:59) was a period earlier
    rows = assemble(
        VehicleInfo(vin="V", tz="UTC", interval_s=60),
        days,
        {days[0].day: s, days[1].day: s2},
        [(t("2026-03-02 23:00"), "login")],
        Rules(),
        now=t("2026-03-03 00:00:30"),  # the second day has only begun
    )
    assert [(r.frames, r.online_s, r.expected_frames) for r in rows] == [
        (60, 3600.0, 60),
        (1, 30.0, 0),  # 30 s of an open session: half a period expected
    ]
    assert rows[1].sessions[0].ended_by == "open"
