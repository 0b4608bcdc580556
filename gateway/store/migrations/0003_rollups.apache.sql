-- silkgate 0003 (Apache-licensed TimescaleDB): rollups as plain materialized views over
-- time_bucket, refreshed by gateway.store.timescale.refresh_rollups(); retention by the gateway's
-- scheduler calling run_retention() (drop_chunks). No compression, policies or continuous
-- aggregates: the Apache build does not license them. The 'timescale' variant of this migration
-- defines the same views as continuous aggregates.
--
-- Energy is estimated from the realtime samples: sum of V*I per sign times the mean sample
-- interval in the bucket (GB/T 32960: positive current is discharge, negative is charge).

CREATE MATERIALIZED VIEW vehicle_realtime_hourly AS
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
CREATE UNIQUE INDEX vehicle_realtime_hourly_key ON vehicle_realtime_hourly (vin, bucket);

CREATE MATERIALIZED VIEW vehicle_realtime_daily AS
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
CREATE UNIQUE INDEX vehicle_realtime_daily_key ON vehicle_realtime_daily (vin, bucket);

-- Energy through each connector per hour, from the cumulative import register (Wh).
CREATE MATERIALIZED VIEW charging_energy_hourly AS
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
CREATE UNIQUE INDEX charging_energy_hourly_key
    ON charging_energy_hourly (charger_id, evse_id, connector_id, bucket);

-- Completed sessions and the energy they delivered, per charger and day (by stop time).
CREATE MATERIALIZED VIEW charging_energy_daily AS
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
CREATE UNIQUE INDEX charging_energy_daily_key ON charging_energy_daily (charger_id, bucket);
