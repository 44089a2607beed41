"""Reports on the real database, over the Reno drive (tests/data/nmea, crossing UTC midnight:
2005-09-25 23:52 → 2005-09-26 02:56 UTC) stored and processed by the processing runner.

The NMEA log is decoded with the decoder's default ``positions="sentence"``: an epoch arrives as
up to three positions with the same time, so the filters drop duplicates and routes have filtered
positions to leave out or include.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import pairwise
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest

from api.routes import reports as report_routes
from gateway.processing import ProcessingRunner
from processors import motion
from processors.fix import Fix
from protocols.model import Position
from storage.reports import day_windows
from storage.rows import StoredPosition
from storage.writer import insert_rows
from tests.api.conftest import REP, Api
from tests.processors.tracks import RENO, nmea_fixes

MIDNIGHT = datetime(2005, 9, 26, tzinfo=UTC)
FROM, TO = datetime(2005, 9, 25, 23, tzinfo=UTC), datetime(2005, 9, 26, 4, tzinfo=UTC)
# Reno cut here ends in the stop that began at 01:25 UTC (confirmed by then): its open record is a stop.
PARKED = datetime(2005, 9, 26, 1, 50, tzinfo=UTC)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@cache
def reno() -> tuple[Fix, ...]:
    return tuple(nmea_fixes(RENO))


def stored(device_id: int, fix: Fix) -> StoredPosition:
    return StoredPosition(device_id, f"dev-{device_id}", "nmea", fix.time, Position(
        fix_time=fix.time, latitude=fix.latitude, longitude=fix.longitude, valid=fix.valid,
        speed_kmh=fix.speed_kmh, course_deg=fix.course_deg, altitude_m=fix.altitude_m,
        accuracy_m=fix.accuracy_m, hdop=fix.hdop, attributes=dict(fix.attributes)))


async def device(api: Api, name: str, group_id: int | None = None) -> int:
    dev = await api.deps.devices.create(name, name)
    if group_id is not None:
        async with api.pool.connection() as conn:
            await conn.execute("UPDATE devices SET group_id = %s WHERE id = %s", (group_id, dev.id))
    return dev.id


async def group(api: Api, name: str) -> int:
    async with api.pool.connection() as conn:
        cur = await conn.execute("INSERT INTO device_groups (name) VALUES (%s) RETURNING id", (name,))
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def store(api: Api, device_id: int, fixes: Any, process: bool = True) -> None:
    async with api.pool.connection() as conn:
        await insert_rows(conn, [stored(device_id, f) for f in fixes])
    if process:
        await ProcessingRunner(api.pool).process(device_id)


async def marks(api: Api, device_id: int) -> list[tuple[Any, ...]]:
    """(time, filtered, odometer_m, speed_kmh) in processing order, straight from the table."""
    async with api.pool.connection() as conn:
        cur = await conn.execute("SELECT fix_time, filtered, odometer_m, speed_kmh FROM positions"
                                 " WHERE device_id = %s ORDER BY fix_time, fingerprint", (device_id,))
        return await cur.fetchall()


async def get(api: Api, path: str, token: str | None = None, **params: Any) -> Any:
    params = {k.rstrip("_"): v.isoformat() if isinstance(v, datetime) else v for k, v in params.items()}
    r = await api.client.get(path, params=params, headers=api.auth(token) if token else api.auth())
    assert r.status_code == 200, r.text
    return r


def odometer_at(rows: list[tuple[Any, ...]], at: datetime) -> float:
    kept = [r for r in rows if r[1] is None]
    before = [r for r in kept if r[0] <= at]
    return (before[-1] if before else kept[0])[2]


async def test_utc_days_split_the_drive_at_midnight_and_add_up(api: Api) -> None:
    dev = await device(api, "reno")
    await store(api, dev, reno())
    rows = await marks(api, dev)
    start = datetime(2005, 9, 24, tzinfo=UTC)
    path = f"/api/devices/{dev}/summary"
    summary = (await get(api, path, from_=start, to=start + timedelta(days=4))).json()
    days = summary["days"]
    assert [d["day"] for d in days] == ["2005-09-24", "2005-09-25", "2005-09-26", "2005-09-27"]
    # Days without positions are listed with nothing in them.
    for empty in (days[0], days[3]):
        assert empty["distance_km"] == 0 and empty["driving_time_s"] == 0 and empty["trips"] == 0
        assert empty["max_speed_kmh"] is None and empty["average_speed_kmh"] is None
    total_growth = odometer_at(rows, TO) - odometer_at(rows, FROM)
    before, after = (odometer_at(rows, MIDNIGHT) - odometer_at(rows, FROM),
                     odometer_at(rows, TO) - odometer_at(rows, MIDNIGHT))
    assert before > 5_000 and after > 100_000  # eight minutes at highway speed, then the rest
    assert days[1]["distance_km"] == pytest.approx(before / 1000, abs=1e-3)
    assert days[2]["distance_km"] == pytest.approx(after / 1000, abs=1e-3)
    assert summary["total"]["distance_km"] == pytest.approx(total_growth / 1000, abs=1e-3)
    assert days[1]["distance_km"] + days[2]["distance_km"] == pytest.approx(summary["total"]["distance_km"],
                                                                          abs=2e-3)
    assert days[1]["end_odometer_km"] == days[2]["start_odometer_km"]
    assert days[0]["start_odometer_km"] == days[1]["start_odometer_km"]  # before the first position
    # Driving time: the trip under way at midnight is cut there; the trip still open counts too.
    trips = (await get(api, f"/api/devices/{dev}/trips", from_=FROM, to=TO)).json()["items"]
    assert trips[-1]["open"] and sum(t["open"] for t in trips) == 1

    def inside(lo: datetime, hi: datetime) -> float:
        spans = [(datetime.fromisoformat(t["start_time"]), datetime.fromisoformat(t["end_time"]))
                 for t in trips]
        return sum(max(0.0, (min(end, hi) - max(begin, lo)).total_seconds()) for begin, end in spans)

    assert days[1]["driving_time_s"] == pytest.approx(inside(FROM, MIDNIGHT))
    assert days[1]["driving_time_s"] > 0
    assert days[2]["driving_time_s"] == pytest.approx(inside(MIDNIGHT, TO))
    assert (days[1]["trips"], days[2]["trips"], summary["total"]["trips"]) == (1, len(trips) - 1, len(trips))
    # The crossing trip's top speed before midnight is the fastest report before midnight.
    fastest = max(r[3] for r in rows if r[1] is None and r[0] <= MIDNIGHT and r[3] is not None)
    assert days[1]["max_speed_kmh"] == pytest.approx(fastest, abs=0.01)
    top = max(t["max_speed_kmh"] for t in trips)
    assert summary["total"]["max_speed_kmh"] == pytest.approx(top, abs=0.01)
    assert days[2]["average_speed_kmh"] == pytest.approx(
        days[2]["distance_km"] / (days[2]["driving_time_s"] / 3600), abs=0.01)
    assert summary["total"]["pending"] == 0 and summary["processed_until"] == "2005-09-26T02:56:32Z"

    # In Reno's own zone the whole drive is one afternoon.
    la = ZoneInfo("America/Los_Angeles")
    local = (await get(api, f"/api/devices/{dev}/summary", tz="America/Los_Angeles",
                       from_=datetime(2005, 9, 25, tzinfo=la), to=datetime(2005, 9, 26, tzinfo=la))).json()
    assert [d["day"] for d in local["days"]] == ["2005-09-25"]
    assert local["days"][0]["start"] == "2005-09-25T00:00:00-07:00"
    assert local["days"][0]["distance_km"] == pytest.approx(total_growth / 1000, abs=1e-3)
    assert local["days"][0]["trips"] == len(trips)
    assert local["days"][0]["driving_time_s"] == pytest.approx(inside(FROM, TO))


async def test_trips_and_stops_are_the_tables_plus_the_open_one(api: Api) -> None:
    driving, parked = await device(api, "driving"), await device(api, "parked")
    await store(api, driving, reno())
    await store(api, parked, [f for f in reno() if f.time < PARKED])
    for dev, open_kind in ((driving, "trips"), (parked, "stops")):
        async with api.pool.connection() as conn:
            trips = await (await conn.execute(
                "SELECT start_time, end_time, distance_m FROM trips WHERE device_id = %s ORDER BY start_time",
                (dev,))).fetchall()
            stops = await (await conn.execute(
                "SELECT start_time, end_time FROM stops WHERE device_id = %s ORDER BY start_time",
                (dev,))).fetchall()
            state = await (await conn.execute(
                "SELECT state -> 'motion' FROM processing_state WHERE device_id = %s", (dev,))).fetchone()
        assert state is not None
        now = motion.MotionState.from_json(state[0])
        open_trip, open_stop = motion.open_trip(now), motion.open_stop(now)
        assert (open_trip is not None, open_stop is not None) == (open_kind == "trips", open_kind == "stops")
        got = (await get(api, f"/api/devices/{dev}/trips", from_=FROM, to=TO)).json()
        want = [(s, e, round(m / 1000, 3), False) for s, e, m in trips]
        if open_trip:
            want.append((open_trip.start_time, open_trip.end_time, round(open_trip.distance_m / 1000, 3),
                         True))
        assert [(datetime.fromisoformat(t["start_time"]), datetime.fromisoformat(t["end_time"]),
                 t["distance_km"], t["open"]) for t in got["items"]] == want
        assert len(want) >= 5 and got["name"] in ("driving", "parked")
        got = (await get(api, f"/api/devices/{dev}/stops", from_=FROM, to=TO)).json()
        want_stops = [(s, e, False) for s, e in stops]
        if open_stop:
            want_stops.append((open_stop.start_time, open_stop.end_time, True))
        assert [(datetime.fromisoformat(s["arrival"]), datetime.fromisoformat(s["departure"]), s["open"])
                for s in got["items"]] == want_stops
    # A range inside the first trip still finds it (it began before the range); one before all is empty.
    inside = (await get(api, f"/api/devices/{driving}/trips", from_=MIDNIGHT,
                        to=MIDNIGHT + timedelta(minutes=1))).json()["items"]
    assert len(inside) == 1 and inside[0]["start_time"] == "2005-09-25T23:52:34Z"
    assert (await get(api, f"/api/devices/{driving}/trips", from_=FROM - timedelta(days=1), to=FROM)
            ).json()["items"] == []
    # Exports: the same table as CSV and XLSX, as downloads with a file name.
    json_items = (await get(api, f"/api/devices/{driving}/trips", from_=FROM, to=TO)).json()["items"]
    r = await get(api, f"/api/devices/{driving}/trips", from_=FROM, to=TO, format="csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert f'filename="fieldtrack-trips-device-{driving}-20050925T230000Z-20050926T040000Z.csv"' in \
        r.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [float(t["distance_km"]) for t in table] == [t["distance_km"] for t in json_items]
    assert [t["open"] for t in table] == ["false"] * (len(table) - 1) + ["true"]
    r = await get(api, f"/api/devices/{parked}/stops", from_=FROM, to=TO, format="xlsx")
    assert r.headers["content-type"] == XLSX and ".xlsx" in r.headers["content-disposition"]
    sheet = zipfile.ZipFile(io.BytesIO(r.content)).read("xl/worksheets/sheet1.xml").decode()
    assert sheet.count("<row ") == 1 + len(want_stops)


async def test_route_in_every_format(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = await device(api, "route")
    await store(api, dev, reno()[:600])
    rows = await marks(api, dev)
    kept = [r for r in rows if r[1] is None]
    assert 0 < len(kept) < len(rows)
    path = f"/api/devices/{dev}/route"
    body = (await get(api, path, from_=FROM, to=TO)).json()
    assert body["count"] == len(kept) and all(p["filtered"] is None for p in body["points"])
    assert [p["odometer_m"] for p in body["points"]] == [r[2] for r in kept]
    assert all(p["moving"] is not None for p in body["points"])
    full = (await get(api, path, from_=FROM, to=TO, include_filtered="true")).json()
    assert full["count"] == len(rows)
    assert sum(p["filtered"] is not None for p in full["points"]) == len(rows) - len(kept)
    r = await get(api, path, from_=FROM, to=TO, format="geojson")
    assert r.headers["content-type"] == "application/geo+json"
    assert ".geojson" in r.headers["content-disposition"]
    features = r.json()["features"]
    assert features[0]["geometry"]["type"] == "LineString"
    assert len(features[0]["geometry"]["coordinates"]) == len(kept) == len(features) - 1
    r = await get(api, path, from_=FROM, to=TO, format="gpx")
    assert r.headers["content-type"].startswith("application/gpx+xml")
    points = ElementTree.fromstring(r.content).findall(".//{http://www.topografix.com/GPX/1/1}trkpt")
    assert len(points) == len(kept)
    assert float(points[0].get("lat", "nan")) == pytest.approx(body["points"][0]["latitude"], abs=1e-7)
    r = await get(api, path, from_=FROM, to=TO, format="csv", include_filtered="true")
    assert r.headers["content-type"].startswith("text/csv") and ".csv" in r.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert len(table) == len(rows) and sum(1 for t in table if t["filtered"]) == len(rows) - len(kept)
    # A range with too many points is refused rather than sent.
    monkeypatch.setattr(report_routes, "MAX_ROUTE_POINTS", len(kept) - 1)
    r = await api.client.get(path, params={"from": FROM.isoformat(), "to": TO.isoformat()},
                             headers=api.auth())
    assert r.status_code == 422 and "shorter range" in r.json()["detail"]


async def test_fleet_summary_is_the_per_device_summaries(api: Api) -> None:
    north = await group(api, "north")
    a, b = await device(api, "a", north), await device(api, "b", north)
    c = await device(api, "c")
    await store(api, a, reno())
    await store(api, b, [f for f in reno() if f.time < PARKED])
    window = {"from_": datetime(2005, 9, 25, 20, tzinfo=UTC), "to": datetime(2005, 9, 27, tzinfo=UTC),
              "tz": "Europe/Amsterdam"}
    single = {dev: (await get(api, f"/api/devices/{dev}/summary", **window)).json() for dev in (a, b, c)}
    assert single[a]["total"]["distance_km"] > single[b]["total"]["distance_km"] > 0
    assert single[c]["total"]["distance_km"] == 0 and single[c]["total"]["end_odometer_km"] is None
    assert [d["day"] for d in single[a]["days"]] == ["2005-09-25", "2005-09-26", "2005-09-27"]
    for params, ids in (({}, [a, b, c]), ({"group": north}, [a, b]), ({"device": c}, [c]),
                        ({"group": north, "device": [c, a]}, [a, b, c])):
        report = (await get(api, "/api/reports/summary", **window, **params)).json()
        assert report["tz"] == "Europe/Amsterdam"
        assert report["devices"] == [single[dev] for dev in ids]
    r = await get(api, "/api/reports/summary", **window, format="csv")
    assert r.headers["content-type"].startswith("text/csv")
    name = "fieldtrack-summary-20050925T200000Z-20050927T000000Z.csv"
    assert f'filename="{name}"' in r.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(table) == 3 * (3 + 1)
    totals = {int(t["device_id"]): float(t["distance_km"]) for t in table if t["day"] == "total"}
    assert totals == {dev: single[dev]["total"]["distance_km"] for dev in (a, b, c)}
    r = await get(api, "/api/reports/summary", **window, format="xlsx", group=north)
    assert r.headers["content-type"] == XLSX
    sheet = zipfile.ZipFile(io.BytesIO(r.content)).read("xl/worksheets/sheet1.xml").decode()
    assert sheet.count("<row ") == 1 + 2 * 4
    for params in ({"group": 999_999}, {"device": 999_999}):
        r = await api.client.get("/api/reports/summary", params={"from": "2005-09-25T00:00:00Z",
                                                                  "to": "2005-09-26T00:00:00Z", **params},
                                 headers=api.auth())
        assert r.status_code == 404 and "999999" in r.json()["detail"]


async def test_pending_positions_are_reported_until_processed(api: Api) -> None:
    dev = await device(api, "late")
    first, rest = reno()[:300], reno()[300:900]
    path = f"/api/devices/{dev}/summary"
    await store(api, dev, first, process=False)
    unprocessed = (await get(api, path, from_=FROM, to=TO)).json()
    stored_count = len(await marks(api, dev))
    assert unprocessed["total"]["pending"] == stored_count > 0
    assert unprocessed["total"]["distance_km"] == 0 and unprocessed["total"]["start_odometer_km"] is None
    assert unprocessed["processed_until"] is None
    await ProcessingRunner(api.pool).process(dev)
    processed = (await get(api, path, from_=FROM, to=TO)).json()
    assert processed["total"]["pending"] == 0 and processed["total"]["distance_km"] > 0
    await store(api, dev, rest, process=False)
    newer = (await get(api, path, from_=FROM, to=TO)).json()
    assert newer["total"]["pending"] == len(await marks(api, dev)) - stored_count > 0
    assert newer["total"]["distance_km"] == processed["total"]["distance_km"]


@pytest.mark.parametrize(("params", "needle"), [
    ({"from": "2005-09-25T00:00:00", "to": "2005-09-26T00:00:00Z"}, "time zone"),
    ({"from": "2005-09-26T00:00:00Z", "to": "2005-09-26T00:00:00Z"}, "after"),
    ({"from": "2005-09-26T00:00:00Z", "to": "2005-09-25T00:00:00Z"}, "after"),
    ({"from": "2004-01-01T00:00:00Z", "to": "2005-01-02T00:00:00Z"}, "366 days"),
    ({"from": "2005-09-25T00:00:00Z", "to": "2005-09-26T00:00:00Z", "tz": "Mars/Olympus"}, "time zone"),
    ({"from": "2005-09-25T00:00:00Z", "to": "2005-09-26T00:00:00Z", "tz": "../../etc/passwd"}, "time zone"),
    ({"to": "2005-09-26T00:00:00Z"}, "from"),
])
async def test_bad_ranges_and_zones_are_422(api: Api, params: dict[str, str], needle: str) -> None:
    dev = await device(api, "x")
    for path in (f"/api/devices/{dev}/summary", "/api/reports/summary"):
        r = await api.client.get(path, params=params, headers=api.auth())
        assert r.status_code == 422 and r.json()["error"] == "invalid"
        assert needle in json.dumps(r.json()["detail"])


async def test_unknown_device_is_404_and_a_rep_token_without_a_user_sees_no_device(api: Api) -> None:
    """A device a caller may not see is answered exactly like one that does not exist (the rules
    themselves: tests/api/test_access.py)."""
    params = {"from": "2005-09-25T00:00:00Z", "to": "2005-09-26T00:00:00Z"}
    for kind in ("trips", "stops", "summary", "route"):
        r = await api.client.get(f"/api/devices/987654/{kind}", params=params, headers=api.auth())
        assert r.status_code == 404
        assert r.json() == {"error": "not_found", "detail": "device 987654 not found"}
    dev = await device(api, "not-the-reps")
    for kind in ("trips", "stops", "summary", "route"):
        assert (await api.client.get(f"/api/devices/{dev}/{kind}", params=params)).status_code == 401
        r = await api.client.get(f"/api/devices/{dev}/{kind}", params=params, headers=api.auth(REP))
        assert r.status_code == 404
        assert r.json() == {"error": "not_found", "detail": f"device {dev} not found"}
        r = await api.client.get(f"/api/devices/{dev}/{kind}", params=params, headers=api.auth())
        assert r.status_code == 200, r.text
    r = await api.client.get("/api/reports/summary", params=params, headers=api.auth(REP))
    assert r.status_code == 200 and r.json()["devices"] == []
    r = await api.client.get("/api/reports/summary", params=params, headers=api.auth())
    assert r.status_code == 200 and [d["device_id"] for d in r.json()["devices"]] == [dev]


def test_local_days_follow_the_zone_rules() -> None:
    amsterdam = ZoneInfo("Europe/Amsterdam")
    spring = day_windows(datetime(2026, 3, 28, tzinfo=amsterdam), datetime(2026, 3, 31, tzinfo=amsterdam),
                         amsterdam)
    assert [w.day for w in spring] == [date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)]
    assert [(w.end - w.start) / timedelta(hours=1) for w in spring] == [24, 23, 24]
    # São Paulo skipped midnight on 2018-11-04 (00:00 became 01:00): that day began at 01:00 -02.
    sao_paulo = ZoneInfo("America/Sao_Paulo")
    days = day_windows(datetime(2018, 11, 3, 12, tzinfo=UTC), datetime(2018, 11, 5, 12, tzinfo=UTC),
                       sao_paulo)
    assert [w.day for w in days] == [date(2018, 11, 3), date(2018, 11, 4), date(2018, 11, 5)]
    assert days[1].start == datetime(2018, 11, 4, 3, tzinfo=UTC)
    # Samoa skipped 2011-12-30 altogether.
    apia = ZoneInfo("Pacific/Apia")
    days = day_windows(datetime(2011, 12, 29, 12, tzinfo=apia), datetime(2011, 12, 31, 12, tzinfo=apia), apia)
    assert [w.day for w in days] == [date(2011, 12, 29), date(2011, 12, 31)]
    assert all(a.end == b.start for a, b in pairwise(days))
