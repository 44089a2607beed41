-- Processor results: per-position marks, trips, stops, events, geofences, webhooks, and the
-- per-device processor state that lets a restart or a late position resume exactly.

-- Marks written by the processing runner (NULL until the position has been processed). Room on
-- each page lets these updates stay HOT (no index churn): the columns are not indexed.
ALTER TABLE positions
    ADD COLUMN filtered   text,
    ADD COLUMN odometer_m double precision,
    ADD COLUMN moving     boolean;
ALTER TABLE positions SET (fillfactor = 85);

CREATE TABLE device_groups (
    id          bigserial PRIMARY KEY,
    name        text        NOT NULL UNIQUE,
    attributes  jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE devices ADD COLUMN group_id bigint REFERENCES device_groups (id) ON DELETE SET NULL;

-- Written in the same transaction as new positions: the earliest (fix_time, fingerprint) of this
-- device not yet processed. Durable, so nothing is missed across a crash; the runner clears it.
CREATE TABLE processing_dirty (
    device_id   bigint      PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    since_time  timestamptz NOT NULL,
    since_key   bigint      NOT NULL
);

-- The processor state after the last processed position (upto_*), and earlier snapshots from
-- which a late position's period is replayed.
CREATE TABLE processing_state (
    device_id   bigint      PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    upto_time   timestamptz NOT NULL,
    upto_key    bigint      NOT NULL,
    state       jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE processing_checkpoints (
    device_id   bigint      NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    upto_time   timestamptz NOT NULL,
    upto_key    bigint      NOT NULL,
    state       jsonb       NOT NULL,
    PRIMARY KEY (device_id, upto_time, upto_key)
);

-- emitted_*: the position whose processing produced the record; a replay from a checkpoint
-- replaces exactly the records emitted after it.
CREATE TABLE trips (
    device_id          bigint           NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    start_time         timestamptz      NOT NULL,
    end_time           timestamptz      NOT NULL,
    start_latitude     double precision NOT NULL,
    start_longitude    double precision NOT NULL,
    end_latitude       double precision NOT NULL,
    end_longitude      double precision NOT NULL,
    distance_m         double precision NOT NULL,
    max_speed_kmh      double precision NOT NULL,
    average_speed_kmh  double precision NOT NULL,
    start_odometer_m   double precision NOT NULL,
    end_odometer_m     double precision NOT NULL,
    emitted_time       timestamptz      NOT NULL,
    emitted_key        bigint           NOT NULL,
    PRIMARY KEY (device_id, start_time)
);
CREATE TABLE stops (
    device_id     bigint           NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    start_time    timestamptz      NOT NULL,
    end_time      timestamptz      NOT NULL,
    latitude      double precision NOT NULL,
    longitude     double precision NOT NULL,
    odometer_m    double precision NOT NULL,
    emitted_time  timestamptz      NOT NULL,
    emitted_key   bigint           NOT NULL,
    PRIMARY KEY (device_id, start_time)
);

CREATE TABLE geofences (
    id               bigserial   PRIMARY KEY,
    name             text        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('circle', 'polygon', 'corridor')),
    geometry         jsonb       NOT NULL,
    radius_m         double precision,
    width_m          double precision,
    speed_limit_kmh  double precision,
    -- Both empty: the fence applies to every device.
    device_ids       bigint[]    NOT NULL DEFAULT '{}',
    group_ids        bigint[]    NOT NULL DEFAULT '{}',
    attributes       jsonb       NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- geofence_id has no foreign key: an event outlives the fence it was about.
CREATE TABLE events (
    id            bigserial        PRIMARY KEY,
    device_id     bigint           NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    time          timestamptz      NOT NULL,
    type          text             NOT NULL,
    latitude      double precision NOT NULL,
    longitude     double precision NOT NULL,
    geofence_id   bigint,
    attributes    jsonb            NOT NULL DEFAULT '{}',
    emitted_time  timestamptz      NOT NULL,
    emitted_key   bigint           NOT NULL,
    created_at    timestamptz      NOT NULL DEFAULT now()
);
-- An event's identity: a replay that produces the same event again keeps the existing row
-- (and does not notify twice).
CREATE UNIQUE INDEX events_identity ON events (device_id, type, time, (coalesce(geofence_id, 0)));
CREATE INDEX events_by_time ON events (time);
CREATE INDEX events_by_device ON events (device_id, time, id);
CREATE INDEX events_emitted ON events (device_id, emitted_time, emitted_key);

CREATE TABLE webhooks (
    id           bigserial   PRIMARY KEY,
    url          text        NOT NULL,
    secret       text        NOT NULL,
    -- Empty: every event type / every device.
    event_types  text[]      NOT NULL DEFAULT '{}',
    device_ids   bigint[]    NOT NULL DEFAULT '{}',
    enabled      boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- The outbox: one row per (webhook, event), inserted with the event; marked delivered or failed
-- (with last_error) and pruned by the dispatcher after 7 / 30 days.
CREATE TABLE webhook_deliveries (
    id               bigserial   PRIMARY KEY,
    webhook_id       bigint      NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         bigint      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    attempts         int         NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    failed_at        timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;

-- Positions stored before this migration: process each device's history from its first position.
INSERT INTO processing_dirty (device_id, since_time, since_key)
SELECT DISTINCT ON (device_id) device_id, fix_time, fingerprint FROM positions
ORDER BY device_id, fix_time, fingerprint;
