-- silkgate 0002: the hypertables, each with a natural-key unique index that includes its time
-- column. Writers insert with ON CONFLICT DO NOTHING, so retries, spool replays and GB/T 32960
-- reissues of the same data never create a second row.
--
-- Time is UTC (timestamptz). received_at is when silkgate received the data.

-- One wide row per GB/T 32960 realtime (0x02) or reissue (0x03) frame. Sentinel values are NULL
-- with the field named in quality. cell_voltages / probe_temps are packed as sent: unpack with
-- silkgate_cells() / silkgate_temps().
CREATE TABLE vehicle_realtime (
    time             timestamptz NOT NULL,
    vin              text NOT NULL,
    received_at      timestamptz NOT NULL,
    version          smallint NOT NULL,
    reissue          boolean NOT NULL,
    vehicle_state    smallint,
    charge_state     smallint,
    run_mode         smallint,
    speed_kmh        real,
    odometer_km      double precision,
    total_voltage_v  real,
    total_current_a  real,
    soc_pct          smallint,
    dcdc_state       smallint,
    gear             smallint,
    braking_force    boolean,
    driving_force    boolean,
    insulation_kohm  integer,
    accelerator_pct  smallint,
    brake_pct        smallint,
    brake_on         boolean,
    motors           json,  -- json, not jsonb: parsing jsonb was half the server's COPY cost
    engine_state     smallint,
    crank_speed_rpm  integer,
    fuel_rate        real,
    lon              double precision,
    lat              double precision,
    fix_valid        boolean,
    coord_system     smallint,
    max_cell_v       real,
    min_cell_v       real,
    max_temp_c       smallint,
    min_temp_c       smallint,
    alarm_level      smallint,
    alarm_flags      bigint,
    fault_count      integer,
    pack_voltage_v   real,
    pack_current_a   real,
    cell_total       integer,
    cell_start       integer,
    cell_count       integer NOT NULL,
    cell_voltages    bytea NOT NULL,
    cell_v_min       real,
    cell_v_max       real,
    cell_v_mean      real,
    probe_count      integer NOT NULL,
    probe_temps      bytea NOT NULL,
    temp_min_c       smallint,
    temp_max_c       smallint,
    temp_mean_c      real,
    extra            json,
    custom_blocks    json,
    quality          json
);
SELECT create_hypertable('vehicle_realtime', by_range('time', INTERVAL '1 day'));
CREATE UNIQUE INDEX vehicle_realtime_key ON vehicle_realtime (vin, time);

CREATE TABLE positions (
    time          timestamptz NOT NULL,
    device_id     text NOT NULL,
    protocol      text NOT NULL,
    received_at   timestamptz NOT NULL,
    lat           double precision,
    lon           double precision,
    fix_valid     boolean NOT NULL,
    reissue       boolean NOT NULL,
    altitude_m    integer,
    speed_kmh     real,
    heading_deg   smallint,
    odometer_km   double precision,
    alarm_flags   bigint,
    status_flags  bigint,
    coord_system  smallint,
    extra         json
);
SELECT create_hypertable('positions', by_range('time', INTERVAL '1 day'));
CREATE UNIQUE INDEX positions_key ON positions (device_id, protocol, time);

CREATE TABLE alarms (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    protocol     text NOT NULL,
    received_at  timestamptz NOT NULL,
    level        smallint,
    flags        bigint NOT NULL,
    names        text[] NOT NULL,
    fault_codes  jsonb,
    reissue      boolean NOT NULL
);
SELECT create_hypertable('alarms', by_range('time', INTERVAL '7 days'));
CREATE UNIQUE INDEX alarms_key ON alarms (device_id, protocol, time);

-- Logins, logouts, registrations, authentications (SessionEvent).
CREATE TABLE vehicle_sessions (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    protocol     text NOT NULL,
    event        text NOT NULL,
    received_at  timestamptz NOT NULL,
    serial       integer,
    detail       jsonb
);
SELECT create_hypertable('vehicle_sessions', by_range('time', INTERVAL '7 days'));
CREATE UNIQUE INDEX vehicle_sessions_key ON vehicle_sessions (device_id, protocol, time, event);

-- OCPP StatusNotification and the like. OCPP 1.6 has no EVSE (NULL): the key treats NULLs as equal.
CREATE TABLE charger_status (
    time               timestamptz NOT NULL,
    charger_id         text NOT NULL,
    connector_id       integer NOT NULL,
    evse_id            integer,
    received_at        timestamptz NOT NULL,
    protocol           text NOT NULL,
    status             text NOT NULL,
    error_code         text,
    vendor_error_code  text,
    vendor_id          text,
    info               text,
    station_id         text
);
SELECT create_hypertable('charger_status', by_range('time', INTERVAL '7 days'));
CREATE UNIQUE INDEX charger_status_key ON charger_status (charger_id, evse_id, connector_id, time)
    NULLS NOT DISTINCT;

-- One sampled value per row, value in SI units (Wh, W, A, V, ...).
CREATE TABLE meter_values (
    time            timestamptz NOT NULL,
    charger_id      text NOT NULL,
    connector_id    integer NOT NULL,
    evse_id         integer,
    measurand       text NOT NULL,
    phase           text,
    location        text,
    received_at     timestamptz NOT NULL,
    protocol        text NOT NULL,
    value           double precision NOT NULL,
    unit            text NOT NULL,
    transaction_id  text,
    context         text,
    station_id      text
);
SELECT create_hypertable('meter_values', by_range('time', INTERVAL '1 day'));
CREATE UNIQUE INDEX meter_values_key
    ON meter_values (charger_id, evse_id, connector_id, measurand, phase, location, time)
    NULLS NOT DISTINCT;
CREATE INDEX meter_values_transaction_idx ON meter_values (transaction_id, time)
    WHERE transaction_id IS NOT NULL;

-- Charging transaction events: start, update, stop.
CREATE TABLE charging_sessions (
    time            timestamptz NOT NULL,
    charger_id      text NOT NULL,
    transaction_id  text NOT NULL,
    event           text NOT NULL,
    received_at     timestamptz NOT NULL,
    protocol        text NOT NULL,
    connector_id    integer,
    evse_id         integer,
    id_tag          text,
    id_tag_hashed   boolean NOT NULL,
    started_at      timestamptz,
    stopped_at      timestamptz,
    meter_start_wh  double precision,
    meter_stop_wh   double precision,
    energy_wh       double precision,
    soc_start_pct   real,
    soc_pct         real,
    stop_reason     text,
    station_id      text,
    extra           jsonb
);
SELECT create_hypertable('charging_sessions', by_range('time', INTERVAL '7 days'));
CREATE UNIQUE INDEX charging_sessions_key
    ON charging_sessions (charger_id, transaction_id, time, event);

-- Battery swaps. bay may be unknown (NULL): the key treats NULLs as equal.
CREATE TABLE swap_events (
    time                timestamptz NOT NULL,
    station_id          text NOT NULL,
    bay                 integer,
    received_at         timestamptz NOT NULL,
    result              text NOT NULL,
    swap_id             text,
    vin                 text,
    pack_out_id         text,
    pack_out_soc_pct    real,
    pack_out_energy_wh  double precision,
    pack_in_id          text,
    pack_in_soc_pct     real,
    pack_in_energy_wh   double precision,
    duration_s          real,
    faults              text[] NOT NULL,
    extra               jsonb
);
SELECT create_hypertable('swap_events', by_range('time', INTERVAL '7 days'));
CREATE UNIQUE INDEX swap_events_key ON swap_events (station_id, bay, time) NULLS NOT DISTINCT;
CREATE INDEX swap_events_vin_idx ON swap_events (vin, time) WHERE vin IS NOT NULL;

-- Every frame as received (device times inside stay as the device sent them, e.g. GMT+8).
CREATE TABLE raw_frames (
    received_at  timestamptz NOT NULL,
    frame_id     uuid NOT NULL,
    peer         text NOT NULL,
    protocol     text NOT NULL,
    version      text,
    device_id    text,
    frame        bytea NOT NULL
);
SELECT create_hypertable('raw_frames', by_range('received_at', INTERVAL '1 day'));
CREATE UNIQUE INDEX raw_frames_key ON raw_frames (frame_id, received_at);
CREATE INDEX raw_frames_device_idx ON raw_frames (device_id, received_at);

-- Input that could not be decoded, kept raw with the reason.
CREATE TABLE dead_letters (
    received_at  timestamptz NOT NULL,
    frame_id     uuid NOT NULL,
    peer         text NOT NULL,
    protocol     text NOT NULL,
    reason       text NOT NULL,
    "offset"     integer,
    message      text NOT NULL,
    raw          bytea NOT NULL
);
SELECT create_hypertable('dead_letters', by_range('received_at', INTERVAL '7 days'));
CREATE UNIQUE INDEX dead_letters_key ON dead_letters (frame_id, received_at);
