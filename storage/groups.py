"""Device groups: a device is in at most one group (``devices.group_id``); fences can name groups.

Membership changes bump the fences that name the groups involved (storage.geofences.touch_groups),
so the processing runner's fence version notices that a fence now applies to other devices.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from storage.errors import Conflict, NotFound, StorageUnavailable
from storage.geofences import lock_for_write, touch_groups

_SELECT = ("SELECT id, name, attributes, created_at,"
           " array(SELECT d.id FROM devices d WHERE d.group_id = g.id ORDER BY d.id) AS device_ids"
           " FROM device_groups g")


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    name: str
    attributes: dict[str, Any]
    created_at: datetime
    device_ids: builtins.list[int]


async def _scalar(conn: AsyncConnection, sql: str, params: tuple[Any, ...]) -> Any:
    cur = await conn.execute(sql.encode(), params)
    row = await cur.fetchone()
    return row[0] if row else None


class GroupStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(self, name: str, attributes: Mapping[str, Any] | None = None) -> Group:
        try:
            async with self.pool.connection() as conn:
                group_id = await _scalar(
                    conn, "INSERT INTO device_groups (name, attributes) VALUES (%s, %s) RETURNING id",
                    (name, Jsonb(dict(attributes or {}))))
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"a group named {name!r} exists") from exc
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc
        return await self.get(group_id)

    async def get(self, group_id: int) -> Group:
        rows = await self._query(_SELECT + " WHERE id = %s", (group_id,))
        if not rows:
            raise NotFound(f"group {group_id}")
        return rows[0]

    async def list(self, *, limit: int, after: int | None = None) -> builtins.list[Group]:
        """Groups by id, keyset-paginated: ``after`` is the last id of the previous page."""
        return await self._query(_SELECT + " WHERE id > %s ORDER BY id LIMIT %s",
                                 (after if after is not None else 0, limit))

    async def delete(self, group_id: int) -> None:
        """Refused (Conflict) while a fence names the group: dropping it from the fence could leave
        the fence with no devices and no groups, which means every device."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await lock_for_write(conn)
                if await _scalar(conn, "SELECT 1 FROM device_groups WHERE id = %s FOR UPDATE",
                                 (group_id,)) is None:
                    raise NotFound(f"group {group_id}")
                fences = await _scalar(conn, "SELECT array(SELECT id FROM geofences WHERE %s = ANY(group_ids)"
                                       " ORDER BY id)", (group_id,))
                if fences:
                    raise Conflict(f"group {group_id} is used by geofences {', '.join(map(str, fences))};"
                                   " take it out of them first")
                await conn.execute("DELETE FROM device_groups WHERE id = %s", (group_id,))
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def add_device(self, group_id: int, device_id: int) -> None:
        """Puts the device into this group, taking it out of any other."""
        await self._move(device_id, group_id, expect=None)

    async def remove_device(self, group_id: int, device_id: int) -> None:
        """NotFound unless the device is in this group."""
        await self._move(device_id, None, expect=group_id)

    async def _move(self, device_id: int, group_id: int | None, expect: int | None) -> None:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await lock_for_write(conn)
                wanted = group_id if group_id is not None else expect
                if await _scalar(conn, "SELECT 1 FROM device_groups WHERE id = %s FOR SHARE",
                                 (wanted,)) is None:
                    raise NotFound(f"group {wanted}")
                cur = await conn.execute("SELECT group_id FROM devices WHERE id = %s FOR UPDATE",
                                         (device_id,))
                row = await cur.fetchone()
                if row is None:
                    raise NotFound(f"device {device_id}")
                old = row[0]
                if expect is not None and old != expect:
                    raise NotFound(f"device {device_id} in group {expect}")
                if old == group_id:
                    return
                await conn.execute("UPDATE devices SET group_id = %s WHERE id = %s", (group_id, device_id))
                await touch_groups(conn, {g for g in (old, group_id) if g is not None})
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def _query(self, sql: str, params: tuple[Any, ...]) -> builtins.list[Group]:
        try:
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql.encode(), params)
                return [Group(**r) for r in await cur.fetchall()]
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc
