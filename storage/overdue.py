"""Customers overdue for a visit by their grade's cadence: the visit-frequency advice list.

A customer's cadence is ``TeamPolicy.from_settings(team.settings).visit_cadence_days[grade]`` of
the customer's team (a customer without a team, or whose team's settings cannot be read, gets the
default policy). A customer without a grade, or whose grade has no cadence, is never listed.

Overdue on ``as_of``: the last done visit (by anyone, on a day up to ``as_of``) is more than
``cadence_days`` days before it, or there is none. ``days_since = as_of - last_visit_day`` and
``days_overdue = days_since - cadence_days`` (a weekly customer seen 8 days ago is 1 day overdue;
seen 7 days ago it is due, not overdue).

Order (also the keyset of the pages): never-visited customers first, shortest cadence first (an A
nobody has seen before a C), then the most days overdue; ties by customer id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from processors.team_policy import TeamPolicy
from storage.customers import CustomerAccess
from storage.errors import StorageUnavailable

# (group, key, customer id): group 0 never visited (key: cadence days), 1 visited (key: -days overdue).
Cursor = tuple[int, int, int]
NO_TEAM = 0  # stands for "no team" in the cadence table (team ids start at 1)


@dataclass(frozen=True, slots=True)
class Overdue:
    customer_id: int
    name: str
    address: str | None
    latitude: float
    longitude: float
    grade: str
    team_id: int | None
    assigned_rep_id: int | None
    assigned_rep_name: str | None
    cadence_days: int
    last_visit_day: date | None
    days_since: int | None
    days_overdue: int | None
    cursor: Cursor


_LIST = """
WITH cadence AS (SELECT * FROM unnest(%(teams)s::int8[], %(grades)s::text[], %(days)s::int4[])
                 AS c(team_key, grade, days)),
seen AS (SELECT c.*, cad.days AS cadence_days,
                (SELECT max(v.day) FROM visits v WHERE v.customer_id = c.id AND v.status = 'done'
                 AND v.day <= %(as_of)s) AS last_visit_day
         FROM (SELECT * FROM customers WHERE {access}) c
         JOIN cadence cad ON cad.team_key = coalesce(c.team_id, 0) AND cad.grade = c.grade
         WHERE (%(team)s::int8 IS NULL OR c.team_id = %(team)s)
           AND (%(rep)s::int8 IS NULL OR c.assigned_rep_id = %(rep)s)
           AND (%(grade)s::text IS NULL OR c.grade = %(grade)s)),
late AS (SELECT s.*, %(as_of)s::date - s.last_visit_day AS days_since,
                CASE WHEN s.last_visit_day IS NULL THEN 0 ELSE 1 END AS sort_group,
                CASE WHEN s.last_visit_day IS NULL THEN s.cadence_days
                     ELSE s.cadence_days - (%(as_of)s::date - s.last_visit_day) END AS sort_key
         FROM seen s
         WHERE s.last_visit_day IS NULL OR %(as_of)s::date - s.last_visit_day > s.cadence_days)
SELECT l.id AS customer_id, l.name, l.address, l.latitude, l.longitude, l.grade, l.team_id,
       l.assigned_rep_id, u.name AS assigned_rep_name, l.cadence_days, l.last_visit_day, l.days_since,
       l.days_since - l.cadence_days AS days_overdue, l.sort_group, l.sort_key
FROM late l LEFT JOIN users u ON u.id = l.assigned_rep_id
WHERE (l.sort_group, l.sort_key, l.id) > (%(g)s, %(k)s, %(after)s)
ORDER BY l.sort_group, l.sort_key, l.id
LIMIT %(limit)s
"""


def cadence_table(settings_by_team: Mapping[int, Any]) -> list[tuple[int, str, int]]:
    """(team id or NO_TEAM, grade, days) for every team and for customers without a team."""
    rows = [(NO_TEAM, g, d) for g, d in TeamPolicy.from_settings(None).visit_cadence_days.items()]
    for team_id, settings in settings_by_team.items():
        try:
            policy = TeamPolicy.from_settings(settings)
        except ValueError:
            policy = TeamPolicy()  # saved before settings were checked: the documented defaults
        rows += [(team_id, g, d) for g, d in policy.visit_cadence_days.items()]
    return rows


async def overdue_customers(pool: AsyncConnectionPool, access: CustomerAccess, as_of: date, *,
                            team_id: int | None = None, rep_id: int | None = None, grade: str | None = None,
                            limit: int = 100, after: Cursor | None = None) -> list[Overdue]:
    cond, params = access.condition()
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur = await conn.execute("SELECT id, settings FROM teams")
            table = cadence_table(dict(await cur.fetchall()))
            g, k, last = after if after is not None else (-1, 0, 0)
            named = {"teams": [t for t, _, _ in table], "grades": [x for _, x, _ in table],
                     "days": [d for _, _, d in table], "as_of": as_of, "team": team_id, "rep": rep_id,
                     "grade": grade, "g": g, "k": k, "after": last, "limit": limit}
            # The access condition comes with positional parameters: name them for this query.
            access_sql, access_args = _named(cond, params)
            async with conn.cursor(row_factory=dict_row) as dcur:
                await dcur.execute(_LIST.format(access=access_sql).encode(), named | access_args)
                rows = await dcur.fetchall()
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc
    return [Overdue(**{k: v for k, v in r.items() if not k.startswith("sort_")},
                    cursor=(r["sort_group"], r["sort_key"], r["customer_id"])) for r in rows]


def _named(cond: str, params: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    parts = cond.split("%s")
    if len(parts) != len(params) + 1:
        raise ValueError("access condition and its parameters do not match")
    names = {f"access{i}": p for i, p in enumerate(params)}
    sql = parts[0] + "".join(f"%(access{i})s{part}" for i, part in enumerate(parts[1:]))
    return sql, names
