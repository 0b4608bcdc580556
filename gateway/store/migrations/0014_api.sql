-- silkgate 0014: the query and command API (gateway/api): its tokens and the audit of what
-- was done through it.

-- API tokens. The token itself ("sgt_<id>_<secret>", shown once when created) is never
-- stored: hash is "sha256:<hex>" of the whole token. role: admin (everything), operator
-- (query and command the devices of operator_id), regulator (read only, the vehicles of
-- fleets). rate_per_s / burst: this token's rate limit (NULL: [api] rate_per_s / burst).
CREATE TABLE api_tokens (
    token_id     text PRIMARY KEY,
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'operator', 'regulator')),
    operator_id  text REFERENCES operators,
    fleets       text[] NOT NULL DEFAULT '{}',
    hash         text NOT NULL,
    rate_per_s   real CHECK (rate_per_s > 0),
    burst        integer CHECK (burst > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    CHECK ((role = 'operator') = (operator_id IS NOT NULL)),
    CHECK (role = 'regulator' OR fleets = '{}'),
    CHECK (role <> 'regulator' OR cardinality(fleets) > 0)
);

-- Every command sent through the API (and every one refused), and token management: who
-- (token, role, operator), what (action, device, protocol, command, request), when, and the
-- result (the command's status, or "refused" / "error", with the HTTP status). command_id
-- joins commands (0007) for the device's answer; worker is the process that sent the command
-- down (with --workers N it may differ from the one that took the request).
CREATE TABLE api_audit (
    audit_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    token_id     text,
    role         text,
    operator_id  text,
    peer         text,
    action       text NOT NULL,          -- 'command', 'token.create', 'token.revoke'
    device_id    text,
    protocol     text,
    command      text,
    request      jsonb,
    command_id   uuid,
    result       text NOT NULL,
    http_status  smallint NOT NULL,
    error        text,
    worker       smallint,
    duration_ms  real
);
CREATE INDEX api_audit_at_idx ON api_audit (at);
CREATE INDEX api_audit_token_idx ON api_audit (token_id, at);
CREATE INDEX api_audit_device_idx ON api_audit (device_id, at) WHERE device_id IS NOT NULL;
CREATE INDEX api_audit_operator_idx ON api_audit (operator_id, at) WHERE operator_id IS NOT NULL;
