"""The report rows: what each report computes, one Struct per row kind (docs/reports.md defines
every field). Times are UTC ``datetime``; ``day`` is the local calendar day in ``tz``.
Percentages are 0-100, None when there is nothing to divide by."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

import msgspec

ReportKind = Literal["vehicles", "chargers", "swap"]
REPORT_KINDS: tuple[ReportKind, ...] = ("vehicles", "chargers", "swap")


class Scope(msgspec.Struct, frozen=True, kw_only=True):
    """Which vehicles, chargers or stations a report covers. Empty: all registered ones.

    Filters combine with AND. ``vins`` / ``chargers`` / ``stations`` may name devices missing
    from the registry; they are reported with the configured defaults (not when ``operator``,
    ``fleet`` or ``fleets`` is given). ``fleet`` and ``fleets`` (any of them; the API's
    regulator tokens have several) apply to vehicles only; ``stations`` to chargers (their
    station) and swap stations.
    """

    operator: str | None = None
    fleet: str | None = None
    fleets: tuple[str, ...] = ()
    vins: tuple[str, ...] = ()
    stations: tuple[str, ...] = ()
    chargers: tuple[str, ...] = ()


class Gap(msgspec.Struct, frozen=True, kw_only=True):
    """A silence while online longer than the gap threshold (whole extent, may cross days)."""

    start: datetime
    end: datetime
    seconds: float
    during_alarm: bool  # the frame before it carried a level-3 alarm


class SessionSpan(msgspec.Struct, frozen=True, kw_only=True):
    """A login session: login to logout, or to where it was taken to end (``ended_by``)."""

    start: datetime
    end: datetime
    seconds: float
    ended_by: Literal["logout", "relogin", "silence", "open"]


class AlarmStretch(msgspec.Struct, frozen=True, kw_only=True):
    """Consecutive frames with alarm level 3: the first one's time to the last one's."""

    start: datetime
    end: datetime
    seconds: float


class VehicleDay(msgspec.Struct, kw_only=True):
    """One vehicle on one local day: the GB/T 32960 reporting compliance figures."""

    vin: str
    day: date
    tz: str
    operator_id: str | None
    fleet_id: str | None
    plate: str | None
    interval_s: float
    frames: int
    reissued: int
    expected_frames: int
    completeness_pct: float | None
    online_s: float
    intervals: int
    intervals_late: int
    interval_compliance_pct: float | None
    alarm3_s: float
    alarm3_intervals: int
    alarm3_intervals_late: int
    alarm3_compliance_pct: float | None
    gap_count: int
    gap_s: float
    longest_gap_s: float
    gaps: list[Gap]
    logins: int
    logouts: int
    sessions: list[SessionSpan]
    alarm_frames: dict[str, int]  # highest alarm level "1" / "2" / "3" -> frames
    alarm_flags: dict[str, int]  # general alarm flag name -> frames carrying it
    alarm3_stretches: list[AlarmStretch]
    distance_km: float | None
    track_km: float
    energy_out_kwh: float
    energy_in_kwh: float
    soc_min_pct: int | None
    soc_max_pct: int | None
    speed_max_kmh: float | None
    first_frame: datetime | None
    last_frame: datetime | None
    compliant: bool | None
    source: Literal["rollup", "raw"]


class ConnectorDay(msgspec.Struct, kw_only=True):
    """One charger connector (or connector 0, the charger itself) on one local day."""

    charger_id: str
    station_id: str | None
    operator_id: str | None
    evse_id: int | None
    connector_id: int
    day: date
    tz: str
    status_s: dict[str, float]  # status -> seconds; "Offline" while disconnected, "Unknown"
    available_s: float
    unavailable_s: float
    offline_s: float
    unknown_s: float
    availability_pct: float | None
    status_changes: int
    faults: int
    fault_codes: dict[str, int]
    sessions: int
    energy_wh: float
    meter_energy_wh: float | None


class SwapStationDay(msgspec.Struct, kw_only=True):
    """One battery-swap station on one local day."""

    station_id: str
    operator_id: str | None
    day: date
    tz: str
    swaps: int
    succeeded: int
    failed: int
    aborted: int
    failure_pct: float | None
    duration_mean_s: float | None
    duration_p50_s: float | None
    duration_p95_s: float | None
    duration_max_s: float | None
    vehicles: int
    packs_swapped: int
    packs_seen: int
    energy_swapped_wh: float
    swap_faults: dict[str, int]
    state_s: dict[str, float]  # station state -> seconds ("Unknown" before the first status)
    operating_pct: float | None
    station_faults: dict[str, int]


ReportRow = VehicleDay | ConnectorDay | SwapStationDay


class Report(msgspec.Struct, kw_only=True):
    """A report: its rows and how they were made (``parameters``: the settings in force)."""

    kind: ReportKind
    start_day: date
    end_day: date
    generated_at: datetime
    scope: Scope
    parameters: dict[str, Any]
    rows: list[VehicleDay] | list[ConnectorDay] | list[SwapStationDay]
