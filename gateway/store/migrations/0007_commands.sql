-- silkgate 0007: commands sent down to terminals (gateway/commands.py) and their outcome.
--
-- One row per command: inserted as 'pending' just before the frame is written (or directly
-- with its final status when it was never sent: 'offline'), updated when the terminal answers
-- or the wait times out. request / reply are JSON: parameter ids as hex strings ("0x0029"),
-- values typed by the parameter tables, raw bytes as {"hex": "..."}.
-- created_at: when the command was asked for; sent_at: when it was written to the terminal
-- (NULL: never sent, e.g. offline, or still queued behind another GB/T 32960 command of the
-- same kind when its time ran out).

CREATE TABLE commands (
    id          uuid PRIMARY KEY,
    device_id   text NOT NULL,          -- VIN (GB/T 32960) or terminal phone (JT/T 808)
    protocol    text NOT NULL,          -- 'gbt32960' | 'jt808'
    command     text NOT NULL,          -- API verb: query_parameters, set_parameters, control, text, send
    request     jsonb NOT NULL,
    status      text NOT NULL CHECK (status IN (
                    'pending', 'accepted', 'rejected', 'failed', 'unsupported',
                    'timeout', 'offline', 'error')),
    reply       jsonb,
    created_at  timestamptz NOT NULL,
    sent_at     timestamptz,
    replied_at  timestamptz,
    error       text
);

CREATE INDEX commands_device_sent_idx ON commands (device_id, sent_at);
CREATE INDEX commands_device_created_idx ON commands (device_id, created_at);
