"""Geofence rows: validated on the way in by processors.fences, loaded for the processing runner.

Writers are serialized by a table lock (edits are rare) and every write sets ``updated_at`` past
the current maximum, so ``version()`` — ``(max(updated_at), count(*))`` — changes with every
committed create, update, delete or group-membership change of a fence. Without the lock, a
transaction that started earlier but committed later could add a smaller ``updated_at`` and the
runner would never notice it.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from processors.fences import Fence, fence_from_geojson
from storage.errors import NotFound, StorageUnavailable

_COLUMNS = ("id, name, kind, geometry, radius_m, width_m, speed_limit_kmh, device_ids, group_ids,"
            " attributes, created_at, updated_at")
_FIELDS = ("name", "geometry", "radius_m", "width_m", "speed_limit_kmh", "device_ids", "group_ids",
           "attributes")
# Strictly after every updated_at so far, even if the clock is behind the newest one.
_NEXT_STAMP = ("greatest(clock_timestamp(),"
               " (SELECT max(updated_at) FROM geofences) + interval '1 microsecond')")


class UnknownReference(ValueError):
    """A fence names devices or groups that do not exist (the API answers 422)."""


@dataclass(frozen=True, slots=True)
class Geofence:
    """A stored fence as the API shows it; ``geometry`` is the normalized GeoJSON geometry."""

    id: int
    name: str
    kind: str
    geometry: dict[str, Any]
    radius_m: float | None
    width_m: float | None
    speed_limit_kmh: float | None
    device_ids: list[int]
    group_ids: list[int]
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def fence(self) -> Fence:
        return fence_from_geojson(self.id, self.geometry, self.radius_m, self.width_m,
                                  self.speed_limit_kmh, self.attributes)


@dataclass(frozen=True, slots=True)
class ScopedFence:
    """A fence with the devices it applies to. Both ``device_ids`` and ``group_ids`` empty means
    every device; otherwise ``members`` is the devices named plus those in the named groups when
    it was loaded."""

    fence: Fence
    device_ids: frozenset[int]
    group_ids: frozenset[int]
    members: frozenset[int]

    @property
    def everyone(self) -> bool:
        return not self.device_ids and not self.group_ids

    def applies_to(self, device_id: int) -> bool:
        return self.everyone or device_id in self.members


def _geofence(row: dict[str, Any]) -> Geofence:
    return Geofence(**row)


def _ids(values: Iterable[int]) -> list[int]:
    return sorted(set(values))


def validate(values: Mapping[str, Any]) -> Fence:
    """The fence these column values describe; ValueError naming the problem if it is unusable."""
    return fence_from_geojson(0, values["geometry"], values.get("radius_m"), values.get("width_m"),
                              values.get("speed_limit_kmh"), values.get("attributes"))


async def lock_for_write(conn: AsyncConnection) -> None:
    """Serialize fence writers (not readers) until the end of the current transaction."""
    await conn.execute("LOCK TABLE geofences IN SHARE ROW EXCLUSIVE MODE")


async def touch_groups(conn: AsyncConnection, group_ids: Collection[int]) -> None:
    """Bump the fences naming these groups: their members changed. Call after lock_for_write."""
    if group_ids:
        sql = f"UPDATE geofences SET updated_at = {_NEXT_STAMP} WHERE group_ids && %s::bigint[]"
        await conn.execute(sql.encode(), (list(group_ids),))


async def _one(conn: AsyncConnection, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.encode(), params)
        return await cur.fetchone()


async def _check_references(conn: AsyncConnection, device_ids: list[int], group_ids: list[int]) -> None:
    cur = await conn.execute(
        "SELECT array(SELECT unnest(%s::bigint[]) EXCEPT SELECT id FROM devices ORDER BY 1),"
        " array(SELECT unnest(%s::bigint[]) EXCEPT SELECT id FROM device_groups ORDER BY 1)",
        (device_ids, group_ids),
    )
    row = await cur.fetchone()
    assert row is not None
    problems = [f"unknown {what} {', '.join(map(str, ids))}"
                for what, ids in (("device ids", row[0]), ("group ids", row[1])) if ids]
    if problems:
        raise UnknownReference("; ".join(problems))


class GeofenceStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(
        self,
        name: str,
        geometry: Mapping[str, Any],
        *,
        radius_m: float | None = None,
        width_m: float | None = None,
        speed_limit_kmh: float | None = None,
        device_ids: Iterable[int] = (),
        group_ids: Iterable[int] = (),
        attributes: Mapping[str, Any] | None = None,
    ) -> Geofence:
        """Raises ValueError (UnknownReference for missing devices or groups) for unusable input."""
        fence = fence_from_geojson(0, geometry, radius_m, width_m, speed_limit_kmh, attributes)
        devices, groups = _ids(device_ids), _ids(group_ids)
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await lock_for_write(conn)
                await _check_references(conn, devices, groups)
                row = await _one(
                    conn,
                    "INSERT INTO geofences (name, kind, geometry, radius_m, width_m, speed_limit_kmh,"
                    " device_ids, group_ids, attributes, created_at, updated_at)"
                    f" SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, now(), {_NEXT_STAMP}"
                    f" RETURNING {_COLUMNS}",
                    (name, fence.kind, Jsonb(fence.geometry), fence.radius_m, fence.width_m,
                     fence.speed_limit_kmh, devices, groups, Jsonb(fence.attributes)),
                )
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc
        assert row is not None
        return _geofence(row)

    async def get(self, fence_id: int) -> Geofence:
        rows = await self._query(f"SELECT {_COLUMNS} FROM geofences WHERE id = %s", (fence_id,))
        if not rows:
            raise NotFound(f"geofence {fence_id}")
        return rows[0]

    async def list(self, *, limit: int, after: int | None = None) -> builtins.list[Geofence]:
        """Fences by id, keyset-paginated: ``after`` is the last id of the previous page."""
        return await self._query(
            f"SELECT {_COLUMNS} FROM geofences WHERE id > %s ORDER BY id LIMIT %s",
            (after if after is not None else 0, limit),
        )

    async def update(self, fence_id: int, changes: Mapping[str, Any]) -> Geofence:
        """Changes the given fields (keys of ``_FIELDS``; others ignored); the whole fence is
        validated again, so ``{"geometry": <Polygon>}`` on a circle needs ``"radius_m": None``."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await lock_for_write(conn)
                row = await _one(conn, f"SELECT {_COLUMNS} FROM geofences WHERE id = %s", (fence_id,))
                if row is None:
                    raise NotFound(f"geofence {fence_id}")
                values = {k: row[k] for k in _FIELDS} | {k: v for k, v in changes.items() if k in _FIELDS}
                fence = validate(values)
                devices, groups = _ids(values["device_ids"]), _ids(values["group_ids"])
                await _check_references(conn, devices, groups)
                row = await _one(
                    conn,
                    "UPDATE geofences SET name = %s, kind = %s, geometry = %s, radius_m = %s, width_m = %s,"
                    " speed_limit_kmh = %s, device_ids = %s, group_ids = %s, attributes = %s,"
                    f" updated_at = {_NEXT_STAMP} WHERE id = %s RETURNING {_COLUMNS}",
                    (values["name"], fence.kind, Jsonb(fence.geometry), fence.radius_m, fence.width_m,
                     fence.speed_limit_kmh, devices, groups, Jsonb(fence.attributes), fence_id),
                )
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc
        assert row is not None
        return _geofence(row)

    async def delete(self, fence_id: int) -> None:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await lock_for_write(conn)
                cur = await conn.execute("DELETE FROM geofences WHERE id = %s", (fence_id,))
                if cur.rowcount == 0:
                    raise NotFound(f"geofence {fence_id}")
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def load_fences(self) -> builtins.list[ScopedFence]:
        """Every fence, built and validated, with the devices it applies to. Read ``version()``
        first: a change made in between then shows up as a newer version on the next check."""
        sql = (f"SELECT {_COLUMNS}, array(SELECT d.id FROM devices d WHERE d.group_id = ANY(g.group_ids))"
               " AS group_members FROM geofences g ORDER BY id")
        try:
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql.encode())
                rows = await cur.fetchall()
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc
        loaded = []
        for row in rows:
            members = row.pop("group_members")
            g = _geofence(row)
            loaded.append(ScopedFence(g.fence(), frozenset(g.device_ids), frozenset(g.group_ids),
                                      frozenset(g.device_ids) | frozenset(members)))
        return loaded

    async def version(self) -> tuple[Any, int]:
        """``(max(updated_at), count(*))``: differs after every committed change to the fences."""
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute("SELECT max(updated_at), count(*) FROM geofences")
                row = await cur.fetchone()
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc
        assert row is not None
        return row[0], int(row[1])

    async def _query(self, sql: str, params: tuple[Any, ...]) -> builtins.list[Geofence]:
        try:
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql.encode(), params)
                return [_geofence(r) for r in await cur.fetchall()]
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc
