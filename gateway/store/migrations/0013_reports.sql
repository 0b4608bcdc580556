-- silkgate 0013: compliance reports (gateway/reports, docs/reports.md).
--
-- vehicles.reporting_interval_s: the GB/T 32960 normal reporting period this vehicle is
-- configured for (parameter 0x02); NULL takes [reports] reporting_interval_s from the config.

ALTER TABLE vehicles ADD COLUMN reporting_interval_s real
    CHECK (reporting_interval_s > 0 AND reporting_interval_s <= 600);

-- The vehicle report's rollup: one row per vehicle, local day and time zone, holding what the
-- report needs from that day's vehicle_realtime and alarms rows (counts, the silences longer
-- than two reporting periods, level-3 alarm edges, odometer, energy, track) so a month's report
-- reads 30 rows per vehicle instead of every frame. A plain table under either TimescaleDB
-- license, filled by gateway.reports.refresh_vehicle_days() (silkgate report refresh) for
-- complete days only. A row counts only for a report asking the same time zone and periods
-- (tz, interval_s, alarm_interval_s, tolerance); other days are computed from the raw rows.
CREATE TABLE report_vehicle_days (
    vin               text NOT NULL,
    tz                text NOT NULL,
    day               date NOT NULL,
    interval_s        double precision NOT NULL,
    alarm_interval_s  double precision NOT NULL,
    tolerance         double precision NOT NULL,
    refreshed_at      timestamptz NOT NULL DEFAULT now(),
    frames            integer NOT NULL,
    reissued          integer NOT NULL,
    alarm1_frames     integer NOT NULL,
    alarm2_frames     integer NOT NULL,
    alarm3_frames     integer NOT NULL,
    first_time        timestamptz,
    last_time         timestamptz,
    ends_in_alarm     boolean NOT NULL,
    intervals         integer NOT NULL,
    intervals_late    integer NOT NULL,
    alarm_intervals   integer NOT NULL,
    alarm_late        integer NOT NULL,
    silence_from      timestamptz[] NOT NULL,  -- NULL element: no earlier frame at all
    silence_to        timestamptz[] NOT NULL,
    silence_alarm     boolean[] NOT NULL,
    alarm_starts      timestamptz[] NOT NULL,
    alarm_ends        timestamptz[] NOT NULL,
    odometer_min_km   double precision,
    odometer_max_km   double precision,
    soc_min_pct       smallint,
    soc_max_pct       smallint,
    speed_max_kmh     real,
    energy_out_wh     double precision NOT NULL,
    energy_in_wh      double precision NOT NULL,
    track_km          double precision NOT NULL,
    alarm_flags       jsonb NOT NULL,
    PRIMARY KEY (vin, tz, day)
);
