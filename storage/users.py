"""People: users with a role and a team, their own working calendar, the devices they carry, and
their API tokens. Teams are in storage.teams (re-exported here).

There are no passwords: people sign in with API tokens only (``users.password_hash`` stays null).
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from storage.calendars import check_time_zone, check_working_hours
from storage.errors import Conflict, NotFound, StorageUnavailable
from storage.teams import Team, TeamStore, rows
from storage.tokens import TokenInfo, TokenStore, new_token

__all__ = ["ROLES", "Team", "TeamStore", "User", "UserStore"]

ROLES = ("admin", "manager", "rep")


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    email: str | None
    role: str
    team_id: int | None
    working_hours: dict[str, Any] | None = None
    time_zone: str | None = None
    disabled: bool = False
    created_at: datetime | None = None
    device_ids: builtins.list[int] | None = None
    managed_team_ids: builtins.list[int] | None = None


_SELECT = ("SELECT id, name, email, role, team_id, working_hours, time_zone, disabled, created_at,"
           " array(SELECT device_id FROM user_devices d WHERE d.user_id = u.id ORDER BY device_id)"
           " AS device_ids,"
           " array(SELECT team_id FROM team_managers m WHERE m.user_id = u.id ORDER BY team_id)"
           " AS managed_team_ids FROM users u")
_FIELDS = ("name", "email", "role", "team_id", "working_hours", "time_zone", "disabled")


def normal_email(email: str | None) -> str | None:
    """Compared without case (the unique index is on the stored, lower-cased form)."""
    return None if email is None else email.strip().lower()


def _checked(changes: Mapping[str, Any]) -> dict[str, Any]:
    """ValueError for a bad role, calendar or zone; null calendar and zone mean "the team's"."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in _FIELDS:
            continue
        if key == "role" and value not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if key == "email":
            value = normal_email(value)
        elif key == "time_zone" and value is not None:
            value = check_time_zone(value)
        elif key == "working_hours" and value is not None:
            value = Jsonb(check_working_hours(value))
        out[key] = value
    return out


class UserStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(self, name: str, role: str, *, email: str | None = None, team_id: int | None = None,
                     working_hours: Mapping[str, Any] | None = None, time_zone: str | None = None) -> User:
        values = _checked({"name": name, "email": email, "role": role, "team_id": team_id,
                           "working_hours": None if working_hours is None else dict(working_hours),
                           "time_zone": time_zone})
        found = await rows(self.pool,
                           "INSERT INTO users (name, email, role, team_id, working_hours, time_zone)"
                           " VALUES (%(name)s, %(email)s, %(role)s, %(team_id)s, %(working_hours)s,"
                           " %(time_zone)s) RETURNING id", values,
                           conflict=f"a user with email {values['email']!r} exists",
                           missing=f"team {team_id}")
        return await self.get(found[0]["id"])

    async def get(self, user_id: int) -> User:
        found = await rows(self.pool, _SELECT + " WHERE id = %s", (user_id,))
        if not found:
            raise NotFound(f"user {user_id}")
        return User(**found[0])

    async def list(self, *, limit: int, after: int | None = None, ids: Collection[int] | None = None,
                   team_id: int | None = None, role: str | None = None) -> builtins.list[User]:
        """By id, keyset-paginated; ``ids``: only these (None: everyone); team and role filter."""
        id_list = None if ids is None else builtins.list(ids)
        found = await rows(self.pool, _SELECT + " WHERE id > %(after)s"
                           " AND (%(ids)s::int8[] IS NULL OR id = ANY(%(ids)s::int8[]))"
                           " AND (%(team)s::int8 IS NULL OR team_id = %(team)s::int8)"
                           " AND (%(role)s::text IS NULL OR role = %(role)s::text)"
                           " ORDER BY id LIMIT %(limit)s",
                           {"after": after or 0, "ids": id_list, "team": team_id, "role": role,
                            "limit": limit})
        return [User(**r) for r in found]

    async def update(self, user_id: int, changes: Mapping[str, Any]) -> User:
        values = _checked(changes)
        if values:
            sets = ", ".join(f"{k} = %({k})s" for k in values)
            found = await rows(self.pool, f"UPDATE users SET {sets} WHERE id = %(id)s RETURNING id",
                               {**values, "id": user_id},
                               conflict=f"a user with email {values.get('email')!r} exists",
                               missing=f"team {values.get('team_id')}")
            if not found:
                raise NotFound(f"user {user_id}")
        return await self.get(user_id)

    async def delete(self, user_id: int) -> None:
        """Their tokens and device links go with them; customers assigned to them become unassigned."""
        if not await rows(self.pool, "DELETE FROM users WHERE id = %s RETURNING id", (user_id,)):
            raise NotFound(f"user {user_id}")

    async def device_carrier(self, device_id: int) -> int | None:
        """The user who carries the device, or None. NotFound for an unknown device."""
        found = await rows(self.pool, "SELECT d.id, ud.user_id FROM devices d"
                           " LEFT JOIN user_devices ud ON ud.device_id = d.id WHERE d.id = %s", (device_id,))
        if not found:
            raise NotFound(f"device {device_id}")
        carrier: int | None = found[0]["user_id"]
        return carrier

    async def link_device(self, user_id: int, device_id: int) -> None:
        """The user carries the device from now on. Conflict while another user carries it (a device
        is carried by one person at a time: unlink it first); linking it again is no change."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                # The user row is locked so a concurrent delete cannot slip between check and insert.
                cur = await conn.execute("SELECT 1 FROM users WHERE id = %s FOR SHARE", (user_id,))
                if await cur.fetchone() is None:
                    raise NotFound(f"user {user_id}")
                cur = await conn.execute("SELECT ud.user_id FROM devices d LEFT JOIN user_devices ud"
                                         " ON ud.device_id = d.id WHERE d.id = %s FOR SHARE OF d",
                                         (device_id,))
                row = await cur.fetchone()
                if row is None:
                    raise NotFound(f"device {device_id}")
                if row[0] is not None and row[0] != user_id:
                    raise Conflict(f"device {device_id} is carried by another user; unlink it first")
                await conn.execute("INSERT INTO user_devices (user_id, device_id) VALUES (%s, %s)"
                                   " ON CONFLICT (user_id, device_id) DO NOTHING", (user_id, device_id))
        except psycopg.errors.UniqueViolation as exc:  # a concurrent link of the same device won
            raise Conflict(f"device {device_id} is carried by another user; unlink it first") from exc
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def unlink_device(self, user_id: int, device_id: int) -> None:
        if not await rows(self.pool, "DELETE FROM user_devices WHERE user_id = %s AND device_id = %s"
                          " RETURNING 1", (user_id, device_id)):
            raise NotFound(f"device {device_id} of user {user_id}")

    async def issue_token(self, user_id: int, name: str) -> tuple[TokenInfo, str]:
        """A new token for the user: its record and the secret, which is not stored and so is
        shown only this once. Conflict for a disabled user (the token would not work)."""
        user = await self.get(user_id)
        if user.disabled:
            raise Conflict(f"user {user_id} is disabled; enable them first")
        secret = new_token()
        tokens = TokenStore(self.pool)
        token_id = await tokens.add(secret, name, user.role, user_id)
        return await tokens.get(token_id), secret
