"""What a caller may see: the one place that turns a token into the people, teams and devices in
its reach. Every route that reads people's data asks here.

- admin (a user or a system token): everything.
- manager: the reps of the teams they manage (``team_managers``) and themselves, those reps'
  devices and their own, those teams (and their own team, read only).
- rep: themselves, their own devices, their own team (read only: its name and calendar).
- a manager or rep token that belongs to no user (``fieldtrack token --role rep``): nothing.

A device no rep carries is therefore visible to admins only. An id the caller may not see is
answered exactly like an id that does not exist (404 "device 7 not found", or filtered out of a
list where an unknown id would be), so a rep cannot probe which ids exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

import psycopg
from fastapi import Depends, HTTPException
from psycopg_pool import AsyncConnectionPool

from api.deps import Caller, Deps
from storage.errors import NotFound, StorageUnavailable
from storage.tokens import TokenOwner

_EMPTY: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Scope:
    """``everything``: the id sets are not consulted (they are empty). ``team_ids``: teams whose
    team-level records the caller may read; ``managed_team_ids``: teams the caller acts for as
    their manager (link devices, set calendars, their customers)."""

    everything: bool
    user_ids: frozenset[int] = _EMPTY
    team_ids: frozenset[int] = _EMPTY
    device_ids: frozenset[int] = _EMPTY
    user_id: int | None = None
    role: str = "rep"
    managed_team_ids: frozenset[int] = _EMPTY

    @property
    def is_admin(self) -> bool:
        return self.everything

    def devices_filter(self) -> frozenset[int] | None:
        """For SQL: None means "every device", otherwise exactly these ids."""
        return None if self.everything else self.device_ids

    def users_filter(self) -> frozenset[int] | None:
        return None if self.everything else self.user_ids

    def teams_filter(self) -> frozenset[int] | None:
        return None if self.everything else self.team_ids


EVERYTHING = Scope(everything=True, role="admin")

# One round trip: the caller's own team, the teams they manage, the reps of those teams, and
# the devices those people carry.
_SCOPE_SQL = """
WITH me AS (SELECT id, role, team_id FROM users WHERE id = %(user)s AND NOT disabled),
managed AS (SELECT tm.team_id FROM team_managers tm JOIN me ON me.id = tm.user_id
            WHERE me.role = 'manager'),
people AS (SELECT id FROM me
           UNION SELECT u.id FROM users u JOIN managed m ON m.team_id = u.team_id WHERE u.role = 'rep')
SELECT (SELECT team_id FROM me),
       array(SELECT team_id FROM managed),
       array(SELECT id FROM people),
       array(SELECT ud.device_id FROM user_devices ud JOIN people p ON p.id = ud.user_id)
"""


async def scope_of(owner: TokenOwner, pool: AsyncConnectionPool) -> Scope:
    if owner.role == "admin":
        return Scope(everything=True, user_id=owner.user_id, role="admin")
    if owner.user_id is None:
        return Scope(everything=False, role=owner.role)
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(_SCOPE_SQL.encode(), {"user": owner.user_id})
            row = await cur.fetchone()
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc
    assert row is not None
    own_team, managed, people, devices = row
    managed_ids = frozenset(managed)
    return Scope(everything=False, user_ids=frozenset(people),
                 team_ids=managed_ids | ({own_team} if own_team is not None else set()),
                 device_ids=frozenset(devices), user_id=owner.user_id, role=owner.role,
                 managed_team_ids=managed_ids)


def can_see_device(scope: Scope, device_id: int) -> bool:
    return scope.everything or device_id in scope.device_ids


def can_see_user(scope: Scope, user_id: int) -> bool:
    return scope.everything or user_id in scope.user_ids


def can_see_team(scope: Scope, team_id: int) -> bool:
    """Read the team's own record (name, calendar, settings)."""
    return scope.everything or team_id in scope.team_ids


def can_manage_team(scope: Scope, team_id: int | None) -> bool:
    """Act as the team's manager: admins, and managers of that team."""
    return scope.everything or (team_id is not None and team_id in scope.managed_team_ids)


def require_device(scope: Scope, device_id: int) -> None:
    """NotFound (404, the same answer as for an unknown id) unless the caller may see it."""
    if not can_see_device(scope, device_id):
        raise NotFound(f"device {device_id}")


def require_devices(scope: Scope, device_ids: Iterable[int]) -> None:
    hidden = sorted({x for x in device_ids if not can_see_device(scope, x)})
    if hidden:
        raise NotFound(", ".join(f"device {x}" for x in hidden))


def require_user(scope: Scope, user_id: int) -> None:
    if not can_see_user(scope, user_id):
        raise NotFound(f"user {user_id}")


def require_team(scope: Scope, team_id: int) -> None:
    if not can_see_team(scope, team_id):
        raise NotFound(f"team {team_id}")


def visible_devices(scope: Scope, requested: Iterable[int] | None) -> list[int] | None:
    """A device filter narrowed to what the caller sees (unseen ids drop out, as unknown ids
    would); None: every device (admins asking for no filter)."""
    if requested is None:
        return None if scope.everything else sorted(scope.device_ids)
    wanted = set(requested)
    return sorted(wanted if scope.everything else wanted & scope.device_ids)


async def visible(owner: Caller, d: Deps) -> Scope:
    return await scope_of(owner, d.db())


async def manager_or_admin(scope: Annotated[Scope, Depends(visible)]) -> Scope:
    """Admins, and managers who are a user (a system manager token manages nothing)."""
    if not scope.everything and not (scope.role == "manager" and scope.user_id is not None):
        raise HTTPException(403, "this needs an admin or a manager token")
    return scope


Visible = Annotated[Scope, Depends(visible)]
ManagerOrAdmin = Annotated[Scope, Depends(manager_or_admin)]
