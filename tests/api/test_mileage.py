"""The mileage report on a real database: tracks stored and processed by the real runner, expected km
computed here from the generated track with a haversine of our own, and compared with the summary
report for the same device and day."""

from __future__ import annotations

import csv
import io
import itertools
import math
import random
import zipfile
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

from gateway.processing import ProcessingRunner
from processors.working_hours import working_intervals
from protocols.model import Position
from storage.mileage import _clipped, mileage_days
from storage.reports import day_windows
from storage.rows import StoredPosition
from storage.writer import insert_rows
from tests.api.conftest import Api
from tests.api.people import World, call, new_user, world

__all__ = ["world"]  # the fixture, imported so pytest finds it here

MON = {"mon": [["08:00", "17:00"]]}
# Monday 2026-10-05 in Amsterdam (CEST, UTC+2): local 07:30 = 05:30Z, 10:00 = 08:00Z, 16:55 = 14:55Z.
DAY_FROM, DAY_TO = "2026-10-05T00:00:00+02:00", "2026-10-06T00:00:00+02:00"
LOCAL_0730 = datetime(2026, 10, 5, 5, 30, tzinfo=UTC)
LOCAL_1000 = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
LOCAL_1655 = datetime(2026, 10, 5, 14, 55, tzinfo=UTC)
DUTY = (datetime(2026, 10, 5, 6, 0, tzinfo=UTC), datetime(2026, 10, 5, 15, 0, tzinfo=UTC))  # 08:00-17:00
LEGS = [(LOCAL_0730, 5.0), (LOCAL_1000, 12.0), (LOCAL_1655, 3.0)]
Fix = tuple[datetime, float, float]


def haversine_m(a: Fix, b: Fix) -> float:
    r = 6_371_008.8
    p1, p2 = math.radians(a[1]), math.radians(b[1])
    dp, dl = p2 - p1, math.radians(b[2] - a[2])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(h))


def track(legs: Sequence[tuple[datetime, float]], lat: float = 52.1) -> list[Fix]:
    """Per leg: parked 3 min, 10 min due east at a steady pace covering the km, parked 3 min; a fix
    every 10 s (so one falls on every whole minute, 17:00 included). Nothing between legs."""
    lon = 4.3
    per_km = 1 / (111.32 * math.cos(math.radians(lat)))
    out: list[Fix] = []
    for begin, km in legs:
        for i in range(97):
            done = min(max(i - 18, 0), 60) / 60
            out.append((begin + timedelta(seconds=10 * i - 180), lat, lon + km * done * per_km))
        lon = out[-1][2]
    return out


def last_part_m(fixes: Sequence[Fix]) -> float:
    """The 16:55 leg up to 17:00."""
    return odometer_at(fixes, DUTY[1]) - odometer_at(fixes, LOCAL_1655)


def odometer_at(fixes: Sequence[Fix], at: datetime, scale: float = 1.0) -> float:
    """The haversine path up to the last fix at or before ``at``."""
    total = 0.0
    for a, b in itertools.pairwise(fixes):
        if b[0] > at:
            break
        total += haversine_m(a, b)
    return total * scale


async def store(api: Api, device_id: int, fixes: Sequence[Fix], device_odometer: float | None = None) -> None:
    """``device_odometer``: the device also reports its own odometer, this factor × the haversine path
    (plus a base reading), as a car's odometer that reads long."""
    rows = []
    for i, (t, lat, lon) in enumerate(fixes):
        moving = i > 0 and fixes[i - 1][2] != lon
        attrs = {} if device_odometer is None else {
            "odometer_m": 50_000.0 + odometer_at(fixes, t, device_odometer)}
        p = Position(fix_time=t, latitude=lat, longitude=lon, speed_kmh=30.0 if moving else 0.0,
                     course_deg=90.0 if moving else None, attributes=attrs)
        rows.append(StoredPosition(device_id, f"dev-{device_id}", "test", t, p))
    async with api.pool.connection() as conn:
        await insert_rows(conn, rows)
    await ProcessingRunner(api.pool).process(device_id)


