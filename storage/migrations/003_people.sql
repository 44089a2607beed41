-- People and access (field-sales issue): teams, users with roles, the devices each rep carries,
-- working calendars; customers a team serves.

CREATE TABLE teams (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL UNIQUE,
    time_zone   text        NOT NULL DEFAULT 'UTC',
    -- Weekly working calendar for the team's reps unless a rep has their own:
    -- {"mon": [["08:00", "18:00"]], "tue": [...], ...}; missing day = not working.
    working_hours jsonb     NOT NULL DEFAULT '{}',
    -- Team policy, read by processors/team_policy.py (which documents the keys and defaults):
    -- {"store_off_hours": true, "mileage": {"rate": 0.30, "currency": "EUR"}, ...}
    settings    jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id             bigserial   PRIMARY KEY,
    name           text        NOT NULL,
    email          text        UNIQUE,
    role           text        NOT NULL CHECK (role IN ('admin', 'manager', 'rep')),
    -- A rep's team; a manager's own team membership (which teams they manage: team_managers).
    team_id        bigint      REFERENCES teams (id) ON DELETE SET NULL,
    -- A rep's own calendar overrides the team's (same shape); NULL: the team's.
    working_hours  jsonb,
    time_zone      text,
    password_hash  text,
    disabled       boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE team_managers (
    team_id  bigint NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
);

-- A device is carried by at most one rep at a time (a phone and a vehicle tracker per rep).
CREATE TABLE user_devices (
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id  bigint NOT NULL UNIQUE REFERENCES devices (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, device_id)
);

-- Tokens belong to a user (NULL: a system token, e.g. the bootstrap admin).
ALTER TABLE api_tokens ADD COLUMN user_id bigint REFERENCES users (id) ON DELETE CASCADE;

CREATE TABLE customers (
    id              bigserial        PRIMARY KEY,
    name            text             NOT NULL,
    address         text,
    latitude        double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude       double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    radius_m        double precision NOT NULL DEFAULT 150 CHECK (radius_m BETWEEN 20 AND 3000),
    grade           text,
    tags            text[]           NOT NULL DEFAULT '{}',
    team_id         bigint           REFERENCES teams (id) ON DELETE SET NULL,
    assigned_rep_id bigint           REFERENCES users (id) ON DELETE SET NULL,
    custom_fields   jsonb            NOT NULL DEFAULT '{}',
    external_id     text             UNIQUE,
    created_at      timestamptz      NOT NULL DEFAULT now(),
    updated_at      timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX customers_team ON customers (team_id);
CREATE INDEX customers_rep ON customers (assigned_rep_id);
-- Nearby search: a bounding box on these narrows before the exact distance.
CREATE INDEX customers_lat_lon ON customers (latitude, longitude);
