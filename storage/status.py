"""Where each device is and what it is doing now: the newest position with its marks, and the
processor state (alarm, geofences it is in, the open trip or stop)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from storage.errors import StorageUnavailable

_SQL = (
    "SELECT d.id, d.unique_id, d.name, d.disabled, d.attributes -> 'offline_after_s' AS offline_after_s,"
    " last.server_time AS last_seen, last.fix_time, last.latitude, last.longitude, last.speed_kmh,"
    " last.course_deg, last.moving, last.odometer_m, last.filtered, ps.state"
    " FROM devices d"
    " LEFT JOIN LATERAL (SELECT server_time, fix_time, latitude, longitude, speed_kmh, course_deg, moving,"
    "  odometer_m, filtered FROM positions p WHERE p.device_id = d.id ORDER BY p.fix_time DESC LIMIT 1)"
    " last ON true"
    " LEFT JOIN processing_state ps ON ps.device_id = d.id"
)


async def device_status(pool: AsyncConnectionPool, device_ids: list[int] | None) -> list[dict[str, Any]]:
    sql = _SQL + ("" if device_ids is None else " WHERE d.id = ANY(%s)") + " ORDER BY d.id"
    try:
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.encode(), () if device_ids is None else (device_ids,))
            return await cur.fetchall()
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc
