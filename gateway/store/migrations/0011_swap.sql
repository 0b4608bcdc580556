-- silkgate 0011: battery-swap stations (silkgate swap messages, docs/swap-station.md): station
-- status, what the storage bays hold, and the packs charging in them. Swaps themselves go to
-- swap_events (0002). Units SI: W, V, A, Wh, degC, %. Each table's unique index is its natural
-- key including time, so a message the station or the broker sends again is stored once.

CREATE TABLE station_status (
    time                timestamptz NOT NULL,
    station_id          text NOT NULL,
    received_at         timestamptz NOT NULL,
    state               text NOT NULL,
    bays_total          integer,
    bays_available      integer,
    batteries_charged   integer,
    batteries_charging  integer,
    power_w             double precision,
    faults              text[] NOT NULL,
    extra               jsonb
);
SELECT create_hypertable('station_status', by_range('time', INTERVAL '7 days'));
CREATE UNIQUE INDEX station_status_key ON station_status (station_id, time);

-- One row per storage bay per inventory message; pack_id is NULL for an empty bay.
CREATE TABLE battery_inventory (
    time           timestamptz NOT NULL,
    station_id     text NOT NULL,
    bay            integer NOT NULL,
    received_at    timestamptz NOT NULL,
    state          text NOT NULL,
    pack_id        text,
    soc_pct        real,
    soh_pct        real,
    energy_wh      double precision,
    temperature_c  real
);
SELECT create_hypertable('battery_inventory', by_range('time', INTERVAL '1 day'));
CREATE UNIQUE INDEX battery_inventory_key ON battery_inventory (station_id, bay, time);
CREATE INDEX battery_inventory_pack_idx ON battery_inventory (pack_id, time)
    WHERE pack_id IS NOT NULL;

-- One row per bay per charging message. energy_wh: charged in this charge so far.
CREATE TABLE battery_charging (
    time           timestamptz NOT NULL,
    station_id     text NOT NULL,
    bay            integer NOT NULL,
    received_at    timestamptz NOT NULL,
    state          text NOT NULL,
    pack_id        text,
    soc_pct        real,
    power_w        real,
    voltage_v      real,
    current_a      real,
    energy_wh      double precision,
    temperature_c  real
);
SELECT create_hypertable('battery_charging', by_range('time', INTERVAL '1 day'));
CREATE UNIQUE INDEX battery_charging_key ON battery_charging (station_id, bay, time);
CREATE INDEX battery_charging_pack_idx ON battery_charging (pack_id, time)
    WHERE pack_id IS NOT NULL;
