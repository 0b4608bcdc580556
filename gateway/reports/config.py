"""``[reports]``: the defaults of the compliance reports (docs/reports.md).

Built on :mod:`gateway.config_base` only: ``gateway.config`` imports this section, which must
not pull in the report code.
"""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from gateway.config_base import PositiveFloat
from gateway.config_base import Section as _Section


class ReportsConfig(_Section, frozen=True):
    """``[reports]``: how compliance is judged when the registry does not say.

    ``timezone``: the IANA zone of report days for operators (and stations) whose registry row
    names none. ``reporting_interval_s``: the GB/T 32960 normal reporting period of vehicles
    whose ``vehicles.reporting_interval_s`` is NULL; ``alarm_interval_s`` the period while a
    level-3 alarm is active (1 s in GB/T 32960). An interval between two frames is late when it
    is longer than the period times ``1 + interval_tolerance``. A gap is a silence while online
    longer than ``max(gap_threshold_s, 2 x the period)``. Frames of a vehicle outside login
    sessions count as online while no silence is longer than ``offline_after_s``. A vehicle-day
    is compliant with at least ``min_completeness_pct`` of the expected frames, no gap and no
    late interval during level-3 alarms. ``refresh_days``: how many days back a scheduled
    rollup refresh recomputes (late reissues older than that need ``silkgate report refresh``).
    ``refresh_every_s``: how often ``silkgate run`` does that refresh (its maintenance, one
    process; 0: never), the first time ``refresh_delay_s`` after start-up.
    ``max_days``: the longest range one report may cover.
    """

    timezone: str = "UTC"
    reporting_interval_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 30.0
    alarm_interval_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0
    interval_tolerance: Annotated[float, msgspec.Meta(ge=0, le=10)] = 0.1
    gap_threshold_s: PositiveFloat = 60.0
    offline_after_s: PositiveFloat = 600.0
    min_completeness_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] = 95.0
    refresh_days: Annotated[int, msgspec.Meta(ge=1, le=366)] = 3
    refresh_every_s: Annotated[float, msgspec.Meta(ge=0)] = 3600.0
    refresh_delay_s: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    max_days: Annotated[int, msgspec.Meta(ge=1, le=3660)] = 366

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from None