async def team(api: Api, name: str, hours: dict[str, Any], settings: dict[str, Any] | None = None) -> int:
    body = {"name": name, "time_zone": "Europe/Amsterdam", "working_hours": hours, "settings": settings or {}}
    return int((await call(api, "POST", "/api/teams", expect=201, json=body))["id"])


async def device(api: Api, user_id: int, name: str, attributes: dict[str, Any] | None = None) -> int:
    dev = await call(api, "POST", "/api/devices", expect=201,
                     json={"unique_id": name, "name": name, "attributes": attributes or {}})
    await call(api, "PUT", f"/api/users/{user_id}/devices/{dev['id']}", expect=204)
    return int(dev["id"])


async def report(api: Api, token: str | None = None, expect: int = 200, **params: Any) -> Any:
    query = {"from": DAY_FROM, "to": DAY_TO, **params}
    return await call(api, "GET", "/api/reports/mileage", token, expect=expect, params=query)


async def summary_km(api: Api, device_id: int) -> float:
    found = await call(api, "GET", "/api/reports/summary", params={
        "from": DAY_FROM, "to": DAY_TO, "tz": "Europe/Amsterdam", "device": device_id})
    (day,) = found["devices"][0]["days"]
    return float(day["distance_km"])


async def test_business_km_are_the_on_duty_odometer_and_total_is_the_summary(api: Api) -> None:
    t = await team(api, "field", MON, {"mileage": {"rate": 0.3, "currency": "CHF"}})
    rep = await new_user(api, "anna", "rep", t)
    phone = await device(api, rep.id, "anna-phone")
    fixes = track(LEGS)
    await store(api, phone, fixes)

    found = await report(api, rep=rep.id)
    (row,) = found["reps"]
    (day,) = row["days"]
    # 12 km inside the hours, and the 3 km leg up to the fix at 17:00: half of it (1.5 km nominal).
    business = (odometer_at(fixes, DUTY[1]) - odometer_at(fixes, DUTY[0])) / 1000
    total = odometer_at(fixes, fixes[-1][0]) / 1000
    assert 13.4 < business < 13.6
    assert abs(day["business_km"] - business) <= 0.005 * business
    assert abs(day["personal_km"] - (total - business)) <= 0.005 * total
    assert day["device_id"] == phone and day["working"] is True
    assert day["total_km"] == await summary_km(api, phone)  # same odometer probes: exactly equal
    assert abs(day["business_km"] + day["personal_km"] - day["total_km"]) <= 0.0011

    # Evidence: the 10:00 and 16:55 trips (the 07:30 one ended before 08:00); the last cut at 17:00.
    first, last = day["trips"]
    assert datetime.fromisoformat(first["start_time"]) < LOCAL_1000 + timedelta(minutes=1)
    # The last trip ended off duty: the sheet shows its on-duty part and not where it ended.
    assert datetime.fromisoformat(last["end_time"]) == DUTY[1] and last["clipped"] is True
    assert last["start_latitude"] is not None and last["end_latitude"] is None
    assert first["clipped"] is False and first["end_latitude"] is not None
    cut = (DUTY[1] - datetime.fromisoformat(last["start_time"])).total_seconds()
    assert last["business_time_s"] == cut
    assert abs(first["business_km"] - (odometer_at(fixes, DUTY[1]) - odometer_at(fixes, LOCAL_1000)
                                       - last_part_m(fixes)) / 1000) < 0.02  # the whole 12 km
    last_part = (odometer_at(fixes, DUTY[1]) - odometer_at(fixes, LOCAL_1655)) / 1000
    assert abs(last["business_km"] - last_part) < 0.02
    assert day["driving_time_s"] == first["business_time_s"] + last["business_time_s"]

    # The team's rate and currency; amount from the km as shown.
    assert (row["rate"], row["currency"]) == (0.3, "CHF")
    assert day["amount"] == round(day["business_km"] * 0.3, 2)
    assert found["totals"] == [{"currency": "CHF", "business_km": day["business_km"],
                                "personal_km": day["personal_km"], "amount": day["amount"],
                                "driving_time_s": day["driving_time_s"]}]
    priced = await report(api, rep=rep.id, rate=0.55)
    (row2,) = priced["reps"]
    assert (row2["rate"], row2["currency"], priced["rate"]) == (0.55, "CHF", 0.55)
    assert row2["days"][0]["amount"] == round(day["business_km"] * 0.55, 2) != day["amount"]

    # The storage interface the analytics use gives the same figures.
    (raw,) = await mileage_days(api.pool, [rep.id], datetime.fromisoformat(DAY_FROM),
                                datetime.fromisoformat(DAY_TO))
    assert (raw.rep_id, raw.day, raw.device_id) == (rep.id, date(2026, 10, 5), phone)
    assert round(raw.business_m / 1000, 3) == day["business_km"]
    assert raw.driving_s == day["driving_time_s"] and len(raw.trips) == 2


