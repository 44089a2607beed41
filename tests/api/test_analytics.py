"""Visit analytics on the real database: the world's reps really drove (stored positions processed by
the runner) on Monday 2026-10-05 09:00-09:25 Amsterdam time; visits and check-in attempts are put in
by SQL, so nothing here depends on the visit routes or the detector."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from storage.mileage import mileage_days
from tests.api.conftest import Api
from tests.api.people import T0, World, call, give_device, new_user, world  # noqa: F401

AMS = ZoneInfo("Europe/Amsterdam")
MONDAY = date(2026, 10, 5)
# The Monday as one local day: on duty 08:00-12:00 and 13:00-17:00 (people.CALENDAR), 8 h.
PERIOD = {"from": "2026-10-05T00:00:00+02:00", "to": "2026-10-06T00:00:00+02:00"}
ON_DUTY_S = 8 * 3600


def local(hhmm: str, day: date = MONDAY) -> datetime:
    return datetime.combine(day, datetime.strptime(hhmm, "%H:%M").time(), AMS)


async def customer(api: Api, name: str, team_id: int, rep_id: int | None = None, grade: str = "A") -> int:
    body = {"name": name, "latitude": 52.1, "longitude": 4.1, "team_id": team_id, "grade": grade,
            "assigned_rep_id": rep_id}
    return int((await call(api, "POST", "/api/customers", expect=201, json=body))["id"])


async def visit(api: Api, rep_id: int, customer_id: int, status: str, *, source: str = "plan",
                day: date = MONDAY, checkin: datetime | None = None, checkout: datetime | None = None,
                detected: tuple[datetime, datetime] | None = None) -> int:
    async with api.pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO visits (customer_id, rep_id, day, status, source, checkin_at, checkout_at,"
            " dwell_s, detected_start, detected_end) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " RETURNING id",
            (customer_id, rep_id, day, status, source, checkin, checkout,
             (checkout - checkin).total_seconds() if checkin and checkout else None,
             detected[0] if detected else None, detected[1] if detected else None))
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def attempt(api: Api, visit_id: int, accepted: bool, kind: str = "checkin") -> None:
    async with api.pool.connection() as conn:
        await conn.execute("INSERT INTO checkin_attempts (visit_id, kind, accepted, reason)"
                           " VALUES (%s, %s, %s, %s)",
                           (visit_id, kind, accepted, None if accepted else "too_far"))


async def trip_times(api: Api, device_id: int) -> list[tuple[datetime, datetime, float]]:
    async with api.pool.connection() as conn:
        cur = await conn.execute("SELECT start_time, end_time, distance_m FROM trips WHERE device_id = %s"
                                 " ORDER BY start_time", (device_id,))
        return list(await cur.fetchall())


def overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> float:
    return max(0.0, (min(a[1], b[1]) - max(a[0], b[0])).total_seconds())


SUMMED = ("planned", "done", "missed", "open", "cancelled", "rejected", "unplanned_detected",
          "checkin_attempts", "checkins_accepted", "on_duty_s", "at_customers_s", "driving_s", "idle_s",
          "timed_visits", "business_km")


async def test_figures_of_a_rep_and_team_totals(api: Api, world: World) -> None:  # noqa: F811
    north, south = world.teams["north"], world.teams["south"]
    rep1, rep2 = world.reps["north-1"], world.reps["north-2"]
    c1 = await customer(api, "c1", north, rep1.id)
    c2 = await customer(api, "c2", north)  # the team's, unassigned
    c3 = await customer(api, "c3", north, rep1.id)
    c4 = await customer(api, "c4", north, rep1.id)
    c5 = await customer(api, "c5", north, rep2.id)
    await customer(api, "s1", south)  # another team's: in no north figure
    (trip,) = await trip_times(api, rep1.device or 0)
    trip_span = (trip[0], trip[1])
    assert local("09:00") <= trip[0] < trip[1] <= local("09:30")  # drive(): 5 min parked, 10 min driving

    # (status, source, day, presence kind, presence) for rep 1; the counts below are computed from it.
    rows: list[dict[str, Any]] = [
        {"c": c1, "status": "done", "checkin": (local("09:30"), local("10:00"))},
        # Detected 11:30-12:30: only 11:30-12:00 is on duty (lunch 12:00-13:00 is not).
        {"c": c2, "status": "done", "source": "detected", "detected": (local("11:30"), local("12:30"))},
        # Checked in while the track shows the end of the trip: the driving part is not "at customer".
        {"c": c1, "status": "done", "checkin": (local("09:10"), local("09:20"))},
        {"c": c3, "status": "missed"},
        {"c": c1, "status": "approved"},
        {"c": c4, "status": "planned"},
        {"c": c3, "status": "rejected"},
        {"c": c4, "status": "cancelled"},
        {"c": c4, "status": "done", "day": MONDAY + timedelta(days=1),  # outside the period
         "checkin": (local("09:00", MONDAY + timedelta(days=1)), local("09:30", MONDAY + timedelta(days=1)))},
        {"c": c3, "status": "done", "day": MONDAY - timedelta(days=1)},  # Sunday: outside
    ]
    ids = []
    for r in rows:
        ids.append(await visit(api, rep1.id, r["c"], r["status"], source=r.get("source", "plan"),
                               day=r.get("day", MONDAY), checkin=r.get("checkin", (None, None))[0],
                               checkout=r.get("checkin", (None, None))[1], detected=r.get("detected")))
    # (row, accepted, kind); a check-out and an attempt on a visit outside the period do not count.
    attempts = [(0, False, "checkin"), (0, True, "checkin"), (0, True, "checkout"), (2, True, "checkin"),
                (3, False, "checkin"), (8, True, "checkin")]
    for n, accepted, kind in attempts:
        await attempt(api, ids[n], accepted, kind)
    counted = [a for n, a, kind in attempts if kind == "checkin" and rows[n].get("day", MONDAY) == MONDAY]
    # Rep 2: one done visit at rep 1's customer c4 and one at their own c5, no presence recorded.
    await visit(api, rep2.id, c4, "done")
    await visit(api, rep2.id, c5, "missed")

    body = await call(api, "GET", "/api/analytics/visits", params={**PERIOD, "team": north})
    reps = {r["rep_id"]: r for r in body["reps"]}
    assert set(reps) == {rep1.id, rep2.id}
    me = reps[rep1.id]
    inside = [r for r in rows if r.get("day", MONDAY) == MONDAY]
    plan = [r for r in inside if r.get("source", "plan") == "plan"]
    assert me["planned"] == sum(r["status"] not in ("rejected", "cancelled") for r in plan) == 5
    for status in ("done", "missed", "cancelled", "rejected"):
        assert me[status] == sum(r["status"] == status for r in inside), status
    assert me["open"] == sum(r["status"] in ("planned", "approved") for r in plan) == 2
    assert me["unplanned_detected"] == 1
    assert (me["checkin_attempts"], me["checkins_accepted"]) == (len(counted), sum(counted)) == (4, 2)
    assert me["checkin_success_rate"] == round(sum(counted) / len(counted), 4)

    # Time: presences 09:30-10:00 (1800 s), 11:30-12:00 on duty (1800 s), 09:10-09:20 (600 s) less
    # the part of it the trip covers.
    driving = overlap(trip_span, (local("08:00"), local("12:00")))
    assert me["calendar"] == "team"
    assert me["on_duty_s"] == ON_DUTY_S
    assert me["driving_s"] == round(driving, 3)
    at = 1800 + 1800 + 600 - overlap(trip_span, (local("09:10"), local("09:20")))
    assert me["at_customers_s"] == round(at, 3)
    assert me["idle_s"] == round(ON_DUTY_S - at - driving, 3)
    assert (me["timed_visits"], me["average_visit_s"]) == (3, round((1800 + 1800 + 600) / 3, 3))

    # Customers: covered c1, c2; assigned c1, c3, c4; of those, c1 covered.
    assert (me["customers_covered"], me["customers_assigned"], me["assigned_covered"]) == (2, 3, 1)
    # The device drove 3 km east (people.give_device: 2.0 + 2 * 0 + 1), all of it on duty.
    assert abs(me["business_km"] - trip[2] / 1000) < 0.01 and abs(me["business_km"] - 3.0) < 0.05
    assert abs(me["km_per_visit"] - me["business_km"] / me["done"]) < 0.001
    # The mileage report's own figure for the same rep and period.
    days = await mileage_days(api.pool, [rep1.id], local("00:00"), local("00:00", MONDAY + timedelta(days=1)))
    assert abs(me["business_km"] - sum(d.business_m for d in days) / 1000) < 0.001

    (team,) = body["teams"]
    assert (team["team_id"], team["reps"]) == (north, 2)
    for key in SUMMED:
        assert abs(team[key] - sum(r[key] for r in body["reps"])) < 0.002, key
    assert team["checkin_success_rate"] == round(team["checkins_accepted"] / team["checkin_attempts"], 4)
    assert team["km_per_visit"] is not None
    assert abs(team["km_per_visit"] - team["business_km"] / team["done"]) < 0.001
    # Team: covered c1, c2 (rep 1) and c4 (rep 2); the team's customers c1..c5; all three among them.
    assert (team["customers_covered"], team["customers_assigned"], team["assigned_covered"]) == (3, 5, 3)
    assert reps[rep2.id]["km_per_visit"] is not None and reps[rep2.id]["average_visit_s"] is None
    assert reps[rep2.id]["checkin_success_rate"] is None


async def test_rep_without_calendar_counts_first_to_last_position(api: Api) -> None:
    team = await call(api, "POST", "/api/teams", expect=201, json={"name": "east", "time_zone": "UTC"})
    rep = await new_user(api, "east-rep", "rep", team["id"])
    device = await give_device(api, rep, "east-phone", east_km=4.0)
    c = await customer(api, "e1", team["id"], rep.id)
    (trip,) = await trip_times(api, device)
    # people.drive: a fix every 10 s from T0 for 1500 s, so the day's span is T0 .. T0 + 1500 s.
    await visit(api, rep.id, c, "done", source="detected", day=T0.date(),
                detected=(T0 + timedelta(seconds=1000), T0 + timedelta(seconds=1400)))
    day = {"from": datetime.combine(T0.date(), datetime.min.time(), UTC).isoformat(),
           "to": datetime.combine(T0.date() + timedelta(days=1), datetime.min.time(), UTC).isoformat()}
    (row,) = (await call(api, "GET", "/api/analytics/visits", params={**day, "rep": rep.id}))["reps"]
    assert row["calendar"] == "none"
    assert row["on_duty_s"] == 1500
    driving = (trip[1] - trip[0]).total_seconds()
    assert row["driving_s"] == round(driving, 3)
    assert row["at_customers_s"] == 400 - overlap((trip[0], trip[1]), (T0 + timedelta(seconds=1000),
                                                                         T0 + timedelta(seconds=1400)))
    assert row["idle_s"] == round(1500 - row["at_customers_s"] - driving, 3)
    assert abs(row["km_per_visit"] - 4.0) < 0.05


async def test_who_sees_which_rows(api: Api, world: World) -> None:  # noqa: F811
    north, south = world.teams["north"], world.teams["south"]
    rep = world.reps["north-1"]
    mine = await call(api, "GET", "/api/analytics/visits", rep.token, params=PERIOD)
    assert [r["rep_id"] for r in mine["reps"]] == [rep.id]
    assert [t["team_id"] for t in mine["teams"]] == [north]
    other = world.reps["north-2"].id
    await call(api, "GET", "/api/analytics/visits", rep.token, expect=404, params={**PERIOD, "rep": other})
    await call(api, "GET", "/api/analytics/visits", rep.token, expect=404, params={**PERIOD, "team": south})
    boss = world.managers["north"]
    seen = await call(api, "GET", "/api/analytics/visits", boss.token, params=PERIOD)
    ours = sorted(world.reps[k].id for k in ("north-1", "north-2"))
    assert sorted(r["rep_id"] for r in seen["reps"]) == ours
    for params in ({"team": south}, {"rep": world.reps["south-1"].id}, {"team": 99999}):
        r = await api.client.get("/api/analytics/visits", headers=api.auth(boss.token),
                                 params={**PERIOD, **params})
        assert r.status_code == 404 and r.json()["error"] == "not_found", params
    everyone = await call(api, "GET", "/api/analytics/visits", params=PERIOD)
    assert len(everyone["reps"]) == 4 and [t["team_id"] for t in everyone["teams"]] == sorted([north, south])


async def test_bad_ranges_are_422(api: Api) -> None:
    cases = [
        {"from": "2026-10-06T00:00:00Z", "to": "2026-10-05T00:00:00Z"},  # reversed
        {"from": "2026-10-01T00:00:00Z", "to": "2027-01-03T00:00:00Z"},  # 94 days
        {"from": "2026-10-01T00:00:00", "to": "2026-10-02T00:00:00Z"},  # no zone
        {"from": "yesterday", "to": "2026-10-02T00:00:00Z"},
        {"to": "2026-10-02T00:00:00Z"},
    ]
    for params in cases:
        r = await api.client.get("/api/analytics/visits", headers=api.auth(), params=params)
        assert r.status_code == 422 and r.json()["error"] == "invalid", (params, r.text)
    ok = {"from": "2026-10-01T00:00:00Z", "to": "2027-01-02T00:00:00Z"}  # exactly 93 days
    await call(api, "GET", "/api/analytics/visits", params=ok)


async def test_csv_and_xlsx(api: Api, world: World) -> None:  # noqa: F811
    r = await api.client.get("/api/analytics/visits", headers=api.auth(), params={**PERIOD, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [t["kind"] for t in table] == ["rep"] * 4 + ["team"] * 2 + ["total"]
    assert {int(t["rep_id"]) for t in table if t["kind"] == "rep"} == {p.id for p in world.reps.values()}
    x = await api.client.get("/api/analytics/visits", headers=api.auth(), params={**PERIOD, "format": "xlsx"})
    assert x.status_code == 200 and x.content[:2] == b"PK"
