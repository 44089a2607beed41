-- Visits (field-sales issue): plans and their approval, check-in/check-out with every attempt
-- recorded, presence detected from stops, reports from a team template, photos.

-- One row per visit of a rep to a customer on a day (the rep's local date).
-- status:  planned   submitted by a rep, waiting for a manager's approval
--          approved  approved by a manager, or planned by a manager/admin (no approval needed)
--          rejected  a manager said no (review_note says why)
--          done      checked in, or presence detected (a detected visit without a plan is born done)
--          missed    the rep's day ended with no check-in and no detected presence
--          cancelled withdrawn by the rep (before approval) or a manager
-- source:  plan      created as a plan (POST /api/visits)
--          detected  created by the visit detector from a stop at the customer with no plan
-- flags (reconciliation, set by the detector): 'checkin_without_presence' (a check-in the rep's
-- track does not show at the customer), 'presence_without_checkin' (a detected stop at a planned
-- customer with no check-in); set by the check-out: 'checkout_far' (checked out beyond the radius
-- plus the team's track tolerance).
CREATE TABLE visits (
    id                   bigserial        PRIMARY KEY,
    customer_id          bigint           NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    rep_id               bigint           NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    team_id              bigint           REFERENCES teams (id) ON DELETE SET NULL,
    day                  date             NOT NULL,
    window_start         timestamptz,
    window_end           timestamptz,
    purpose              text,
    status               text             NOT NULL DEFAULT 'planned'
        CHECK (status IN ('planned', 'approved', 'rejected', 'done', 'missed', 'cancelled')),
    source               text             NOT NULL DEFAULT 'plan' CHECK (source IN ('plan', 'detected')),
    created_by           bigint           REFERENCES users (id) ON DELETE SET NULL,
    reviewed_by          bigint           REFERENCES users (id) ON DELETE SET NULL,
    reviewed_at          timestamptz,
    review_note          text,
    -- The accepted check-in (refused attempts live in checkin_attempts).
    checkin_at           timestamptz,
    checkin_fix_time     timestamptz,
    checkin_latitude     double precision,
    checkin_longitude    double precision,
    checkin_accuracy_m   double precision,
    checkin_distance_m   double precision,
    checkout_at          timestamptz,
    checkout_fix_time    timestamptz,
    checkout_latitude    double precision,
    checkout_longitude   double precision,
    checkout_distance_m  double precision,
    dwell_s              double precision,
    -- Presence found in the rep's track (the detector): the longest qualifying stop that day.
    detected_device_id   bigint           REFERENCES devices (id) ON DELETE SET NULL,
    detected_start       timestamptz,
    detected_end         timestamptz,
    detected_distance_m  double precision,
    flags                text[]           NOT NULL DEFAULT '{}',
    created_at           timestamptz      NOT NULL DEFAULT now(),
    updated_at           timestamptz      NOT NULL DEFAULT now(),
    CHECK (window_start IS NULL OR window_end IS NULL OR window_start < window_end)
);
CREATE INDEX visits_rep_day ON visits (rep_id, day);
CREATE INDEX visits_customer_day ON visits (customer_id, day);
CREATE INDEX visits_team_day ON visits (team_id, day);
CREATE INDEX visits_open ON visits (day) WHERE status IN ('planned', 'approved');
-- A detected visit is one per rep, customer and day, whatever the number of stops.
CREATE UNIQUE INDEX visits_detected_once ON visits (rep_id, customer_id, day) WHERE source = 'detected';

-- Every check-in and check-out attempt, accepted or refused, for the manager's review.
-- reason (refused only): too_far, stale_fix, future_fix, inaccurate, mock_location, teleport,
-- track_mismatch, bad_state (e.g. a check-out before a check-in, a visit not open).
CREATE TABLE checkin_attempts (
    id           bigserial        PRIMARY KEY,
    visit_id     bigint           NOT NULL REFERENCES visits (id) ON DELETE CASCADE,
    user_id      bigint           REFERENCES users (id) ON DELETE SET NULL,
    kind         text             NOT NULL CHECK (kind IN ('checkin', 'checkout')),
    at           timestamptz      NOT NULL DEFAULT now(),
    fix_time     timestamptz,
    latitude     double precision,
    longitude    double precision,
    accuracy_m   double precision,
    mock         boolean          NOT NULL DEFAULT false,
    accepted     boolean          NOT NULL,
    reason       text,
    detail       jsonb            NOT NULL DEFAULT '{}'
);
CREATE INDEX checkin_attempts_visit ON checkin_attempts (visit_id, at);
CREATE INDEX checkin_attempts_refused ON checkin_attempts (at) WHERE NOT accepted;

-- The visit report form of a team: fields [{key, label, type, required, choices, min, max}, ...].
-- version grows on every change; a report keeps a copy of the fields it was filled against.
CREATE TABLE report_templates (
    team_id     bigint      PRIMARY KEY REFERENCES teams (id) ON DELETE CASCADE,
    fields      jsonb       NOT NULL DEFAULT '[]',
    version     int         NOT NULL DEFAULT 1,
    updated_by  bigint      REFERENCES users (id) ON DELETE SET NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE visit_reports (
    id                bigserial   PRIMARY KEY,
    visit_id          bigint      NOT NULL UNIQUE REFERENCES visits (id) ON DELETE CASCADE,
    template_version  int,
    template          jsonb       NOT NULL DEFAULT '[]',
    answers           jsonb       NOT NULL DEFAULT '{}',
    notes             text,
    submitted_by      bigint      REFERENCES users (id) ON DELETE SET NULL,
    submitted_at      timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Uploaded and derived files, addressed by content (sha256 hex), so a re-upload stores nothing new.
-- In the database, not on disk, so a backup or a restore keeps them with the rows that cite them.
CREATE TABLE media (
    sha256        text        PRIMARY KEY,
    content_type  text        NOT NULL,
    size_bytes    int         NOT NULL,
    data          bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- A photo taken at a visit. sha256: the original as uploaded; watermarked_sha256: the stamped copy.
-- phash: 64-bit perceptual hash (a photo within a few bits of an earlier one is the same picture);
-- flags: 'reused_photo' (duplicate_of says which), 'exif_time_mismatch', 'exif_location_far',
-- 'no_exif'.
CREATE TABLE visit_photos (
    id                  bigserial        PRIMARY KEY,
    visit_id            bigint           NOT NULL REFERENCES visits (id) ON DELETE CASCADE,
    report_id           bigint           REFERENCES visit_reports (id) ON DELETE SET NULL,
    customer_id         bigint           NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    rep_id              bigint           REFERENCES users (id) ON DELETE SET NULL,
    sha256              text             NOT NULL REFERENCES media (sha256),
    watermarked_sha256  text             REFERENCES media (sha256),
    phash               bigint           NOT NULL,
    width               int              NOT NULL,
    height              int              NOT NULL,
    taken_at            timestamptz,
    exif_latitude       double precision,
    exif_longitude      double precision,
    flags               text[]           NOT NULL DEFAULT '{}',
    duplicate_of        bigint           REFERENCES visit_photos (id) ON DELETE SET NULL,
    uploaded_by         bigint           REFERENCES users (id) ON DELETE SET NULL,
    uploaded_at         timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX visit_photos_visit ON visit_photos (visit_id);
CREATE INDEX visit_photos_customer ON visit_photos (customer_id, uploaded_at);
