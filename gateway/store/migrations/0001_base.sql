-- silkgate 0001: unpacking functions and the device registry (plain tables).
--
-- Cells and probe temperatures are stored packed exactly as the vehicle sent them (see
-- gateway/records.py); these IMMUTABLE functions unpack them for queries and reports.

-- Cell voltages: big-endian WORDs in mV -> volts; 0xFFFE (abnormal) / 0xFFFF (invalid) -> NULL.
-- A trailing odd byte is ignored. An empty value gives an empty array.
CREATE FUNCTION silkgate_cells(raw bytea) RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN ARRAY(
    SELECT CASE WHEN w >= 65534 THEN NULL ELSE (w / 1000.0)::real END
    FROM (
        SELECT i, (get_byte(raw, 2 * i) << 8) | get_byte(raw, 2 * i + 1) AS w
        FROM generate_series(0, length(raw) / 2 - 1) AS i
    ) AS words
    ORDER BY i
);

-- Probe temperatures: BYTEs in degC with offset -40; 0xFE / 0xFF -> NULL.
CREATE FUNCTION silkgate_temps(raw bytea) RETURNS smallint[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN ARRAY(
    SELECT CASE WHEN b >= 254 THEN NULL ELSE (b - 40)::smallint END
    FROM (
        SELECT i, get_byte(raw, i) AS b
        FROM generate_series(0, length(raw) - 1) AS i
    ) AS bytes
    ORDER BY i
);

-- Tenants: the operators running vehicles, chargers and stations on this gateway.
CREATE TABLE operators (
    operator_id text PRIMARY KEY,
    name        text NOT NULL,
    country     text,                -- ISO 3166-1 alpha-2
    timezone    text,                -- IANA name, for reports in local time
    attributes  jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE fleets (
    fleet_id    text PRIMARY KEY,
    operator_id text NOT NULL REFERENCES operators,
    name        text NOT NULL,
    attributes  jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fleets_operator_idx ON fleets (operator_id);

CREATE TABLE vehicles (
    vin               text PRIMARY KEY,
    operator_id       text NOT NULL REFERENCES operators,
    fleet_id          text REFERENCES fleets,
    plate             text,
    plate_country     text,
    make              text,
    model             text,
    model_year        smallint,
    battery_kwh       real,
    protocol_version  smallint,      -- GB/T 32960 edition: 2016 or 2025
    commissioned_at   timestamptz,
    decommissioned_at timestamptz,
    attributes        jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vehicles_operator_idx ON vehicles (operator_id);
CREATE INDEX vehicles_fleet_idx ON vehicles (fleet_id);
CREATE UNIQUE INDEX vehicles_plate_idx ON vehicles (plate_country, plate) WHERE plate IS NOT NULL;

-- JT/T 808 terminals, identified by their phone number (BCD, as the terminal sends it).
CREATE TABLE terminals (
    phone            text PRIMARY KEY,
    operator_id      text REFERENCES operators,
    vin              text REFERENCES vehicles,
    protocol_version smallint,       -- 2011, 2013 or 2019
    manufacturer_id  text,
    terminal_model   text,
    terminal_id      text,
    plate            text,
    plate_color      smallint,
    auth_code_hash   text,           -- never the code itself
    registered_at    timestamptz,
    last_auth_at     timestamptz,
    attributes       jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX terminals_vin_idx ON terminals (vin);

-- Charging and battery-swap stations.
CREATE TABLE stations (
    station_id  text PRIMARY KEY,
    operator_id text NOT NULL REFERENCES operators,
    kind        text NOT NULL CHECK (kind IN ('charging', 'swap', 'mixed')),
    name        text,
    lat         double precision,
    lon         double precision,
    address     text,
    timezone    text,
    bays        smallint,            -- swap bays / lanes
    attributes  jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stations_operator_idx ON stations (operator_id);

CREATE TABLE chargers (
    charger_id       text PRIMARY KEY,  -- OCPP charge point identity / YKC pile code
    operator_id      text NOT NULL REFERENCES operators,
    station_id       text REFERENCES stations,
    protocol         text NOT NULL,     -- "ocpp1.6", "ocpp2.0.1", "ykc"
    vendor           text,
    model            text,
    serial_number    text,
    firmware_version text,
    connectors       smallint,
    max_power_kw     real,
    auth_hash        text,              -- OCPP basic-auth password hash, never the password
    attributes       jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chargers_station_idx ON chargers (station_id);