async def test_working_days_are_listed_without_movement_other_days_only_with_it(api: Api) -> None:
    t = await team(api, "field", MON)
    rep = await new_user(api, "anna", "rep", t)
    phone = await device(api, rep.id, "anna-phone")
    sunday = datetime(2026, 10, 11, 10, 0, tzinfo=UTC)
    await store(api, phone, track([*LEGS, (sunday, 4.0)]))
    # Mon 5th to Tue 13th: Monday 5th (driven), Sunday 11th (driven, off duty), Monday 12th (working, idle).
    found = await report(api, rep=rep.id, to="2026-10-13T00:00:00+02:00")
    days = {d["day"]: d for d in found["reps"][0]["days"]}
    assert sorted(days) == ["2026-10-05", "2026-10-11", "2026-10-12"]
    assert days["2026-10-11"]["business_km"] == 0 and days["2026-10-11"]["working"] is False
    assert abs(days["2026-10-11"]["personal_km"] - 4.0) < 0.05
    assert days["2026-10-12"]["total_km"] == 0 and days["2026-10-12"]["working"] is True


async def test_a_rep_without_calendar_has_only_business_km(api: Api) -> None:
    t = await team(api, "free", {})
    rep = await new_user(api, "bob", "rep", t)
    phone = await device(api, rep.id, "bob-phone")
    await store(api, phone, track(LEGS))
    (day,) = (await report(api, rep=rep.id))["reps"][0]["days"]
    assert day["business_km"] == await summary_km(api, phone) == day["total_km"]
    assert day["personal_km"] == 0 and day["working"] is False
    assert len(day["trips"]) == 3  # every trip is on duty
    assert day["amount"] == 0  # no rate set: km only


async def test_a_reps_own_calendar_wins_over_the_teams(api: Api) -> None:
    t = await team(api, "field", MON)
    rep = await new_user(api, "eve", "rep", t)
    phone = await device(api, rep.id, "eve-phone")
    fixes = track(LEGS)
    await store(api, phone, fixes)
    # Her own hours start at 11:00 (09:00Z), after the 10:00 drive: only the last leg's first half is paid.
    await call(api, "PUT", f"/api/users/{rep.id}/calendar",
               json={"working_hours": {"mon": [["11:00", "17:00"]]}, "time_zone": "Europe/Amsterdam"})
    (day,) = (await report(api, rep=rep.id))["reps"][0]["days"]
    eleven = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
    expected = (odometer_at(fixes, DUTY[1]) - odometer_at(fixes, eleven)) / 1000
    assert 1.4 < expected < 1.6
    assert abs(day["business_km"] - expected) <= 0.02
    (only,) = day["trips"]  # the 16:55 leg; the 10:00 one ended before her hours
    assert datetime.fromisoformat(only["start_time"]) >= LOCAL_1655


async def test_device_odometer_is_used_when_configured(api: Api) -> None:
    t = await team(api, "field", MON)
    rep = await new_user(api, "cleo", "rep", t)
    car = await device(api, rep.id, "cleo-car", {"processing": {"odometer": {"use_device_odometer": True}}})
    fixes = track(LEGS)
    await store(api, car, fixes, device_odometer=1.1)
    (day,) = (await report(api, rep=rep.id))["reps"][0]["days"]
    expected = (odometer_at(fixes, DUTY[1], 1.1) - odometer_at(fixes, DUTY[0], 1.1)) / 1000
    assert abs(day["business_km"] - expected) <= 0.0011  # the car's own reading, not the GPS path
    assert day["total_km"] == await summary_km(api, car)


async def test_phone_and_tracker_in_one_car_count_once(api: Api) -> None:
    t = await team(api, "field", MON, {"mileage": {"rate": 0.3}})
    rep = await new_user(api, "dan", "rep", t)
    phone = await device(api, rep.id, "dan-phone")
    tracker = await device(api, rep.id, "dan-tracker")
    # The same drive at 10:00 local; the tracker's fixes measure 10.4 km where the phone's give 10.
    await store(api, phone, track([(LOCAL_1000, 10.0)]))
    await store(api, tracker, track([(LOCAL_1000, 10.4)], lat=52.1001))
    found = await report(api, rep=rep.id)
    (day,) = found["reps"][0]["days"]
    phone_km, tracker_km = await summary_km(api, phone), await summary_km(api, tracker)
    assert phone_km < tracker_km
    assert day["device_id"] == tracker
    assert day["business_km"] == day["total_km"] == tracker_km  # the larger, not the sum
    assert [o["device_id"] for o in day["not_counted"]] == [phone]
    assert day["not_counted"][0]["business_km"] == phone_km
    assert found["totals"][0]["business_km"] == tracker_km
    assert {trip["device_id"] for trip in day["trips"]} == {tracker}


def _sheet_rows(body: bytes) -> list[list[Any]]:
    """The first sheet's cells as Python values: numbers, booleans, text, dates (serial, style 2)."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        root = ElementTree.fromstring(zf.read("xl/worksheets/sheet1.xml"))
    out = []
    for row in root.iterfind(".//m:sheetData/m:row", ns):
        cells: dict[str, Any] = {}
        for c in row.iterfind("m:c", ns):
            col = "".join(ch for ch in c.attrib["r"] if ch.isalpha())
            if c.attrib.get("t") == "inlineStr":
                cells[col] = "".join(x.text or "" for x in c.iterfind(".//m:t", ns))
            elif c.attrib.get("t") == "b":
                cells[col] = c.findtext("m:v", namespaces=ns) == "1"
            elif c.attrib.get("s") == "2":
                serial = float(c.findtext("m:v", namespaces=ns) or "0")
                cells[col] = (date(1899, 12, 30) + timedelta(days=serial)).isoformat()
            else:
                cells[col] = float(c.findtext("m:v", namespaces=ns) or "nan")
        out.append([cells.get(chr(65 + i)) for i in range(16)])
    return out


async def test_csv_and_xlsx_hold_the_json_rows(api: Api, world: World) -> None:
    rate: dict[str, Any] = {"rate": 0.42, "from": DAY_FROM, "to": DAY_TO}
    found = await call(api, "GET", "/api/reports/mileage", params=rate)
    expected = [[r["rep_id"], r["name"], r["team_id"], r["team"], d["day"], d["working"], d["device_id"],
                 d["business_km"], d["personal_km"], d["total_km"], r["rate"], r["currency"], d["amount"],
                 d["driving_time_s"], len(d["trips"]), None] for r in found["reps"] for d in r["days"]]
    assert len(expected) == 4 and all(row[7] > 0 for row in expected)

    got = await api.client.get("/api/reports/mileage", params={**rate, "format": "csv"}, headers=api.auth())
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert 'filename="fieldtrack-mileage-20261004T220000Z-20261005T220000Z.csv"' in \
        got.headers["content-disposition"]
    csv_header, *rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert csv_header[:8] == ["rep_id", "rep", "team_id", "team", "day", "working", "device_id",
                              "business_km"]
    typed: list[Callable[[str], Any]] = [int, str, int, str, str, lambda s: s == "true", int, float, float,
                                         float, float, str, float, float, int, lambda s: s or None]
    assert [[f(v) for f, v in zip(typed, row, strict=True)] for row in rows] == expected

    got = await api.client.get("/api/reports/mileage", params={**rate, "format": "xlsx"}, headers=api.auth())
    assert got.status_code == 200 and got.headers["content-disposition"].endswith('.xlsx"')
    header, *sheet = _sheet_rows(got.content)
    assert header == csv_header
    numbers = (0, 2, 6, 14)
    assert [[int(v) if i in numbers else v for i, v in enumerate(row)] for row in sheet] == expected


async def test_access_and_ranges(api: Api, world: World) -> None:
    everyone = {p.id for p in world.reps.values()}
    north = {world.reps["north-1"].id, world.reps["north-2"].id}
    seen = await report(api)
    assert {r["rep_id"] for r in seen["reps"]} == everyone

    me = world.reps["north-1"]
    assert [r["rep_id"] for r in (await report(api, me.token))["reps"]] == [me.id]
    await report(api, me.token, expect=404, rep=world.reps["north-2"].id)
    await report(api, me.token, expect=404, team=world.teams["south"])

    boss = world.managers["north"]
    assert {r["rep_id"] for r in (await report(api, boss.token))["reps"]} == north
    assert {r["rep_id"] for r in (await report(api, boss.token, team=world.teams["north"]))["reps"]} == north
    answer = await report(api, boss.token, expect=404, team=world.teams["south"])
    unknown = await report(api, boss.token, expect=404, team=999_999)
    # An unseen team is answered exactly like one that does not exist.
    assert answer["detail"].replace(str(world.teams["south"]), "X") == \
        unknown["detail"].replace("999999", "X")
    await report(api, boss.token, expect=404, rep=world.reps["south-1"].id)
    await report(api, expect=404, team=999_999)

    await report(api, expect=422, **{"from": DAY_TO, "to": DAY_FROM})
    await report(api, expect=422, to="2027-01-05T23:00:01+01:00")  # 93 days and a second
    await report(api, expect=200, to="2027-01-05T23:00:00+01:00")  # 93 days
    await report(api, expect=422, rate=-1)
    await report(api, expect=422, rate="inf")
    await report(api, expect=422, **{"from": "2026-10-05T00:00:00"})  # no zone
    # The last local day of year 9999 has no next midnight: a 422, not a crash.
    await report(api, expect=422, **{"from": "9999-12-30T00:00:00Z", "to": "9999-12-31T23:59:00Z"})
    await report(api, expect=422, **{"from": "0001-01-01T00:00:00Z", "to": "0001-01-02T00:00:00Z"})


def test_clipping_the_ranges_hours_equals_asking_per_day() -> None:
    """The report reads a rep's calendar once for the whole range and cuts it per day; that must give
    what ``working_intervals`` gives for each day alone, DST changes and periods to 24:00 included."""
    rng = random.Random(5)
    zone = ZoneInfo("Europe/Amsterdam")
    for _ in range(200):
        calendar: dict[str, list[list[str]]] = {}
        for name in rng.sample(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], rng.randint(1, 7)):
            cuts = sorted(rng.sample(range(0, 1441, 30), 2 * rng.randint(1, 3)))
            calendar[name] = [[f"{a // 60:02d}:{a % 60:02d}", f"{b // 60:02d}:{b % 60:02d}"]
                              for a, b in zip(cuts[::2], cuts[1::2], strict=True) if a < b]
        start = datetime(2026, 3, 20, tzinfo=UTC) + timedelta(hours=rng.randint(0, 24 * 230))
        end = start + timedelta(hours=rng.randint(1, 24 * 20))
        whole = working_intervals(calendar, "Europe/Amsterdam", start, end)
        for w in day_windows(start, end, zone):
            assert _clipped(whole, w.start, w.end) == working_intervals(calendar, "Europe/Amsterdam",
                                                                        w.start, w.end)
