"""A customer's timeline through the API: every kind of entry, newest first, pages, and who sees what."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tests.api.conftest import Api
from tests.api.people import call
from tests.api.test_visit_reports import SHOP, Company, company, jpeg, new_visit, photo_parts

__all__ = ["company"]  # the fixture, used here too


def t(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, minute, tzinfo=UTC)


async def sql(api: Api, statement: str, *params: Any) -> None:
    async with api.pool.connection() as conn:
        await conn.execute(statement.encode(), params)


async def story(api: Api, c: Company) -> dict[str, int]:
    """Three visits at the north shop (two by north-1, one by north-2) and one at the south shop."""
    north, shop = c.teams["north"], c.shops["north"]
    r1, r2 = c.reps["north-1"], c.reps["north-2"]
    v1 = await new_visit(api, shop, r1.id, north, created_at=t(4, 10), checkin_at=t(5, 7),
                         checkout_at=t(5, 7, 40), reviewed_at=t(4, 12), reviewed_by=c.managers["north"].id,
                         detected_start=t(5, 6, 55), detected_end=t(5, 7, 45))
    # Planned at the very time of v1's check-in: the tie is broken by the entries' keys.
    v2 = await new_visit(api, shop, r2.id, north, status="missed", checkin_at=None, checkout_at=None,
                         created_at=t(5, 7))
    await sql(api, "UPDATE visits SET updated_at = %s WHERE id = %s", t(5, 22), v2)
    v3 = await new_visit(api, shop, r1.id, north, status="cancelled", checkin_at=None, checkout_at=None,
                         created_at=t(6, 8))
    await sql(api, "UPDATE visits SET updated_at = %s WHERE id = %s", t(6, 9), v3)
    south = await new_visit(api, c.shops["south"], c.reps["south-1"].id, c.teams["south"], status="approved",
                            checkin_at=None, checkout_at=None, created_at=t(5, 8))
    for accepted, at, reason in ((False, t(5, 6, 50), "too_far"), (True, t(5, 7), None)):
        await sql(api, "INSERT INTO checkin_attempts (visit_id, user_id, kind, at, latitude, longitude,"
                       " accepted, reason) VALUES (%s, %s, 'checkin', %s, %s, %s, %s, %s)",
                  v1, r1.id, at, SHOP[0] + 0.01, SHOP[1], accepted, reason)
    await call(api, "PUT", f"/api/visits/{v1}/report", r1.token,
               data={"report": json.dumps({"answers": {}, "notes": "fine"})}, files=photo_parts(jpeg(31)))
    await sql(api, "UPDATE visit_reports SET submitted_at = %s WHERE visit_id = %s", t(5, 7, 45), v1)
    await sql(api, "UPDATE visit_photos SET uploaded_at = %s WHERE visit_id = %s", t(5, 7, 42), v1)
    await call(api, "POST", f"/api/visits/{south}/photos", c.reps["south-1"].token, expect=201,
               files=photo_parts(jpeg(32)))
    return {"v1": v1, "v2": v2, "v3": v3}


def expected(v: dict[str, int]) -> list[tuple[str, str, int]]:
    """Everything at the north shop, newest first, as (time, type, visit)."""
    return [
        ("2026-10-06T09:00:00Z", "visit_cancelled", v["v3"]),
        ("2026-10-06T08:00:00Z", "visit_planned", v["v3"]),
        ("2026-10-05T22:00:00Z", "visit_missed", v["v2"]),
        ("2026-10-05T07:45:00Z", "report", v["v1"]),
        ("2026-10-05T07:42:00Z", "photo", v["v1"]),
        ("2026-10-05T07:40:00Z", "checked_out", v["v1"]),
        # Same time: v2's plan (key v2 × 16 + 0) sorts before v1's check-in (v1 × 16 + 2) as v2 > v1.
        ("2026-10-05T07:00:00Z", "visit_planned", v["v2"]),
        ("2026-10-05T07:00:00Z", "checked_in", v["v1"]),
        ("2026-10-05T06:55:00Z", "presence_detected", v["v1"]),
        ("2026-10-05T06:50:00Z", "checkin_refused", v["v1"]),
        ("2026-10-04T12:00:00Z", "visit_approved", v["v1"]),
        ("2026-10-04T10:00:00Z", "visit_planned", v["v1"]),
    ]


async def entries(api: Api, customer: int, token: str | None = None, limit: int = 500
                  ) -> list[dict[str, Any]]:
    """Every page, followed through next_after."""
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        page = await call(api, "GET", f"/api/customers/{customer}/timeline", token, params=params)
        assert len(page["items"]) <= limit
        out += page["items"]
        if page["next_after"] is None:
            return out
        params["after"] = page["next_after"]


def short(items: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(e["time"].replace("+00:00", "Z"), e["type"], e["visit_id"]) for e in items]


async def test_timeline_lists_everything_newest_first(api: Api, company: Company) -> None:
    v = await story(api, company)
    shop = company.shops["north"]
    manager = await entries(api, shop, company.managers["north"].token)
    assert short(manager) == expected(v)
    assert short(await entries(api, shop)) == expected(v)  # admin
    refused = next(e for e in manager if e["type"] == "checkin_refused")
    assert refused["detail"]["reason"] == "too_far" and refused["rep_id"] == company.reps["north-1"].id
    report = next(e for e in manager if e["type"] == "report")
    assert report["detail"]["notes"] == "fine"
    photo = next(e for e in manager if e["type"] == "photo")
    assert photo["detail"]["flags"] == ["no_exif"]


async def test_timeline_pages_in_order_across_ties(api: Api, company: Company) -> None:
    v = await story(api, company)
    shop, token = company.shops["north"], company.managers["north"].token
    for limit in (1, 2, 5):
        assert short(await entries(api, shop, token, limit=limit)) == expected(v)
    first = await call(api, "GET", f"/api/customers/{shop}/timeline", token, params={"limit": 5})
    assert len(first["items"]) == 5 and first["next_after"] is not None
    await call(api, "GET", f"/api/customers/{shop}/timeline", token, expect=422, params={"after": "bogus!"})
    await call(api, "GET", f"/api/customers/{shop}/timeline", token, expect=422, params={"limit": 0})


async def test_reps_see_their_own_visits_and_other_teams_nothing(api: Api, company: Company) -> None:
    v = await story(api, company)
    shop = company.shops["north"]
    own = [e for e in expected(v) if e[2] != v["v2"] and e[1] != "checkin_refused"]
    assert short(await entries(api, shop, company.reps["north-1"].token)) == own
    assert short(await entries(api, shop, company.reps["north-2"].token)) == [
        e for e in expected(v) if e[2] == v["v2"]]
    await call(api, "GET", f"/api/customers/{shop}/timeline", company.managers["south"].token, expect=404)
    await call(api, "GET", f"/api/customers/{shop}/timeline", company.reps["south-1"].token, expect=404)
    await call(api, "GET", "/api/customers/987654/timeline", expect=404)
    south = await entries(api, company.shops["south"], company.managers["south"].token)
    assert [e["type"] for e in south] == ["photo", "visit_planned"]
