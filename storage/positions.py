"""Position queries for the API: a device's history (keyset-paginated) and the latest fixes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from storage.errors import StorageUnavailable
from storage.privacy import within_sql

_FIELDS = (
    "p.device_id, p.fingerprint, d.unique_id, p.fix_time, p.server_time, p.device_time,"
    " p.latitude, p.longitude, p.valid, p.speed_kmh, p.course_deg, p.altitude_m, p.accuracy_m,"
    " p.hdop, p.protocol, p.attributes"
)


class PositionStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def history(
        self,
        device_id: int,
        start: datetime,
        end: datetime,
        *,
        limit: int,
        newest_first: bool,
        after: tuple[datetime, int] | None = None,
        within: str | None = None,
    ) -> list[dict[str, Any]]:
        """Positions with ``start <= fix_time < end``, keyset-paginated on (fix_time, fingerprint):
        ``after`` is the key of the last row of the previous page. ``within``: a tstzmultirange
        literal the fix time must also lie in (storage.privacy: the on-duty part of the range)."""
        order = "DESC" if newest_first else "ASC"
        cursor_cond = ""
        params: list[Any] = [device_id, start, end]
        if within is not None:
            cursor_cond = f" AND {within_sql('p.fix_time')}"
            params.append(within)
        if after is not None:
            op = "<" if newest_first else ">"
            cursor_cond += f" AND (p.fix_time, p.fingerprint) {op} (%s, %s)"
            params.extend(after)
        params.append(limit)
        sql = (
            f"SELECT {_FIELDS} FROM positions p JOIN devices d ON d.id = p.device_id"
            f" WHERE p.device_id = %s AND p.fix_time >= %s AND p.fix_time < %s{cursor_cond}"
            f" ORDER BY p.fix_time {order}, p.fingerprint {order} LIMIT %s"
        )
        return await self._rows(sql, tuple(params))

    async def latest(self, device_ids: list[int] | None = None) -> list[dict[str, Any]]:
        """The newest position of every device (one index probe per device, no table scan)."""
        where = "" if device_ids is None else " WHERE d.id = ANY(%s)"
        sql = (
            "SELECT last.* FROM devices d CROSS JOIN LATERAL ("
            f" SELECT {_FIELDS} FROM positions p WHERE p.device_id = d.id"
            " ORDER BY p.fix_time DESC LIMIT 1) last" + where + " ORDER BY last.device_id"
        )
        # The lateral subquery needs ``d`` for unique_id; it is in scope there.
        return await self._rows(sql, () if device_ids is None else (device_ids,))

    async def latest_within(self, device_ids: list[int], lows: list[datetime], highs: list[datetime],
                            ranges: list[str]) -> list[dict[str, Any]]:
        """Per device, the newest position in [low, high) whose fix time lies in its multirange
        (the on-duty hours): the index scan starts at ``high`` (the end of the last on-duty
        interval), so the off-duty positions after it are never read."""
        sql = (
            "SELECT last.* FROM unnest(%s::int8[], %s::timestamptz[], %s::timestamptz[], %s::text[])"
            " AS w(id, lo, hi, duty) JOIN devices d ON d.id = w.id CROSS JOIN LATERAL ("
            f" SELECT {_FIELDS} FROM positions p WHERE p.device_id = d.id AND p.fix_time >= w.lo"
            f" AND p.fix_time < w.hi AND {within_sql('p.fix_time', 'w.duty')}"
            " ORDER BY p.fix_time DESC LIMIT 1) last ORDER BY last.device_id"
        )
        return await self._rows(sql, (device_ids, lows, highs, ranges))

    async def count(self, device_id: int) -> int:
        rows = await self._rows("SELECT count(*) AS n FROM positions WHERE device_id = %s", (device_id,))
        return int(rows[0]["n"])

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        try:
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql.encode(), params)
                return await cur.fetchall()
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc
