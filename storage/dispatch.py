"""What dispatch needs from the database: every rep with their team, calendar and the newest
position among the devices they carry; and which customer (if any) a point is at."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from storage.errors import StorageUnavailable


@dataclass(frozen=True, slots=True)
class RepFix:
    user_id: int
    name: str
    team_id: int | None
    working_hours: dict[str, Any]
    time_zone: str
    device_id: int | None
    fix_time: datetime | None
    server_time: datetime | None
    latitude: float | None
    longitude: float | None
    speed_kmh: float | None
    moving: bool | None


# The rep's own calendar and zone if set, else the team's; the newest fix over their devices.
_REPS = """
SELECT u.id, u.name, u.team_id, coalesce(u.working_hours, t.working_hours, '{}'::jsonb),
       coalesce(u.time_zone, t.time_zone, 'UTC'),
       last.device_id, last.fix_time, last.server_time, last.latitude, last.longitude, last.speed_kmh,
       last.moving
FROM users u
LEFT JOIN teams t ON t.id = u.team_id
LEFT JOIN LATERAL (
    SELECT p.device_id, p.fix_time, p.server_time, p.latitude, p.longitude, p.speed_kmh, p.moving
    FROM user_devices ud
    CROSS JOIN LATERAL (SELECT * FROM positions q WHERE q.device_id = ud.device_id
                        AND q.latitude IS NOT NULL AND q.filtered IS NULL
                        ORDER BY q.fix_time DESC LIMIT 1) p
    WHERE ud.user_id = u.id ORDER BY p.fix_time DESC LIMIT 1) last ON true
WHERE u.role = 'rep' AND NOT u.disabled
"""

# For each point, the nearest customer whose check-in radius contains it (a box on the
# (latitude, longitude) index first; 3 km is the largest radius a customer may have).
_AT_CUSTOMER = """
SELECT pt.k, c.id, c.name
FROM unnest(%s::int8[], %s::float8[], %s::float8[]) AS pt(k, lat, lon)
CROSS JOIN LATERAL (
    SELECT c.id, c.name,
           2 * 6371008.8 * asin(sqrt(power(sin(radians(c.latitude - pt.lat) / 2), 2)
               + cos(radians(pt.lat)) * cos(radians(c.latitude))
               * power(sin(radians(c.longitude - pt.lon) / 2), 2))) AS d, c.radius_m
    FROM customers c
    WHERE c.latitude BETWEEN pt.lat - 0.03 AND pt.lat + 0.03
      AND c.longitude BETWEEN pt.lon - 0.03 / greatest(cos(radians(pt.lat)), 0.01)
                          AND pt.lon + 0.03 / greatest(cos(radians(pt.lat)), 0.01)
) c
WHERE c.d <= c.radius_m
ORDER BY pt.k, c.d
"""


async def rep_fixes(pool: AsyncConnectionPool) -> list[RepFix]:
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(_REPS.encode())
            return [RepFix(*row) for row in await cur.fetchall()]
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc


async def customers_at(pool: AsyncConnectionPool,
                       points: Sequence[tuple[int, float, float]]) -> dict[int, tuple[int, str]]:
    """key → (customer id, name) for the points inside a customer's radius."""
    if not points:
        return {}
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(_AT_CUSTOMER.encode(), ([k for k, _, _ in points],
                                                             [p[1] for p in points], [p[2] for p in points]))
            found: dict[int, tuple[int, str]] = {}
            for key, customer_id, name in await cur.fetchall():
                found.setdefault(key, (customer_id, name))
            return found
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc
