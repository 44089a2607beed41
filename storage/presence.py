"""Online/offline events: a device is online while its last message is younger than its
``attributes.offline_after_s`` (default 600 s). Time-driven, so a periodic sweep finds the
changes, not the position stream; each change is recorded in ``device_presence`` and becomes one
``deviceOnline``/``deviceOffline`` event (offline dated when the silence crossed the limit).

Presence events are not emitted by a position, so a late-data replay leaves them alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg import AsyncConnection

from processors.records import DEVICE_OFFLINE, DEVICE_ONLINE, Event

OFFLINE_AFTER_S = 600.0
PRESENCE_TYPES = (DEVICE_ONLINE, DEVICE_OFFLINE)

_CHANGES = """
WITH seen AS (
    SELECT d.id, last.server_time, last.latitude, last.longitude,
           CASE WHEN jsonb_typeof(d.attributes -> 'offline_after_s') = 'number'
                THEN (d.attributes ->> 'offline_after_s')::float8 ELSE %(default)s END AS limit_s
    FROM devices d
    CROSS JOIN LATERAL (SELECT server_time, latitude, longitude FROM positions p
                        WHERE p.device_id = d.id AND p.latitude IS NOT NULL
                        ORDER BY p.fix_time DESC LIMIT 1) last
    WHERE NOT d.disabled
)
SELECT s.id, s.server_time, s.latitude, s.longitude, s.limit_s,
       %(now)s - s.server_time <= make_interval(secs => s.limit_s) AS online
FROM seen s LEFT JOIN device_presence pr ON pr.device_id = s.id
WHERE (%(now)s - s.server_time <= make_interval(secs => s.limit_s))
      IS DISTINCT FROM coalesce(pr.online, false)
"""


async def sweep(conn: AsyncConnection, now: datetime) -> list[tuple[int, int, Event]]:
    """Record every presence change as of ``now``; returns (event id, device id, event) of the
    new events. Run inside the caller's transaction."""
    cur = await conn.execute(_CHANGES.encode(), {"now": now, "default": OFFLINE_AFTER_S})
    out: list[tuple[int, int, Event]] = []
    for device_id, seen, lat, lon, limit_s, online in await cur.fetchall():
        at = seen if online else seen + timedelta(seconds=limit_s)
        event = Event(at, DEVICE_ONLINE if online else DEVICE_OFFLINE, lat, lon)
        await conn.execute(
            "INSERT INTO device_presence (device_id, online, changed_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (device_id) DO UPDATE SET online = EXCLUDED.online,"
            " changed_at = EXCLUDED.changed_at",
            (device_id, online, at))
        row = await (await conn.execute(
            "INSERT INTO events (device_id, time, type, latitude, longitude, emitted_time, emitted_key)"
            " VALUES (%s, %s, %s, %s, %s, %s, 0)"
            " ON CONFLICT (device_id, type, time, (coalesce(geofence_id, 0))) DO NOTHING RETURNING id",
            (device_id, at, event.type, lat, lon, at))).fetchone()
        if row is not None:
            out.append((row[0], device_id, event))
    return out
