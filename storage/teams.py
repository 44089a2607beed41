"""Teams: a name, a time zone, a weekly working calendar, policy settings, and their managers."""

from __future__ import annotations

import builtins
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from processors.team_policy import TeamPolicy
from storage.calendars import check_time_zone, check_working_hours
from storage.errors import Conflict, NotFound, StorageUnavailable


async def rows(pool: AsyncConnectionPool, sql: str, params: tuple[Any, ...] | dict[str, Any],
               *, conflict: str | None = None, missing: str | None = None) -> list[dict[str, Any]]:
    """Runs one statement; a unique violation becomes Conflict(conflict), a foreign key violation
    NotFound(missing), a lost database StorageUnavailable."""
    try:
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.encode(), params)
            return await cur.fetchall() if cur.description else []
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(conflict or "that already exists") from exc
    except psycopg.errors.ForeignKeyViolation as exc:
        raise NotFound(missing or "a referenced row") from exc
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Team:
    id: int
    name: str
    time_zone: str
    working_hours: dict[str, Any]
    settings: dict[str, Any]
    created_at: datetime
    manager_ids: builtins.list[int]


_SELECT = ("SELECT id, name, time_zone, working_hours, settings, created_at,"
           " array(SELECT user_id FROM team_managers m WHERE m.team_id = t.id ORDER BY user_id)"
           " AS manager_ids FROM teams t")
_FIELDS = ("name", "time_zone", "working_hours", "settings")


def _checked(changes: Mapping[str, Any]) -> dict[str, Any]:
    """ValueError for a bad calendar or zone; JSON fields wrapped for psycopg."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in _FIELDS:
            continue
        if key == "time_zone":
            value = check_time_zone(value)
        elif key == "working_hours":
            value = Jsonb(check_working_hours(value))
        elif key == "settings":
            if not isinstance(value, dict):
                raise ValueError("settings must be an object")
            TeamPolicy.from_settings(value)  # a bad policy is refused here, not met by a processor
            value = Jsonb(value)
        out[key] = value
    return out


class TeamStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(self, name: str, *, time_zone: str = "UTC",
                     working_hours: Mapping[str, Any] | None = None,
                     settings: Mapping[str, Any] | None = None) -> Team:
        values = _checked({"name": name, "time_zone": time_zone, "working_hours": dict(working_hours or {}),
                           "settings": dict(settings or {})})
        found = await rows(self.pool, "INSERT INTO teams (name, time_zone, working_hours, settings)"
                           " VALUES (%(name)s, %(time_zone)s, %(working_hours)s, %(settings)s) RETURNING id",
                           values, conflict=f"a team named {name!r} exists")
        return await self.get(found[0]["id"])

    async def get(self, team_id: int) -> Team:
        found = await rows(self.pool, _SELECT + " WHERE id = %s", (team_id,))
        if not found:
            raise NotFound(f"team {team_id}")
        return Team(**found[0])

    async def by_name(self, name: str) -> Team | None:
        found = await rows(self.pool, _SELECT + " WHERE name = %s", (name,))
        return Team(**found[0]) if found else None

    async def list(self, *, limit: int, after: int | None = None,
                   ids: Collection[int] | None = None) -> builtins.list[Team]:
        """By id, keyset-paginated; ``ids``: only these (None: every team)."""
        found = await rows(self.pool, _SELECT + " WHERE id > %(after)s"
                           " AND (%(ids)s::int8[] IS NULL OR id = ANY(%(ids)s::int8[]))"
                           " ORDER BY id LIMIT %(limit)s",
                           {"after": after or 0, "ids": None if ids is None else builtins.list(ids),
                            "limit": limit})
        return [Team(**r) for r in found]

    async def update(self, team_id: int, changes: Mapping[str, Any]) -> Team:
        values = _checked(changes)
        if values:
            sets = ", ".join(f"{k} = %({k})s" for k in values)
            found = await rows(self.pool, f"UPDATE teams SET {sets} WHERE id = %(id)s RETURNING id",
                               {**values, "id": team_id},
                               conflict=f"a team named {changes.get('name')!r} exists")
            if not found:
                raise NotFound(f"team {team_id}")
        return await self.get(team_id)

    async def delete(self, team_id: int) -> None:
        """Its reps stay, without a team; its customers too (the schema sets their team to null)."""
        if not await rows(self.pool, "DELETE FROM teams WHERE id = %s RETURNING id", (team_id,)):
            raise NotFound(f"team {team_id}")

    async def add_manager(self, team_id: int, user_id: int) -> None:
        """ValueError unless the user's role is manager; adding a manager twice is no change."""
        await self.get(team_id)
        user = await rows(self.pool, "SELECT role FROM users WHERE id = %s", (user_id,))
        if not user:
            raise NotFound(f"user {user_id}")
        if user[0]["role"] != "manager":
            raise ValueError(f"user {user_id} is a {user[0]['role']}; only managers manage teams")
        await rows(self.pool, "INSERT INTO team_managers (team_id, user_id) VALUES (%s, %s)"
                   " ON CONFLICT DO NOTHING",
                   (team_id, user_id), missing=f"team {team_id} or user {user_id}")

    async def remove_manager(self, team_id: int, user_id: int) -> None:
        if not await rows(self.pool, "DELETE FROM team_managers WHERE team_id = %s AND user_id = %s"
                          " RETURNING 1", (team_id, user_id)):
            raise NotFound(f"manager {user_id} of team {team_id}")
