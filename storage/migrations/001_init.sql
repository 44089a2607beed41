-- Devices, positions and API tokens. Runs on plain PostgreSQL 15+; TimescaleDB features are
-- added by storage/timescale.py when the extension is available.

CREATE TABLE devices (
    id          bigserial PRIMARY KEY,
    unique_id   text        NOT NULL UNIQUE,
    name        text        NOT NULL,
    protocol    text,
    disabled    boolean     NOT NULL DEFAULT false,
    attributes  jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per report. The primary key makes a resend after a lost ack a no-op: the fingerprint
-- hashes the content, so two different reports with the same fix time are both kept.
CREATE TABLE positions (
    device_id    bigint           NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    fix_time     timestamptz      NOT NULL,
    fingerprint  bigint           NOT NULL,
    server_time  timestamptz      NOT NULL,
    device_time  timestamptz,
    latitude     double precision,
    longitude    double precision,
    valid        boolean          NOT NULL,
    speed_kmh    real,
    course_deg   real,
    altitude_m   real,
    accuracy_m   real,
    hdop         real,
    protocol     text             NOT NULL,
    attributes   jsonb            NOT NULL DEFAULT '{}',
    PRIMARY KEY (device_id, fix_time, fingerprint)
);

CREATE TABLE api_tokens (
    id          bigserial PRIMARY KEY,
    token_hash  text        NOT NULL UNIQUE,
    name        text        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('admin', 'manager', 'rep')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
