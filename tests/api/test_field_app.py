"""The simulated field-sales app (simulators/field_app.py) against the real API and database: it
checks in at a planned customer with the phone's fix, files the visit report with a photo and
checks out before leaving; the early bird's
try from the road is refused as too far and recorded; calls already past or without a plan are
left alone. Time is the wall clock, with calls a few seconds ahead."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from simulators.field_app import AppTiming, Call, FieldApp, VisitReport
from simulators.movement import Fix
from simulators.photo import visit_photo
from tests.api.conftest import Api
from tests.api.people import World, call, world

__all__ = ["world"]  # the fixture, used by name

SHOP = (52.3702, 4.8952)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def north(metres: float) -> tuple[float, float]:
    return SHOP[0] + math.degrees(metres / 6_371_008.8), SHOP[1]


async def test_the_app_checks_in_and_out_and_the_early_try_is_refused(api: Api, world: World) -> None:
    rep, boss = world.reps["north-1"], world.managers["north"]
    team = world.teams["north"]
    shops = [await call(api, "POST", "/api/customers", expect=201,
                        json={"name": f"shop {k}", "latitude": SHOP[0], "longitude": SHOP[1] + k / 100,
                              "team_id": team}) for k in range(3)]
    now = datetime.now(UTC)
    today = now.astimezone(AMSTERDAM).date().isoformat()
    visits = [await call(api, "POST", "/api/visits", boss.token, expect=201,
                         json={"customer_id": shops[k]["id"], "day": today, "rep_id": rep.id})
              for k in (0, 1)]  # shop 2 has no plan

    arrive = now + timedelta(seconds=5)  # room for a slow machine: the early try is 3 s before
    leave = arrive + timedelta(seconds=2.0)

    def phone(t: datetime) -> Fix:
        # 1 km out while driving there, 20 m from the door once arrived.
        lat, lon = north(20.0 if t >= arrive else 1000.0)
        return Fix(t, lat, lon, 0.0, 0.0, 8.0, 0.0, False)

    def sim_now() -> datetime:
        return datetime.now(UTC) - timedelta(seconds=1)  # a fix is never ahead of the server

    async def sleep_until(t: datetime) -> None:
        await asyncio.sleep(max(0.0, (t - sim_now()).total_seconds()))

    calls = [
        Call(shops[1]["id"], SHOP[0], SHOP[1] + 0.01, now - timedelta(hours=1), now - timedelta(minutes=50)),
        Call(shops[0]["id"], SHOP[0], SHOP[1], arrive, leave),
        Call(shops[2]["id"], SHOP[0], SHOP[1] + 0.02, leave + timedelta(seconds=0.5),
             leave + timedelta(seconds=1)),
    ]
    form = [{"key": "shelf_ok", "label": "Shelf stocked", "type": "boolean", "required": True}]
    await call(api, "PUT", f"/api/teams/{team}/report-template", boss.token, json={"fields": form})
    reported: list[int] = []

    def reporter(visit_id: int, c: Call, fix: Fix) -> VisitReport:
        reported.append(visit_id)
        photo = visit_photo(f"test/{visit_id}", fix.time.astimezone(AMSTERDAM), fix.lat, fix.lon)
        return VisitReport({"shelf_ok": False}, "gaps on the shelf", (photo,))

    app = FieldApp(api.client, rep.token, rep.id, rep.device, phone, sim_now, sleep_until,
                   lambda t: t.astimezone(AMSTERDAM).date(), reporter=reporter,
                   timing=AppTiming(checkin_after_s=0.3, checkout_before_s=0.5, early_s=3.0,
                                    early_min_m=400.0),
                   early_bird=True)
    await asyncio.wait_for(app.run(calls), 30)

    c = app.counters
    assert (c.checkins, c.reports, c.checkouts, c.refused, c.failed) == (1, 1, 1, 1, 0)
    done = await call(api, "GET", f"/api/visits/{visits[0]['id']}", boss.token)
    assert done["status"] == "done" and done["checkin_at"] is not None and done["checkout_at"] is not None
    assert abs(done["checkin_distance_m"] - 20.0) < 1.0
    attempts = (await call(api, "GET", f"/api/visits/{visits[0]['id']}/attempts", boss.token))["items"]
    assert [(a["kind"], a["accepted"], a["reason"]) for a in attempts] == [
        ("checkin", False, "too_far"), ("checkin", True, None), ("checkout", True, None)]
    # The report went in before the check-out, with a photo the server finds consistent: taken
    # there and then (EXIF time and GPS), so no flags.
    assert reported == [visits[0]["id"]]
    report = await call(api, "GET", f"/api/visits/{visits[0]['id']}/report", boss.token)
    assert report["answers"] == {"shelf_ok": False} and report["notes"] == "gaps on the shelf"
    assert [p["flags"] for p in report["photos"]] == [[]]
    assert abs(report["photos"][0]["exif_latitude"] - north(20.0)[0]) < 1e-5
    assert report["submitted_at"] <= done["checkout_at"]
    # The call an hour ago was not attempted: its plan is still open and has no attempt.
    missed = await call(api, "GET", f"/api/visits/{visits[1]['id']}", boss.token)
    assert missed["status"] == "approved" and missed["checkin_at"] is None
    assert (await call(api, "GET", f"/api/visits/{visits[1]['id']}/attempts", boss.token))["items"] == []


async def test_a_failing_call_costs_that_call_not_the_rest_of_the_day(api: Api, world: World) -> None:
    rep, boss = world.reps["north-2"], world.managers["north"]
    shops = [await call(api, "POST", "/api/customers", expect=201,
                        json={"name": f"kiosk {k}", "latitude": SHOP[0], "longitude": SHOP[1],
                              "team_id": world.teams["north"]}) for k in range(2)]
    now = datetime.now(UTC)
    today = now.astimezone(AMSTERDAM).date().isoformat()
    visits = [await call(api, "POST", "/api/visits", boss.token, expect=201,
                         json={"customer_id": s["id"], "day": today, "rep_id": rep.id}) for s in shops]

    def phone(t: datetime) -> Fix:
        return Fix(t, *north(20.0), 0.0, 0.0, 8.0, 0.0, False)

    def sim_now() -> datetime:
        return datetime.now(UTC) - timedelta(seconds=1)

    async def sleep_until(t: datetime) -> None:
        await asyncio.sleep(max(0.0, (t - sim_now()).total_seconds()))

    def broken(visit_id: int, c: Call, fix: Fix) -> VisitReport:
        if visit_id == visits[0]["id"]:
            raise RuntimeError("the camera crashed")
        return VisitReport({}, "all fine")

    first = now + timedelta(seconds=3)  # calls seconds apart: room for a slow machine
    calls = [Call(s["id"], SHOP[0], SHOP[1], first + timedelta(seconds=4 * k),
                  first + timedelta(seconds=4 * k + 2)) for k, s in enumerate(shops)]
    app = FieldApp(api.client, rep.token, rep.id, rep.device, phone, sim_now, sleep_until,
                   lambda t: t.astimezone(AMSTERDAM).date(), reporter=broken,
                   timing=AppTiming(checkin_after_s=0.2, checkout_before_s=0.3))
    await asyncio.wait_for(app.run(calls), 30)
    c = app.counters
    assert (c.checkins, c.reports, c.checkouts, c.failed) == (2, 1, 1, 1)
    states = [await call(api, "GET", f"/api/visits/{v['id']}", boss.token) for v in visits]
    assert [s["checkout_at"] is None for s in states] == [True, False]
