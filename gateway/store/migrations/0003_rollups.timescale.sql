-- silkgate 0003 (community-licensed TimescaleDB, license 'timescale'): native compression with
-- compression policies, and the rollups as continuous aggregates with refresh policies.
-- Retention policies are set from the config by gateway.store.timescale.apply_retention().
-- The 'apache' variant of this migration defines the same views as plain materialized views.
--
-- Energy is estimated from the realtime samples: sum of V*I per sign times the mean sample
-- interval in the bucket (GB/T 32960: positive current is discharge, negative is charge).
-- Statements are separated by a semicolon at the end of a line and use no dollar quoting, so the
-- Apache-build test can check them one by one.

ALTER TABLE vehicle_realtime SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'vin',
    timescaledb.compress_orderby = 'time DESC'
);
SELECT add_compression_policy('vehicle_realtime', INTERVAL '7 days');

ALTER TABLE positions SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id, protocol',
    timescaledb.compress_orderby = 'time DESC'
);
SELECT add_compression_policy('positions', INTERVAL '7 days');

ALTER TABLE alarms SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id, protocol',
    timescaledb.compress_orderby = 'time DESC'
);
SELECT add_compression_policy('alarms', INTERVAL '30 days');

ALTER TABLE vehicle_sessions SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id, protocol',
    timescaledb.compress_orderby = 'time DESC, event'
);
SELECT add_compression_policy('vehicle_sessions', INTERVAL '30 days');

ALTER TABLE charger_status SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'charger_id',
    timescaledb.compress_orderby = 'time DESC, evse_id, connector_id'
);
SELECT add_compression_policy('charger_status', INTERVAL '30 days');

ALTER TABLE meter_values SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'charger_id, measurand',
    timescaledb.compress_orderby = 'time DESC, evse_id, connector_id, phase, location'
);
SELECT add_compression_policy('meter_values', INTERVAL '7 days');

ALTER TABLE charging_sessions SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'charger_id',
    timescaledb.compress_orderby = 'time DESC, transaction_id, event'
);
SELECT add_compression_policy('charging_sessions', INTERVAL '30 days');

ALTER TABLE swap_events SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'station_id',
    timescaledb.compress_orderby = 'time DESC, bay'
);
SELECT add_compression_policy('swap_events', INTERVAL '30 days');

ALTER TABLE raw_frames SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'protocol',
    timescaledb.compress_orderby = 'received_at DESC, frame_id'
);
SELECT add_compression_policy('raw_frames', INTERVAL '3 days');

ALTER TABLE dead_letters SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'protocol',
    timescaledb.compress_orderby = 'received_at DESC, frame_id'
);
SELECT add_compression_policy('dead_letters', INTERVAL '30 days');

CREATE MATERIALIZED VIEW vehicle_realtime_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    time_bucket(INTERVAL '1 hour', time) AS bucket,
    vin,
    count(*) AS frames,
    count(*) FILTER (WHERE reissue) AS reissued,
    min(time) AS first_time,
    max(time) AS last_time,
    min(odometer_km) AS odometer_min_km,
    max(odometer_km) AS odometer_max_km,
    max(odometer_km) - min(odometer_km) AS distance_km,
    max(speed_kmh) AS speed_max_kmh,
    min(soc_pct) AS soc_min_pct,
    max(soc_pct) AS soc_max_pct,
    (sum(greatest(total_voltage_v * total_current_a, 0)) / 1000.0
        * extract(epoch FROM max(time) - min(time)) / 3600.0
        / greatest(count(total_current_a) - 1, 1))::double precision AS energy_out_kwh,
    (sum(greatest(-total_voltage_v * total_current_a, 0)) / 1000.0
        * extract(epoch FROM max(time) - min(time)) / 3600.0
        / greatest(count(total_current_a) - 1, 1))::double precision AS energy_in_kwh,
    max(alarm_level) AS max_alarm_level
FROM vehicle_realtime
GROUP BY 1, 2
WITH NO DATA;
SELECT add_continuous_aggregate_policy('vehicle_realtime_hourly',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '30 minutes');

CREATE MATERIALIZED VIEW vehicle_realtime_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    time_bucket(INTERVAL '1 day', bucket) AS bucket,
    vin,
    sum(frames)::bigint AS frames,
    sum(reissued)::bigint AS reissued,
    min(first_time) AS first_time,
    max(last_time) AS last_time,
    min(odometer_min_km) AS odometer_min_km,
    max(odometer_max_km) AS odometer_max_km,
    max(odometer_max_km) - min(odometer_min_km) AS distance_km,
    max(speed_max_kmh) AS speed_max_kmh,
    min(soc_min_pct) AS soc_min_pct,
    max(soc_max_pct) AS soc_max_pct,
    sum(energy_out_kwh) AS energy_out_kwh,
    sum(energy_in_kwh) AS energy_in_kwh,
    max(max_alarm_level) AS max_alarm_level
FROM vehicle_realtime_hourly
GROUP BY 1, 2
WITH NO DATA;
SELECT add_continuous_aggregate_policy('vehicle_realtime_daily',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 hour');

CREATE MATERIALIZED VIEW charging_energy_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    time_bucket(INTERVAL '1 hour', time) AS bucket,
    charger_id,
    coalesce(evse_id, 0) AS evse_id,
    connector_id,
    count(*) AS samples,
    min(value) AS register_min_wh,
    max(value) AS register_max_wh,
    max(value) - min(value) AS energy_wh
FROM meter_values
WHERE measurand = 'Energy.Active.Import.Register'
GROUP BY 1, 2, 3, 4
WITH NO DATA;
SELECT add_continuous_aggregate_policy('charging_energy_hourly',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '30 minutes');

CREATE MATERIALIZED VIEW charging_energy_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    time_bucket(INTERVAL '1 day', time) AS bucket,
    charger_id,
    count(*) AS sessions,
    sum(energy_wh) AS energy_wh,
    max(energy_wh) AS session_max_wh
FROM charging_sessions
WHERE event = 'stop'
GROUP BY 1, 2
WITH NO DATA;
SELECT add_continuous_aggregate_policy('charging_energy_daily',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 hour');
