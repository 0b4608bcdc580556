-- silkgate 0005: a durable, gap-free read order over the raw frame archive for the forwarders
-- (gateway/forward), and their cursors.
--
-- Every archived frame records the transaction that wrote it (txid) and its place in that
-- transaction's inserts (seq, from a sequence: the COPY's row order, i.e. arrival order).
-- A forwarder reads rows with (txid, seq) after its cursor and txid below the xmin of the
-- statement's snapshot: every transaction below xmin has ended, so a row can never appear
-- behind a cursor once the cursor has passed it, however transactions interleave or commit
-- out of order (several writers, spool replays of old data). The cost: one transaction left
-- open anywhere in the cluster holds every forwarder back until it ends.
--
-- The columns are added first and given their defaults after, so rows archived before this
-- migration keep NULLs and are never forwarded. The writer names its columns, so the defaults
-- fill both in (in its TEMP staging tables too: they are made LIKE raw_frames INCLUDING
-- DEFAULTS, and the move into raw_frames names its columns again).

ALTER TABLE raw_frames ADD COLUMN txid xid8;
ALTER TABLE raw_frames ADD COLUMN seq bigint;

CREATE SEQUENCE raw_frames_seq AS bigint CACHE 100;
ALTER SEQUENCE raw_frames_seq OWNED BY raw_frames.seq;

ALTER TABLE raw_frames ALTER COLUMN txid SET DEFAULT pg_current_xact_id();
ALTER TABLE raw_frames ALTER COLUMN seq SET DEFAULT nextval('raw_frames_seq');

CREATE INDEX raw_frames_forward_idx ON raw_frames (txid, seq) WHERE txid IS NOT NULL;

-- One row per forwarder (name: "<kind>:<configured name>"): the last (txid, seq) it delivered,
-- that frame's id and receive time (for people), how many it delivered in all, and for GB/T
-- 32960 upstreams the platform login serial of the day (GMT+8), which must grow across restarts.
CREATE TABLE forward_cursors (
    name          text PRIMARY KEY,
    txid          xid8 NOT NULL,
    seq           bigint NOT NULL,
    frame_id      uuid,
    received_at   timestamptz,
    forwarded     bigint NOT NULL DEFAULT 0,
    login_day     date,
    login_serial  integer,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
