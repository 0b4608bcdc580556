-- silkgate 0009: the device a dead letter came from, where the adapter knows it (an OCPP
-- charger's identity, a session's VIN or phone), so a device's rejected input can be listed.

ALTER TABLE dead_letters ADD COLUMN device_id text;
CREATE INDEX dead_letters_device_idx ON dead_letters (device_id, received_at)
    WHERE device_id IS NOT NULL;
