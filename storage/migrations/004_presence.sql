-- Online/offline as last seen by the presence sweep, so each change is one event.
CREATE TABLE device_presence (
    device_id   bigint      PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    online      boolean     NOT NULL,
    changed_at  timestamptz NOT NULL
);
