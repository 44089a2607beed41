"""Visit plans, approval and check-in / check-out over the API on the real database. Tracks that
matter are stored with insert_rows and processed by the real ProcessingRunner; distances expected
are computed by a haversine written here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.processing import ProcessingRunner
from protocols.model import Position
from storage.rows import StoredPosition
from storage.visit_detect import reconcile_rep
from storage.writer import insert_rows
from tests.api.conftest import Api
from tests.api.people import Person, World, call, world

__all__ = ["world"]  # the fixture, used by name

R = 6_371_008.8
SHOP = (52.3702, 4.8952)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")  # the world's teams' zone; the reps have none of their own


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * R * math.asin(math.sqrt(a))


def north(metres: float) -> tuple[float, float]:
    return SHOP[0] + math.degrees(metres / R), SHOP[1]


def fix(at: datetime, metres: float = 40.0, **extra: Any) -> dict[str, Any]:
    lat, lon = north(metres)
    return {"latitude": lat, "longitude": lon, "fix_time": at.isoformat(), "accuracy_m": 12.0, **extra}


def local_day(at: datetime) -> str:
    return at.astimezone(AMSTERDAM).date().isoformat()


async def customer(api: Api, w: World, team: str = "north") -> int:
    """Unassigned customer of the team: both of its reps see it."""
    created = await call(api, "POST", "/api/customers", expect=201,
                         json={"name": f"shop {team}", "latitude": SHOP[0], "longitude": SHOP[1],
                               "team_id": w.teams[team]})
    return int(created["id"])


async def plan(api: Api, token: str, customer_id: int, day: str, expect: int = 201, **extra: Any) -> Any:
    return await call(api, "POST", "/api/visits", token, expect=expect,
                      json={"customer_id": customer_id, "day": day, **extra})


async def tracker(api: Api, person: Person, name: str, points: list[tuple[datetime, float, float]],
                  noisy: Sequence[tuple[datetime, float, float]] = ()) -> int:
    """A vehicle tracker the rep carries, with these (time, lat, lon) positions stored and processed;
    ``noisy`` ones report 900 m accuracy, which the processors' filter marks (filtered = accuracy)."""
    dev = await call(api, "POST", "/api/devices", expect=201, json={"unique_id": name, "name": name})
    await call(api, "PUT", f"/api/users/{person.id}/devices/{dev['id']}", expect=204)
    rows = [StoredPosition(dev["id"], name, "test", datetime.now(UTC),
                           Position(fix_time=t, latitude=lat, longitude=lon, speed_kmh=0.0,
                                    accuracy_m=900.0 if (t, lat, lon) in noisy else 5.0))
            for t, lat, lon in sorted([*points, *noisy])]
    async with api.pool.connection() as conn:
        await insert_rows(conn, rows)
    await ProcessingRunner(api.pool).process(dev["id"])
    async with api.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FILTER (WHERE filtered IS NULL),"
                                 " count(*) FILTER (WHERE filtered IS NOT NULL) FROM positions"
                                 " WHERE device_id = %s", (dev["id"],))
        row = await cur.fetchone()
    # Otherwise the processors judged the positions differently than the test means them.
    assert row == (len(points), len(noisy))
    return int(dev["id"])


