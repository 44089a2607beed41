"""Events for the API: filtered by device, type and time, keyset-paginated on (time, id)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from storage.errors import StorageUnavailable


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    device_id: int
    time: datetime
    type: str
    latitude: float
    longitude: float
    geofence_id: int | None
    attributes: dict[str, Any]


class EventStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def list(
        self,
        *,
        device_ids: Sequence[int] | None,
        types: Sequence[str] | None,
        start: datetime,
        end: datetime,
        limit: int,
        after: tuple[datetime, int] | None = None,
        newest_first: bool = False,
        within: tuple[Sequence[int], Sequence[str]] | None = None,
    ) -> builtins.list[StoredEvent]:
        """Events with ``start <= time < end`` (of these devices and types when given), ordered by
        (time, id); ``after`` is the (time, id) of the last event of the previous page.
        ``within``: devices and, for each, a tstzmultirange literal its events' times must lie in
        (storage.privacy: the on-duty hours); other devices are not limited."""
        order, op = ("DESC", "<") if newest_first else ("ASC", ">")
        where = ["time >= %s", "time < %s"]
        params: builtins.list[Any] = [start, end]
        if device_ids is not None:
            where.append("device_id = ANY(%s::bigint[])")
            params.append(builtins.list(device_ids))
        if types is not None:
            where.append("type = ANY(%s::text[])")
            params.append(builtins.list(types))
        if within is not None and within[0]:
            where.append("NOT EXISTS (SELECT 1 FROM unnest(%s::int8[], %s::text[]::tstzmultirange[])"
                         " h(dev, duty) WHERE h.dev = events.device_id AND NOT events.time <@ h.duty)")
            params.extend((builtins.list(within[0]), builtins.list(within[1])))
        if after is not None:
            where.append(f"(time, id) {op} (%s, %s)")
            params.extend(after)
        params.append(limit)
        sql = ("SELECT id, device_id, time, type, latitude, longitude, geofence_id, attributes"
               f" FROM events WHERE {' AND '.join(where)} ORDER BY time {order}, id {order} LIMIT %s")
        try:
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql.encode(), tuple(params))
                return [StoredEvent(**r) for r in await cur.fetchall()]
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc
