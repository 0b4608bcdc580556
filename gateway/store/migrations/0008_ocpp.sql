-- silkgate 0008: the OCPP central system (gateway/ocpp): charger events, the local
-- authorization list, and the transaction ids it hands out to OCPP 1.6 chargers.

-- Boot, security events, firmware / diagnostics / log status, NotifyEvent / NotifyReport,
-- DataTransfer, signed meter values, transaction sequence gaps, connects and disconnects.
-- key tells apart events of one kind at one time (a seqNo, a requestId; '' when none), so a
-- message the charger retries is stored once.
CREATE TABLE charger_events (
    time        timestamptz NOT NULL,
    charger_id  text NOT NULL,
    event       text NOT NULL,
    key         text NOT NULL,
    received_at timestamptz NOT NULL,
    protocol    text NOT NULL,
    station_id  text,
    detail      jsonb
);
SELECT create_hypertable('charger_events', by_range('time', INTERVAL '7 days'));
CREATE UNIQUE INDEX charger_events_key ON charger_events (charger_id, event, key, time);

-- The local authorization list (OCPP 1.6 idTag, 2.0.1 idToken). operator_id NULL: valid on
-- every charger; else only on that operator's chargers. token_type NULL: any 2.0.1 type.
CREATE TABLE id_tokens (
    id_token      text PRIMARY KEY,
    operator_id   text REFERENCES operators,
    token_type    text,
    status        text NOT NULL DEFAULT 'Accepted'
                  CHECK (status IN ('Accepted', 'Blocked', 'Expired', 'Invalid')),
    expires_at    timestamptz,
    parent_id_tag text,
    attributes    jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- OCPP 1.6 transaction ids are integers the central system assigns in its StartTransaction
-- answer. A charger retrying a StartTransaction from its offline queue must get the same id
-- again: the row's natural key is (charger, connector, the charger's start time).
CREATE TABLE ocpp_transactions (
    transaction_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    charger_id     text NOT NULL,
    connector_id   integer NOT NULL,
    started_at     timestamptz NOT NULL,
    id_tag         text NOT NULL,
    meter_start_wh bigint NOT NULL,
    stopped_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (charger_id, connector_id, started_at)
);
CREATE INDEX ocpp_transactions_open_idx ON ocpp_transactions (charger_id) WHERE stopped_at IS NULL;

-- The security profile a charger must use (1: Basic auth, 2: Basic auth over TLS); NULL:
-- the listener's default. auth_hash (0001) holds "sha256:<hex>" of the Basic-auth password
-- bytes (binary keys included), never the key.
ALTER TABLE chargers ADD COLUMN security_profile smallint CHECK (security_profile IN (0, 1, 2, 3));