async def test_plan_approve_reject_cancel(api: Api, world: World) -> None:
    w = world
    rep, rep2 = w.reps["north-1"], w.reps["north-2"]
    boss, other_boss = w.managers["north"], w.managers["south"]
    shop, south_shop = await customer(api, w), await customer(api, w, "south")
    day = "2026-12-10"

    r = await api.client.post("/api/visits", headers=api.auth(rep.token),
                              json={"customer_id": shop, "day": day, "purpose": "demo"})
    assert r.status_code == 201, r.text
    v = r.json()
    assert r.headers["Location"] == f"/api/visits/{v['id']}"
    assert (v["status"], v["rep_id"], v["team_id"], v["created_by"]) == ("planned", rep.id, w.teams["north"],
                                                                         rep.id)

    await call(api, "POST", f"/api/visits/{v['id']}/approve", rep.token, expect=403)
    await call(api, "POST", f"/api/visits/{v['id']}/approve", other_boss.token, expect=404)
    await call(api, "GET", f"/api/visits/{v['id']}", other_boss.token, expect=404)
    await call(api, "GET", f"/api/visits/{v['id']}", rep2.token, expect=404)
    approved = await call(api, "POST", f"/api/visits/{v['id']}/approve", boss.token)
    assert (approved["status"], approved["reviewed_by"]) == ("approved", boss.id)
    again = await call(api, "POST", f"/api/visits/{v['id']}/approve", boss.token, expect=409)
    assert "approved" in again["detail"]
    assert (await call(api, "POST", f"/api/visits/{v['id']}/cancel", rep.token, expect=403))["error"] == \
        "forbidden"

    # A rep moving an approved visit sends it back for approval.
    moved = await call(api, "PATCH", f"/api/visits/{v['id']}", rep.token, json={"day": "2026-12-11"})
    assert (moved["day"], moved["status"], moved["purpose"]) == ("2026-12-11", "planned", "demo")

    second = await plan(api, rep.token, shop, day)
    await call(api, "POST", f"/api/visits/{second['id']}/reject", boss.token, expect=422, json={})
    await call(api, "POST", f"/api/visits/{second['id']}/reject", boss.token, expect=422, json={"note": " "})
    rejected = await call(api, "POST", f"/api/visits/{second['id']}/reject", boss.token,
                          json={"note": "visit them next week"})
    assert (rejected["status"], rejected["review_note"]) == ("rejected", "visit them next week")
    await call(api, "POST", f"/api/visits/{second['id']}/cancel", boss.token, expect=409)
    await call(api, "PATCH", f"/api/visits/{second['id']}", rep.token, expect=409, json={"purpose": "x"})

    third = await plan(api, rep.token, shop, day)
    cancelled = await call(api, "POST", f"/api/visits/{third['id']}/cancel", rep.token)
    assert cancelled["status"] == "cancelled"
    await call(api, "POST", f"/api/visits/{third['id']}/approve", boss.token, expect=409)

    by_boss = await plan(api, boss.token, shop, day, rep_id=rep2.id,
                         window_start="2026-12-10T09:00:00+01:00", window_end="2026-12-10T10:00:00+01:00")
    assert (by_boss["status"], by_boss["rep_id"]) == ("approved", rep2.id)
    assert (await call(api, "POST", f"/api/visits/{by_boss['id']}/cancel", boss.token,
                       json={"note": "closed"}))["status"] == "cancelled"

    # Who may plan for whom, and what they must see.
    await plan(api, rep.token, shop, day, expect=403, rep_id=rep2.id)
    bad = await plan(api, boss.token, shop, day, expect=422, rep_id=w.reps["south-1"].id)
    assert bad["detail"][0]["where"] == "body.rep_id"
    bad = await plan(api, rep.token, south_shop, day, expect=422)
    assert bad["detail"][0]["where"] == "body.customer_id"
    await plan(api, boss.token, shop, day, expect=422)  # a manager must name the rep
    bad = await plan(api, rep.token, shop, day, expect=422,
                     window_start="2026-12-10T10:00:00+01:00", window_end="2026-12-10T09:00:00+01:00")
    assert bad["detail"][0]["where"] == "body.window_end"
    bad = await plan(api, rep.token, shop, day, expect=422, window_start="2026-12-14T10:00:00+01:00")
    assert bad["detail"][0]["where"] == "body.window_start"
    await plan(api, rep.token, shop, day, expect=422, window_start="2026-12-10T10:00:00")  # no zone
    await plan(api, rep.token, shop, "2026-13-01", expect=422)

    # Lists: the rep sees their own, the other team's manager none; pages walk by (day, id).
    mine = await call(api, "GET", "/api/visits", rep.token)
    assert [x["id"] for x in mine["items"]] == [second["id"], third["id"], v["id"]]  # day 10, 10, 11
    assert (await call(api, "GET", "/api/visits", other_boss.token))["items"] == []
    seen, after = [], None
    while True:
        page = await call(api, "GET", "/api/visits", boss.token,
                          params={"limit": 2, **({"after": after} if after else {})})
        seen += [x["id"] for x in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == [second["id"], third["id"], by_boss["id"], v["id"]]
    only = await call(api, "GET", "/api/visits", boss.token, params={"status": "cancelled", "rep_id": rep.id})
    assert [x["id"] for x in only["items"]] == [third["id"]]
    await call(api, "GET", "/api/visits", boss.token, expect=422, params={"after": "nonsense"})
    await call(api, "GET", "/api/visits/999999", boss.token, expect=404)


async def test_checkin_checkout_and_dwell(api: Api, world: World) -> None:
    w = world
    rep, boss = w.reps["north-1"], w.managers["north"]
    shop = await customer(api, w)
    now = datetime.now(UTC)
    checkin_at, checkout_at = now - timedelta(seconds=60), now - timedelta(seconds=5)
    v = await plan(api, rep.token, shop, local_day(checkin_at))
    # The rep's vehicle is parked 25 m from the shop around the check-in: the track agrees.
    lat, lon = north(25)
    van = await tracker(api, rep, "van-1", [(checkin_at + timedelta(seconds=s), lat, lon)
                                            for s in (-120, -60, 30)])

    await call(api, "POST", f"/api/visits/{v['id']}/checkout", rep.token, expect=409, json=fix(checkout_at))
    await call(api, "POST", f"/api/visits/{v['id']}/checkin", boss.token, expect=403, json=fix(checkin_at))
    await call(api, "POST", f"/api/visits/{v['id']}/checkin", w.reps["north-2"].token, expect=404,
               json=fix(checkin_at))
    await call(api, "POST", "/api/visits/999999/checkin", rep.token, expect=404, json=fix(checkin_at))
    bad = await call(api, "POST", f"/api/visits/{v['id']}/checkin", rep.token, expect=422,
                     json={**fix(checkin_at), "latitude": 91})
    assert bad["detail"][0]["where"] == "body.latitude"
    await call(api, "POST", f"/api/visits/{v['id']}/checkin", rep.token, expect=422,
               json={**fix(checkin_at), "fix_time": "2026-12-02T10:00:00"})  # no zone
    other = await call(api, "POST", f"/api/visits/{v['id']}/checkin", rep.token, expect=422,
                       json=fix(checkin_at, device_id=w.reps["north-2"].device))
    assert other["detail"][0]["where"] == "body.device_id"

    done = await call(api, "POST", f"/api/visits/{v['id']}/checkin", rep.token, json=fix(checkin_at))
    fix_lat, fix_lon = north(40)
    assert done["status"] == "done"
    assert done["checkin_distance_m"] == round(haversine(*SHOP, fix_lat, fix_lon), 1)
    assert abs(done["checkin_distance_m"] - 40) < 0.1
    assert datetime.fromisoformat(done["checkin_fix_time"]) == checkin_at
    assert (done["checkin_latitude"], done["checkin_accuracy_m"]) == (fix_lat, 12.0)
    await call(api, "POST", f"/api/visits/{v['id']}/checkin", rep.token, expect=422, json=fix(checkout_at))

    out = await call(api, "POST", f"/api/visits/{v['id']}/checkout", rep.token,
                     json=fix(checkout_at, 60, device_id=van))
    assert out["dwell_s"] == (checkout_at - checkin_at).total_seconds() == 55
    assert out["checkout_distance_m"] == round(haversine(*SHOP, *north(60)), 1)
    assert out["flags"] == []
    await call(api, "POST", f"/api/visits/{v['id']}/checkout", rep.token, expect=409, json=fix(checkout_at))

    attempts = await call(api, "GET", f"/api/visits/{v['id']}/attempts", boss.token)
    got = [(a["kind"], a["accepted"], a["reason"]) for a in attempts["items"]]
    assert got == [("checkout", False, "bad_state"), ("checkin", True, None), ("checkin", False, "bad_state"),
                   ("checkout", True, None), ("checkout", False, "bad_state")]
    assert attempts["items"][1]["detail"]["track_confirmed"] is True  # the van was 25 m away
    assert attempts["items"][3]["detail"]["device_id"] == van
    own = await call(api, "GET", f"/api/visits/{v['id']}/attempts", rep.token)
    assert own["items"] == attempts["items"]
    await call(api, "GET", f"/api/visits/{v['id']}/attempts", w.managers["south"].token, expect=404)

    # A check-out far from the shop is accepted and flagged.
    far = await plan(api, rep.token, shop, local_day(checkin_at))
    await call(api, "POST", f"/api/visits/{far['id']}/checkin", rep.token, json=fix(checkin_at))
    flagged = await call(api, "POST", f"/api/visits/{far['id']}/checkout", rep.token,
                         json=fix(checkout_at, 2000))
    assert flagged["flags"] == ["checkout_far"]
    listed = await call(api, "GET", "/api/visits", boss.token, params={"flagged": "true"})
    assert [x["id"] for x in listed["items"]] == [far["id"]]


async def test_refused_checkins_are_recorded_for_the_manager(api: Api, world: World) -> None:
    w = world
    rep, rep2, boss = w.reps["north-1"], w.reps["north-2"], w.managers["north"]
    shop = await customer(api, w)
    now = datetime.now(UTC)
    at = now - timedelta(seconds=5)
    v = await plan(api, rep.token, shop, local_day(at))
    before = await call(api, "GET", f"/api/visits/{v['id']}", rep.token)

    async def refused(visit_id: int, body: dict[str, Any], token: str = rep.token) -> dict[str, Any]:
        answer = await call(api, "POST", f"/api/visits/{visit_id}/checkin", token, expect=422, json=body)
        assert answer["error"] == "invalid"
        detail: dict[str, Any] = answer["detail"]
        return detail

    far = await refused(v["id"], fix(at, 400))
    assert far["reason"] == "too_far" and far["distance_m"] == round(haversine(*SHOP, *north(400)), 1)
    assert far["message"] == "400 m from the customer; the check-in radius is 150 m"
    stale = await refused(v["id"], fix(now - timedelta(minutes=3)))
    assert stale["reason"] == "stale_fix" and stale["age_s"] >= 180
    assert (await refused(v["id"], fix(at, mock=True)))["reason"] == "mock_location"
    inaccurate = await refused(v["id"], fix(at, accuracy_m=500))
    assert inaccurate["reason"] == "inaccurate" and "500 m" in inaccurate["message"]
    tomorrow = (date.fromisoformat(local_day(at)) + timedelta(days=1)).isoformat()
    other_day = await plan(api, rep.token, shop, tomorrow)
    assert (await refused(other_day["id"], fix(at)))["reason"] == "bad_state"

    # Teleport: rep 1's tracker was 300 km north of the shop 5 minutes before the fix.
    await tracker(api, rep, "van-1", [(at - timedelta(minutes=5), *north(300_000))])
    jump = await refused(v["id"], fix(at, 0))
    expected = haversine(*north(300_000), *north(0)) / 300 * 3.6  # 3600 km/h
    assert jump["reason"] == "teleport" and abs(jump["implied_speed_kmh"] - expected) < 0.1

    # Track mismatch: rep 2 at the shop by their phone, while their van is parked 3 km away
    # (reachable from there at 3 km / 60 s = 180 km/h, under the teleport limit).
    # A filtered fix at the shop (900 m accuracy) 30 s before is no evidence either way.
    v2 = await plan(api, rep2.token, shop, local_day(at))
    van = north(3000)
    await tracker(api, rep2, "van-2", [(at - timedelta(seconds=s), *van) for s in (240, 180, 120, 60)],
                  noisy=[(at - timedelta(seconds=30), *SHOP)])
    mismatch = await refused(v2["id"], fix(at, 0), rep2.token)
    assert mismatch["reason"] == "track_mismatch"
    assert mismatch["nearest_track_m"] == round(haversine(*SHOP, *van), 1)

    assert await call(api, "GET", f"/api/visits/{v['id']}", rep.token) == before  # nothing changed

    listed = await call(api, "GET", "/api/checkin-attempts", boss.token, params={"accepted": "false"})
    got = [(a["visit_id"], a["rep_id"], a["reason"]) for a in listed["items"]]
    assert got == [(v["id"], rep.id, "too_far"), (v["id"], rep.id, "stale_fix"),
                   (v["id"], rep.id, "mock_location"), (v["id"], rep.id, "inaccurate"),
                   (other_day["id"], rep.id, "bad_state"), (v["id"], rep.id, "teleport"),
                   (v2["id"], rep2.id, "track_mismatch")]
    assert all(not a["accepted"] and a["detail"]["message"] for a in listed["items"])
    assert listed["items"][0]["latitude"] == north(400)[0]
    only2 = await call(api, "GET", "/api/checkin-attempts", boss.token, params={"rep_id": rep2.id})
    assert [a["reason"] for a in only2["items"]] == ["track_mismatch"]
    page = await call(api, "GET", "/api/checkin-attempts", boss.token, params={"limit": 3})
    rest = await call(api, "GET", "/api/checkin-attempts", boss.token,
                      params={"limit": 10, "after": page["next_after"]})
    assert [a["id"] for a in page["items"] + rest["items"]] == [a["id"] for a in listed["items"]]
    assert (await call(api, "GET", "/api/checkin-attempts", w.managers["south"].token))["items"] == []
    mine = await call(api, "GET", "/api/checkin-attempts", rep2.token)
    assert [a["visit_id"] for a in mine["items"]] == [v2["id"]]
    await call(api, "GET", "/api/checkin-attempts", boss.token, expect=422,
               params={"from": "2026-12-02T10:00:00Z", "to": "2026-12-01T10:00:00Z"})


async def test_checkin_after_the_detector_found_the_stop(api: Api, world: World) -> None:
    """The rep parks at the customer, the detector marks the plan done from the stop before the rep
    taps check-in; the check-in is still taken, and the next reconciliation sees them agree."""
    w = world
    rep = w.reps["north-1"]
    shop = await customer(api, w)
    now = datetime.now(UTC)
    arrive = now - timedelta(minutes=9)
    dev = await call(api, "POST", "/api/devices", expect=201, json={"unique_id": "van-d", "name": "van-d"})
    await call(api, "PUT", f"/api/users/{rep.id}/devices/{dev['id']}", expect=204)
    drive_in = [(arrive - timedelta(seconds=10 * i), *north(25 + 50 * i), 18.0) for i in range(24, 0, -1)]
    parked = [(arrive + timedelta(seconds=20 * i), *north(25), 0.0) for i in range(25)]  # 8 min
    rows = [StoredPosition(dev["id"], "van-d", "test", now, Position(fix_time=t, latitude=lat, longitude=lon,
                                                                    speed_kmh=v, accuracy_m=5.0))
            for t, lat, lon, v in drive_in + parked]
    async with api.pool.connection() as conn:
        await insert_rows(conn, rows)
    await ProcessingRunner(api.pool).process(dev["id"])
    v = await plan(api, w.managers["north"].token, shop, local_day(now), rep_id=rep.id)

    await reconcile_rep(api.pool, rep.id, now)
    found = await call(api, "GET", f"/api/visits/{v['id']}", rep.token)
    assert (found["status"], found["checkin_at"]) == ("done", None)
    assert found["flags"] == ["presence_without_checkin"]

    done = await call(api, "POST", f"/api/visits/{v['id']}/checkin", rep.token, json=fix(now))
    assert done["status"] == "done" and done["checkin_at"] is not None
    await reconcile_rep(api.pool, rep.id, now)
    assert (await call(api, "GET", f"/api/visits/{v['id']}", rep.token))["flags"] == []
    # A check-in is taken once, also on a visit done by presence.
    again = await call(api, "POST", f"/api/visits/{v['id']}/checkin", rep.token, expect=422, json=fix(now))
    assert again["detail"]["reason"] == "bad_state"
