"""Device rows and the in-memory directory the gateway resolves unique ids through."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from storage.errors import Conflict, NotFound, StorageUnavailable


@dataclass(frozen=True, slots=True)
class Device:
    id: int
    unique_id: str
    name: str
    protocol: str | None
    disabled: bool
    attributes: dict[str, Any]
    created_at: datetime


_SELECT = "SELECT id, unique_id, name, protocol, disabled, attributes, created_at FROM devices"


def _device(row: dict[str, Any]) -> Device:
    return Device(**row)


class DeviceStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(
        self, unique_id: str, name: str, protocol: str | None = None, attributes: dict[str, Any] | None = None
    ) -> Device:
        try:
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    "INSERT INTO devices (unique_id, name, protocol, attributes) VALUES (%s, %s, %s, %s)"
                    " RETURNING id, unique_id, name, protocol, disabled, attributes, created_at",
                    (unique_id, name, protocol, Jsonb(attributes or {})),
                )
                row = await cur.fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"a device with unique_id {unique_id!r} exists") from exc
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc
        assert row is not None
        return _device(row)

    async def get(self, device_id: int) -> Device:
        rows = await self._query(_SELECT + " WHERE id = %s", (device_id,))
        if not rows:
            raise NotFound(f"device {device_id}")
        return rows[0]

    async def by_unique_id(self, unique_id: str) -> Device | None:
        rows = await self._query(_SELECT + " WHERE unique_id = %s", (unique_id,))
        return rows[0] if rows else None

    async def page(self, limit: int, offset: int,
                   ids: Collection[int] | None = None) -> tuple[list[Device], int]:
        """``ids``: only these devices (None: every device)."""
        if ids is None:
            rows = await self._query(_SELECT + " ORDER BY id LIMIT %s OFFSET %s", (limit, offset))
            return rows, int(await self._scalar("SELECT count(*) FROM devices"))
        wanted = list(ids)
        rows = await self._query(_SELECT + " WHERE id = ANY(%s::int8[]) ORDER BY id LIMIT %s OFFSET %s",
                                 (wanted, limit, offset))
        total = await self._scalar("SELECT count(*) FROM devices WHERE id = ANY(%s::int8[])", (wanted,))
        return rows, int(total)

    async def all(self) -> list[Device]:
        return await self._query(_SELECT, ())

    async def update(self, device_id: int, changes: dict[str, Any]) -> Device:
        allowed = {"name", "protocol", "disabled", "attributes", "unique_id"}
        sets = {k: (Jsonb(v) if k == "attributes" else v) for k, v in changes.items() if k in allowed}
        if not sets:
            return await self.get(device_id)
        assignments = ", ".join(f"{k} = %s" for k in sets)
        try:
            rows = await self._query(
                f"UPDATE devices SET {assignments} WHERE id = %s"
                " RETURNING id, unique_id, name, protocol, disabled, attributes, created_at",
                (*sets.values(), device_id),
            )
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"a device with unique_id {changes.get('unique_id')!r} exists") from exc
        if not rows:
            raise NotFound(f"device {device_id}")
        return rows[0]

    async def delete(self, device_id: int) -> Device:
        rows = await self._query(
            "DELETE FROM devices WHERE id = %s"
            " RETURNING id, unique_id, name, protocol, disabled, attributes, created_at",
            (device_id,),
        )
        if not rows:
            raise NotFound(f"device {device_id}")
        return rows[0]

    async def _query(self, sql: str, params: tuple[Any, ...]) -> list[Device]:
        try:
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql.encode(), params)
                return [_device(r) for r in await cur.fetchall()] if cur.description else []
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def _scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(sql.encode(), params)
                row = await cur.fetchone()
                return row[0] if row else None
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc


class DeviceDirectory:
    """unique_id -> Device, cached so known devices keep reporting while the database is away.

    Misses are looked up (and negative answers remembered briefly, so a flood of unknown IMEIs
    does not hammer the database). The API calls ``forget`` after it changes a device.
    """

    def __init__(self, store: DeviceStore, negative_ttl_s: float = 10.0) -> None:
        self.store = store
        self.negative_ttl_s = negative_ttl_s
        self._known: dict[str, Device] = {}
        self._unknown: dict[str, float] = {}

    async def load(self) -> None:
        self._known = {d.unique_id: d for d in await self.store.all()}

    async def resolve(self, unique_id: str) -> Device | None:
        """The registered device, or None. Raises StorageUnavailable for an uncached id when
        the database is down (we cannot tell whether it is registered)."""
        device = self._known.get(unique_id)
        if device is not None:
            return device
        seen = self._unknown.get(unique_id)
        if seen is not None and time.monotonic() - seen < self.negative_ttl_s:
            return None
        device = await self.store.by_unique_id(unique_id)
        if device is None:
            self._unknown[unique_id] = time.monotonic()
            if len(self._unknown) > 100_000:
                self._unknown.clear()
            return None
        self._known[unique_id] = device
        return device

    def remember(self, device: Device) -> None:
        self._known[device.unique_id] = device
        self._unknown.pop(device.unique_id, None)

    def forget(self, unique_id: str) -> None:
        self._known.pop(unique_id, None)
        self._unknown.pop(unique_id, None)
