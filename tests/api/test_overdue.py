"""The overdue-customers list on the real database: cadences by grade from each team's settings,
last done visits put in by SQL, ordering, pages, and who sees which customers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.api.conftest import Api
from tests.api.people import World, call, world  # noqa: F401

AS_OF = date(2026, 11, 30)
DEFAULT = {"A": 7, "B": 14, "C": 30}
SOUTH = {"A": 3, "B": 10}  # no C: south's C customers have no cadence and are never listed

# name, team, grade, assigned rep ("1"/"2" of that team, None: unassigned), done visits (days before
# AS_OF; negative: after it), other visits (status, days before).
CUSTOMERS: list[tuple[str, str, str | None, str | None, list[int], list[tuple[str, int]]]] = [
    ("nA-late", "north", "A", "1", [10, 25], []),
    ("nA-due", "north", "A", "1", [7], []),  # exactly the cadence: due, not overdue
    ("nB-late", "north", "B", None, [20], [("missed", 1), ("approved", 2)]),  # only done visits count
    ("nC-late", "north", "C", "2", [40], []),
    ("nA-never", "north", "A", "1", [], [("missed", 3)]),
    ("nC-never", "north", "C", None, [], []),
    ("nA-future", "north", "A", "1", [30, -1], []),  # the visit after as_of does not count yet
    ("n-nograde", "north", None, None, [], []),
    ("nB-never", "north", "B", "2", [], []),
    ("sA-late", "south", "A", "1", [5], []),  # 2 days overdue at south's 3, not at the default 7
    ("sB-late", "south", "B", None, [12], []),
    ("sC-never", "south", "C", "1", [], []),
]


def expected(cadence: dict[str, dict[str, int]], ids: dict[str, int],
             seen: set[str] | None = None) -> list[tuple[str, int | None]]:
    """(name, days_overdue) in the documented order, computed from the table above."""
    out: list[tuple[tuple[int, int, int], str, int | None]] = []
    for name, team, grade, _, done, _ in CUSTOMERS:
        days = cadence[team].get(grade or "")
        if days is None or (seen is not None and name not in seen):
            continue
        past = [d for d in done if d >= 0]
        if not past:
            out.append(((0, days, ids[name]), name, None))
        elif min(past) > days:
            out.append(((1, -(min(past) - days), ids[name]), name, min(past) - days))
    return [(name, late) for _, name, late in sorted(out)]


async def setup(api: Api, w: World, south_cadence: dict[str, int]) -> dict[str, int]:
    await call(api, "PATCH", f"/api/teams/{w.teams['south']}", json={"settings": {
        "visit_cadence_days": south_cadence}})
    ids = {}
    for name, team, grade, rep, done, other in CUSTOMERS:
        rep_id = w.reps[f"{team}-{rep}"].id if rep else None
        body = {"name": name, "latitude": 52.0, "longitude": 4.0, "team_id": w.teams[team], "grade": grade,
                "assigned_rep_id": rep_id}
        ids[name] = (await call(api, "POST", "/api/customers", expect=201, json=body))["id"]
        visitor = w.reps[f"{team}-1"].id
        async with api.pool.connection() as conn:
            for status, before in [("done", d) for d in done] + other:
                await conn.execute("INSERT INTO visits (customer_id, rep_id, day, status)"
                                   " VALUES (%s, %s, %s, %s)",
                                   (ids[name], visitor, AS_OF - timedelta(days=before), status))
    return ids


async def listed(api: Api, token: str | None = None, **params: Any) -> list[dict[str, Any]]:
    items, after = [], None
    while True:
        query = {"as_of": AS_OF.isoformat(), **params, **({"after": after} if after else {})}
        page = await call(api, "GET", "/api/analytics/overdue", token, params=query)
        assert page["as_of"] == AS_OF.isoformat()
        items += page["items"]
        after = page["next_after"]
        if after is None:
            return items


async def test_order_and_cadence_by_team(api: Api, world: World) -> None:  # noqa: F811
    ids = await setup(api, world, SOUTH)
    cadence = {"north": DEFAULT, "south": SOUTH}
    items = await listed(api, limit=1000)
    assert [(i["name"], i["days_overdue"]) for i in items] == expected(cadence, ids)
    by_name = {i["name"]: i for i in items}
    late = by_name["nA-late"]
    assert (late["last_visit_day"], late["days_since"], late["cadence_days"], late["days_overdue"]) == (
        (AS_OF - timedelta(days=10)).isoformat(), 10, 7, 3)
    assert late["assigned_rep_id"] == world.reps["north-1"].id and late["assigned_rep_name"] == "north-rep1"
    assert by_name["nA-future"]["days_since"] == 30
    assert by_name["sA-late"]["cadence_days"] == 3 and by_name["sA-late"]["days_overdue"] == 2
    assert by_name["nA-never"]["last_visit_day"] is None and by_name["nA-never"]["days_since"] is None
    assert {"nA-due", "n-nograde", "sC-never"}.isdisjoint(by_name)
    # Pages of 2 give the same list.
    assert [i["customer_id"] for i in await listed(api, limit=2)] == [i["customer_id"] for i in items]
    assert [i["name"] for i in await listed(api, grade="A")] == [
        n for n, _ in expected(cadence, ids) if n.startswith(("nA", "sA"))]
    # The team goes back to the default cadence: its A and B are no longer late, its C now has one.
    await call(api, "PATCH", f"/api/teams/{world.teams['south']}", json={"settings": {}})
    again = await listed(api, team=world.teams["south"])
    assert [i["name"] for i in again] == [n for n, _ in expected({"north": {}, "south": DEFAULT}, ids)] == [
        "sC-never"]
    assert again[0]["cadence_days"] == 30


async def test_who_sees_which_customers(api: Api, world: World) -> None:  # noqa: F811
    ids = await setup(api, world, SOUTH)
    cadence = {"north": DEFAULT, "south": SOUTH}
    rep = world.reps["north-1"]
    # A rep: customers assigned to them and their team's unassigned ones.
    mine = {n for n, team, _, r, _, _ in CUSTOMERS if team == "north" and r in ("1", None)}
    assert [i["name"] for i in await listed(api, rep.token)] == [n for n, _ in expected(cadence, ids, mine)]
    await call(api, "GET", "/api/analytics/overdue", rep.token, expect=404,
               params={"rep": world.reps["north-2"].id})
    await call(api, "GET", "/api/analytics/overdue", rep.token, expect=404,
               params={"team": world.teams["south"]})
    boss = world.managers["south"]
    south = {n for n, team, *_ in CUSTOMERS if team == "south"}
    assert [i["name"] for i in await listed(api, boss.token)] == [n for n, _ in expected(cadence, ids, south)]
    for params in ({"team": world.teams["north"]}, {"rep": rep.id}, {"team": 99999}):
        r = await api.client.get("/api/analytics/overdue", headers=api.auth(boss.token), params=params)
        assert r.status_code == 404 and r.json()["error"] == "not_found", params
    north_boss = world.managers["north"]
    theirs = await listed(api, north_boss.token, rep=world.reps["north-2"].id)
    assert [i["name"] for i in theirs] == [n for n, _ in expected(cadence, ids, {"nC-late", "nB-never"})]


async def test_bad_input(api: Api) -> None:
    for params in ({"after": "!!!"}, {"after": "MTox"}, {"as_of": "2026-13-01"}, {"limit": 0},
                   {"as_of": "0001-01-01"}, {"team": "x"}):
        r = await api.client.get("/api/analytics/overdue", headers=api.auth(), params=params)
        assert r.status_code == 422 and r.json()["error"] == "invalid", (params, r.text)
    page = await call(api, "GET", "/api/analytics/overdue")
    assert page == {"as_of": datetime.now(UTC).date().isoformat(), "items": [], "next_after": None}
