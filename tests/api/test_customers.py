"""Customers over the API on a real database: CRUD, validation, who sees and writes what, nearby
search checked against a haversine written here, and CSV import (bad rows, upsert, BOM, dry run,
limits)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import pytest

from storage.customer_import import ImportResult, ImportRow, _write
from storage.customers import bounding_box
from tests.api.conftest import ADMIN, REP, Api

MGR_A, MGR_B, REP1, REP2, REP3 = "mgr-a-token", "mgr-b-token", "rep1-token", "rep2-token", "rep3-token"
SHOP = {"name": "Bakker Bart", "address": "Damrak 1, Amsterdam", "latitude": 52.3738, "longitude": 4.8910}


@dataclass
class People:
    team_a: int
    team_b: int
    mgr_a: int
    rep1: int
    rep2: int
    rep3: int


async def _id(api: Api, sql: str, *params: Any) -> int:
    async with api.pool.connection() as conn:
        cur = await conn.execute(sql.encode(), params)
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
async def people(api: Api) -> People:
    """Team North (default grades) with manager A and reps 1, 2; team South (grades Gold, Silver)
    with manager B and rep 3. Each person has a token bound to their user."""
    a = await _id(api, "INSERT INTO teams (name) VALUES ('North') RETURNING id")
    b = await _id(api, "INSERT INTO teams (name, settings) VALUES ('South', %s) RETURNING id",
                  '{"grades": ["Gold", "Silver"]}')
    user = "INSERT INTO users (name, email, role, team_id) VALUES (%s, %s, %s, %s) RETURNING id"
    mgr_a = await _id(api, user, "Manager A", "mgr.a@example.com", "manager", a)
    mgr_b = await _id(api, user, "Manager B", "mgr.b@example.com", "manager", b)
    reps = [await _id(api, user, f"Rep {n}", f"rep{n}@example.com", "rep", t)
            for n, t in ((1, a), (2, a), (3, b))]
    async with api.pool.connection() as conn:
        await conn.execute("INSERT INTO team_managers (team_id, user_id) VALUES (%s, %s), (%s, %s)",
                           (a, mgr_a, b, mgr_b))
    for token, uid in zip((MGR_A, MGR_B, REP1, REP2, REP3), (mgr_a, mgr_b, *reps), strict=True):
        await api.deps.tokens.add(token, token, "rep", uid)  # the user's role wins over the token's
    return People(a, b, mgr_a, *reps)


async def create(api: Api, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    r = await api.client.post("/api/customers", json=body, headers=api.auth(token or ADMIN))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def count(api: Api) -> int:
    return await _id(api, "SELECT count(*) FROM customers")


async def test_crud_round_trip(api: Api, people: People) -> None:
    body = SHOP | {"radius_m": 80, "grade": "A", "tags": ["bread", "vip", "bread"],
                   "team_id": people.team_a, "assigned_rep_id": people.rep1,
                   "custom_fields": {"opening": {"mon": "7-18"}, "vat": "NL001"}, "external_id": "ERP-1"}
    r = await api.client.post("/api/customers", json=body, headers=api.auth())
    assert r.status_code == 201, r.text
    made = r.json()
    assert r.headers["location"] == f"/api/customers/{made['id']}"
    assert {k: made[k] for k in body} == body | {"tags": ["bread", "vip"]}

    url = f"/api/customers/{made['id']}"
    assert (await api.client.get(url, headers=api.auth())).json() == made
    r = await api.client.patch(url, json={"name": "Bakker Bart & Zn", "grade": None, "address": None},
                               headers=api.auth())
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["name"] == "Bakker Bart & Zn" and patched["grade"] is None and patched["address"] is None
    assert patched["latitude"] == body["latitude"] and patched["assigned_rep_id"] == people.rep1
    assert patched["updated_at"] > made["updated_at"] and patched["created_at"] == made["created_at"]

    assert (await api.client.delete(url, headers=api.auth())).status_code == 204
    r = await api.client.get(url, headers=api.auth())
    assert r.status_code == 404 and r.json()["detail"] == f"customer {made['id']} not found"
    assert (await api.client.delete(url, headers=api.auth())).status_code == 404


async def test_defaults_and_team_from_rep(api: Api, people: People) -> None:
    made = await create(api, SHOP | {"assigned_rep_id": people.rep3})
    assert made["radius_m"] == 150 and made["tags"] == [] and made["custom_fields"] == {}
    assert made["team_id"] == people.team_b  # the rep's team, so the rep's manager sees it
    assert made["grade"] is None and made["external_id"] is None


@pytest.mark.parametrize(("change", "where"), [
    ({"latitude": 90.5}, "body.latitude"),
    ({"longitude": -180.01}, "body.longitude"),
    ({"radius_m": 19.9}, "body.radius_m"),
    ({"radius_m": 3001}, "body.radius_m"),
    ({"name": "  "}, "body.name"),
    ({"tags": [f"t{i}" for i in range(51)]}, "body.tags"),
    ({"tags": ["x" * 65]}, "body.tags.0"),
    ({"custom_fields": {"blob": "x" * 16_400}}, "body.custom_fields"),
    ({"custom_fields": ["not", "an", "object"]}, "body.custom_fields"),
    ({"colour": "red"}, "body.colour"),
    ({"grade": "Z"}, "body.grade"),  # not one of the default A, B, C
    ({"team_id": 999_999}, "body.team_id"),
    ({"assigned_rep_id": 999_999}, "body.assigned_rep_id"),
])
async def test_invalid_customer_is_422_naming_the_field(api: Api, people: People, change: dict[str, Any],
                                                        where: str) -> None:
    r = await api.client.post("/api/customers", json=SHOP | change, headers=api.auth())
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid"
    assert where in [p["where"] for p in r.json()["detail"]], r.json()
    assert await count(api) == 0


async def test_references_checked_against_teams_and_reps(api: Api, people: People) -> None:
    async def problem(body: dict[str, Any]) -> str:
        r = await api.client.post("/api/customers", json=SHOP | body, headers=api.auth())
        assert r.status_code == 422, r.text
        return str(r.json()["detail"][0]["problem"])

    assert "Gold, Silver" in await problem({"team_id": people.team_b, "grade": "A"})
    assert "is a manager, not a rep" in await problem({"assigned_rep_id": people.mgr_a})
    assert f"in team {people.team_b}" in await problem({"team_id": people.team_a,
                                                        "assigned_rep_id": people.rep3})
    made = await create(api, SHOP | {"team_id": people.team_b, "grade": "Gold"})
    assert made["grade"] == "Gold"
    # Moving to a team whose grades lack Gold is refused, the customer unchanged.
    r = await api.client.patch(f"/api/customers/{made['id']}", json={"team_id": people.team_a},
                               headers=api.auth())
    assert r.status_code == 422 and r.json()["detail"][0]["where"] == "body.grade"
    r = await api.client.patch(f"/api/customers/{made['id']}", json={"name": None}, headers=api.auth())
    assert r.status_code == 422 and "name cannot be null" in r.text
    assert (await api.client.get(f"/api/customers/{made['id']}", headers=api.auth())).json() == made


async def test_external_id_is_unique(api: Api, people: People) -> None:
    await create(api, SHOP | {"external_id": "ERP-7"})
    r = await api.client.post("/api/customers", json=SHOP | {"external_id": "ERP-7"}, headers=api.auth())
    assert r.status_code == 409 and r.json()["error"] == "conflict"


async def test_list_filters_and_keyset_pages(api: Api, people: People) -> None:
    rows = [
        {"name": "Alpha Foods", "team_id": people.team_a, "grade": "A", "tags": ["food"]},
        {"name": "beta 100% Bikes", "address": "Main St", "assigned_rep_id": people.rep1, "tags": ["bike"]},
        {"name": "Gamma", "address": "Alpha Road 3", "team_id": people.team_b, "grade": "Gold"},
        {"name": "Delta", "assigned_rep_id": people.rep2, "grade": "B", "tags": ["food", "bike"]},
        {"name": "Epsilon 1000"},
    ]
    ids = [(await create(api, SHOP | r))["id"] for r in rows]

    async def names(query: str) -> list[str]:
        r = await api.client.get(f"/api/customers?{query}", headers=api.auth())
        assert r.status_code == 200, r.text
        return [c["name"] for c in r.json()["items"]]

    assert await names(f"team={people.team_a}") == ["Alpha Foods", "beta 100% Bikes", "Delta"]
    assert await names(f"rep={people.rep2}") == ["Delta"]
    assert await names("grade=B") == ["Delta"]
    assert await names("tag=bike") == ["beta 100% Bikes", "Delta"]
    assert await names("q=ALPHA") == ["Alpha Foods", "Gamma"]  # name or address, any case
    assert await names("q=100%25") == ["beta 100% Bikes"]  # % is a character, not a wildcard
    assert await names("tag=food&grade=A") == ["Alpha Foods"]

    seen, after = [], None
    while True:
        r = await api.client.get("/api/customers?limit=2" + (f"&after={after}" if after else ""),
                                 headers=api.auth())
        page = r.json()
        seen += [c["id"] for c in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == ids
    r = await api.client.get("/api/customers?limit=1001", headers=api.auth())
    assert r.status_code == 422


# ---- nearby

def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The haversine in its atan2 form on unit vectors: written here so the test does not check the
    server's formula against itself."""
    def unit(lat: float, lon: float) -> tuple[float, float, float]:
        p, q = math.radians(lat), math.radians(lon)
        return math.cos(p) * math.cos(q), math.cos(p) * math.sin(q), math.sin(p)
    a, b = unit(lat1, lon1), unit(lat2, lon2)
    cross = (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return 6_371_008.8 * math.atan2(math.sqrt(sum(c * c for c in cross)), dot)


async def bulk_insert(api: Api, points: list[tuple[float, float]], **columns: Any) -> list[int]:
    async with api.pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO customers (name, latitude, longitude, team_id, assigned_rep_id)"
            " SELECT 'p' || n, lat, lon, %s, %s FROM unnest(%s::float8[], %s::float8[])"
            " WITH ORDINALITY AS u(lat, lon, n) ORDER BY n RETURNING id",
            (columns.get("team_id"), columns.get("rep_id"), [p[0] for p in points], [p[1] for p in points]))
        return [int(r[0]) for r in await cur.fetchall()]


@pytest.mark.parametrize(("lat", "lon"), [(52.37, 4.89), (-33.87, 151.21), (64.0, -21.9)])
async def test_nearby_nearest_first_with_exact_distances(api: Api, lat: float, lon: float) -> None:
    rng = random.Random(f"{lat},{lon}")
    # Spread ±0.3° (tens of km) so the 10 km circle cuts through the points and the box corners.
    points = [(lat + rng.uniform(-0.3, 0.3), lon + rng.uniform(-0.3, 0.3) / math.cos(math.radians(lat)))
              for _ in range(1500)]
    ids = await bulk_insert(api, points)
    truth = sorted((great_circle_m(lat, lon, *p), i) for i, p in zip(ids, points, strict=True))
    inside = [(m, i) for m, i in truth if m <= 10_000]
    assert 30 < len(inside) < len(truth)

    r = await api.client.get(f"/api/customers/nearby?lat={lat}&lon={lon}&radius_m=10000&limit=1000",
                             headers=api.auth())
    assert r.status_code == 200, r.text
    got = r.json()["items"]
    assert [c["id"] for c in got] == [i for _, i in inside]
    for c, (m, _) in zip(got, inside, strict=True):
        assert c["distance_m"] == pytest.approx(m, abs=1e-3)
    r = await api.client.get(f"/api/customers/nearby?lat={lat}&lon={lon}&radius_m=10000&limit=5",
                             headers=api.auth())
    assert [c["id"] for c in r.json()["items"]] == [i for _, i in inside[:5]]


async def test_nearby_across_the_antimeridian_and_near_a_pole(api: Api) -> None:
    east, west, polar = await bulk_insert(api, [(-16.5, 179.99), (-16.5, -179.99), (89.99, 100.0)])
    r = await api.client.get("/api/customers/nearby?lat=-16.5&lon=179.995&radius_m=5000", headers=api.auth())
    assert [c["id"] for c in r.json()["items"]] == [east, west]
    assert r.json()["items"][1]["distance_m"] == pytest.approx(great_circle_m(-16.5, 179.995, -16.5, -179.99))
    # 10 km from the pole on the other side of the globe: only a box spanning every longitude finds it.
    r = await api.client.get("/api/customers/nearby?lat=89.95&lon=-80&radius_m=10000", headers=api.auth())
    assert [c["id"] for c in r.json()["items"]] == [polar]


def destination(lat: float, lon: float, bearing_deg: float, distance_m: float) -> tuple[float, float]:
    d, t, p = distance_m / 6_371_008.8, math.radians(bearing_deg), math.radians(lat)
    p2 = math.asin(math.sin(p) * math.cos(d) + math.cos(p) * math.sin(d) * math.cos(t))
    dl = math.atan2(math.sin(t) * math.sin(d) * math.cos(p), math.cos(d) - math.sin(p) * math.sin(p2))
    return math.degrees(p2), (lon + math.degrees(dl) + 540) % 360 - 180


@pytest.mark.parametrize(("lat", "lon", "radius_m"), [(52.37, 4.89, 10_000), (-16.5, 179.9, 50_000),
                                                      (70.0, -179.95, 20_000), (0.0, 0.0, 1_000)])
def test_bounding_box_holds_the_circle_tightly(lat: float, lon: float, radius_m: float) -> None:
    south, north, lons = bounding_box(lat, lon, radius_m)
    circle = [destination(lat, lon, b / 4, radius_m) for b in range(360 * 4)]
    for p_lat, p_lon in circle:
        assert south <= p_lat <= north and any(w <= p_lon <= e for w, e in lons)
    # Tight: the box edges are where the circle reaches (a looser box would only cost speed, but a
    # box computed with the wrong formula shows here first).
    assert max(p for p, _ in circle) == pytest.approx(north, abs=1e-4)
    assert min(p for p, _ in circle) == pytest.approx(south, abs=1e-4)
    span = sum(e - w for w, e in lons)
    unwrapped = [(q - lon + 540) % 360 - 180 for _, q in circle]
    assert max(unwrapped) - min(unwrapped) == pytest.approx(span, abs=1e-4)


@pytest.mark.parametrize("query", ["lat=91&lon=0", "lat=0&lon=181", "lat=0&lon=0&radius_m=50001",
                                   "lat=0&lon=0&radius_m=0", "lon=0", "lat=nan&lon=0"])
async def test_nearby_refuses_bad_queries(api: Api, query: str) -> None:
    r = await api.client.get(f"/api/customers/nearby?{query}", headers=api.auth())
    assert r.status_code == 422 and r.json()["error"] == "invalid"


# ---- who sees and writes what

async def test_reps_see_their_own_and_their_teams_unassigned(api: Api, people: People) -> None:
    mine = await create(api, SHOP | {"name": "Mine", "assigned_rep_id": people.rep1})
    open_a = await create(api, SHOP | {"name": "Open North", "team_id": people.team_a})
    theirs = await create(api, SHOP | {"name": "Rep 2's", "assigned_rep_id": people.rep2})
    south = await create(api, SHOP | {"name": "Open South", "team_id": people.team_b})

    r = await api.client.get("/api/customers", headers=api.auth(REP1))
    assert [c["id"] for c in r.json()["items"]] == [mine["id"], open_a["id"]]
    for hidden in (theirs, south):
        r = await api.client.get(f"/api/customers/{hidden['id']}", headers=api.auth(REP1))
        assert r.status_code == 404 and r.json()["detail"] == f"customer {hidden['id']} not found"
    r = await api.client.get(f"/api/customers/nearby?lat={SHOP['latitude']}&lon={SHOP['longitude']}",
                             headers=api.auth(REP1))
    assert sorted(c["id"] for c in r.json()["items"]) == [mine["id"], open_a["id"]]
    # Reps create only for themselves (the default) and change nothing.
    made = await create(api, SHOP | {"name": "New shop"}, REP1)
    assert made["assigned_rep_id"] == people.rep1 and made["team_id"] == people.team_a
    r = await api.client.post("/api/customers", json=SHOP | {"assigned_rep_id": people.rep2},
                              headers=api.auth(REP1))
    assert r.status_code == 403
    assert (await api.client.patch(f"/api/customers/{mine['id']}", json={"name": "x"},
                                   headers=api.auth(REP1))).status_code == 403
    r = await api.client.delete(f"/api/customers/{mine['id']}", headers=api.auth(REP1))
    assert r.status_code == 403
    assert (await api.client.patch(f"/api/customers/{theirs['id']}", json={"name": "x"},
                                   headers=api.auth(REP1))).status_code == 404
    # A rep token of no user sees nothing.
    assert (await api.client.get("/api/customers", headers=api.auth(REP))).json()["items"] == []


async def test_managers_see_and_write_their_teams_only(api: Api, people: People) -> None:
    north = await create(api, SHOP | {"assigned_rep_id": people.rep2})
    south = await create(api, SHOP | {"team_id": people.team_b, "grade": "Silver"})
    r = await api.client.get("/api/customers", headers=api.auth(MGR_A))
    assert [c["id"] for c in r.json()["items"]] == [north["id"]]
    assert (await api.client.get(f"/api/customers/{south['id']}", headers=api.auth(MGR_A))).status_code == 404
    assert (await api.client.get(f"/api/customers/{south['id']}", headers=api.auth(MGR_B))).status_code == 200

    r = await api.client.patch(f"/api/customers/{north['id']}", json={"grade": "C"}, headers=api.auth(MGR_A))
    assert r.status_code == 200 and r.json()["grade"] == "C"
    r = await api.client.patch(f"/api/customers/{north['id']}",
                               json={"team_id": people.team_b, "assigned_rep_id": None, "grade": None},
                               headers=api.auth(MGR_A))
    assert r.status_code == 403
    r = await api.client.post("/api/customers", json=SHOP | {"team_id": people.team_b},
                              headers=api.auth(MGR_A))
    assert r.status_code == 403
    await create(api, SHOP | {"team_id": people.team_a}, MGR_A)
    for customer, status in ((south, 404), (north, 204)):
        r = await api.client.delete(f"/api/customers/{customer['id']}", headers=api.auth(MGR_A))
        assert r.status_code == status


# ---- CSV import

CSV = (
    "name,address,latitude,longitude,radius_m,grade,tags,team,rep,external_id,Colour\n"
    "Alpha,Dam 1,52.37,4.89,80,A,food;vip,North,,C-1,red\n"
    "Beta,,52.38,4.90,,B,,{team_a},rep2@example.com,C-2,\n"
    "Bad lat,,95,4.9,,,,North,,C-3,\n"
    ",nameless,52.3,4.9,,,,North,,C-4,\n"
    "\"Gamma, the\n second\",,52.39,4.91,,,bike,North,REP1@example.com,C-5,blue\n"
    "Lost,,52.3,4.9,,,,Nowhere,,C-6,\n"
    "Tiny,,52.3,4.9,5,,,North,,C-7,\n"
)


def csv_text(people: People, text: str = CSV) -> str:
    return text.replace("{team_a}", str(people.team_a))


async def upload(api: Api, body: str | bytes, query: str = "", token: str | None = None) -> Any:
    content = body.encode() if isinstance(body, str) else body
    return await api.client.post(f"/api/customers/import{query}", content=content,
                                 headers=api.auth(token or ADMIN) | {"Content-Type": "text/csv"})


async def test_import_good_rows_and_reports_bad_ones(api: Api, people: People) -> None:
    r = await upload(api, csv_text(people))
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["imported"], report["updated"], report["unchanged"]) == (3, 0, 0)
    assert report["errors"] == [
        {"line": 4, "error": "latitude 95 out of range (-90 to 90)"},
        {"line": 5, "error": "name missing"},
        {"line": 8, "error": "team: unknown team 'Nowhere'"},
        {"line": 9, "error": "radius_m 5 out of range (20 to 3000)"},
    ]
    items = (await api.client.get("/api/customers", headers=api.auth())).json()["items"]
    got = {c["external_id"]: c for c in items}
    assert sorted(got) == ["C-1", "C-2", "C-5"]
    assert got["C-1"]["tags"] == ["food", "vip"] and got["C-1"]["custom_fields"] == {"Colour": "red"}
    assert got["C-1"]["radius_m"] == 80 and got["C-1"]["team_id"] == people.team_a
    assert got["C-2"]["assigned_rep_id"] == people.rep2 and got["C-2"]["radius_m"] == 150
    assert got["C-2"]["address"] is None and got["C-2"]["custom_fields"] == {}
    assert got["C-5"]["name"] == "Gamma, the\n second" and got["C-5"]["assigned_rep_id"] == people.rep1

    # The same file again changes nothing; one changed cell updates that customer only.
    r = await upload(api, csv_text(people))
    assert (r.json()["imported"], r.json()["updated"], r.json()["unchanged"]) == (0, 0, 3)
    after = (await api.client.get("/api/customers", headers=api.auth())).json()["items"]
    assert after == items
    r = await upload(api, csv_text(people).replace("Dam 1", "Dam 2"))
    assert (r.json()["imported"], r.json()["updated"], r.json()["unchanged"]) == (0, 1, 2)
    assert await count(api) == 3


async def test_import_keeps_columns_the_file_lacks(api: Api, people: People) -> None:
    made = await create(api, SHOP | {"team_id": people.team_a, "grade": "B", "tags": ["keep"],
                                     "custom_fields": {"vat": "NL1", "Colour": "green"},
                                     "external_id": "K-1"})
    r = await upload(api, "external_id,name,latitude,longitude,Colour\nK-1,Renamed,52.1,4.1,red\n")
    assert r.json()["updated"] == 1, r.text
    got = (await api.client.get(f"/api/customers/{made['id']}", headers=api.auth())).json()
    assert got["name"] == "Renamed" and got["latitude"] == 52.1
    assert got["grade"] == "B" and got["tags"] == ["keep"] and got["team_id"] == people.team_a
    assert got["custom_fields"] == {"vat": "NL1", "Colour": "red"}


async def test_import_bom_multipart_and_dry_run(api: Api, people: People) -> None:
    text = "name,latitude,longitude,team\nOne,52.1,4.1,North\nTwo,52.2,4.2,North\n"
    r = await upload(api, "\ufeff" + text, "?dry_run=true")
    assert r.json() == {"imported": 2, "updated": 0, "unchanged": 0, "errors": [], "dry_run": True}
    assert await count(api) == 0
    r = await api.client.post("/api/customers/import", headers=api.auth(),
                              files={"file": ("shops.csv", ("\ufeff" + text).encode(), "text/csv")})
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 2 and await count(api) == 2
    names = [c["name"] for c in (await api.client.get("/api/customers", headers=api.auth())).json()["items"]]
    assert names == ["One", "Two"]


async def test_import_refuses_oversize_and_unusable_files(api: Api, people: People) -> None:
    row = "Shop with a long enough name to fill the file quickly,52.1,4.1\n"
    big = "name,latitude,longitude\n" + row * (5 * 2**20 // len(row) + 1)
    r = await upload(api, big)
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    r = await upload(api, "name,latitude,longitude\n" + "s,1,1\n" * 50_001)
    assert r.status_code == 413 and "50000 rows" in r.json()["detail"]
    r = await upload(api, "name,lat,lon\ns,1,1\n")
    assert r.status_code == 422 and "lacks latitude, longitude" in r.json()["detail"][0]["problem"]
    r = await upload(api, b"name,latitude,longitude\n\xff\xfe,1,1\n")
    assert r.status_code == 422 and "not UTF-8" in r.json()["detail"][0]["problem"]
    r = await api.client.post("/api/customers/import", content=b"{}",
                              headers=api.auth() | {"Content-Type": "application/json"})
    assert r.status_code == 415
    assert await count(api) == 0


async def test_import_respects_teams_and_roles(api: Api, people: People) -> None:
    await create(api, SHOP | {"team_id": people.team_b, "external_id": "S-1"})
    text = ("name,latitude,longitude,team,external_id\n"
            "Mine,52.1,4.1,North,N-1\nTheirs,52.1,4.1,South,N-2\nTaken,52.1,4.1,North,S-1\n"
            "Again,52.1,4.1,North,N-1\nNo team,52.1,4.1,,N-3\n")
    r = await upload(api, text, token=MGR_A)
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 1
    assert [e["line"] for e in r.json()["errors"]] == [3, 4, 5, 6]
    assert "team " in r.json()["errors"][0]["error"] and "may not change" in r.json()["errors"][1]["error"]
    assert "repeats line 2" in r.json()["errors"][2]["error"]
    r = await upload(api, text, token=REP1)
    assert r.status_code == 403


async def test_import_write_isolates_a_row_whose_team_vanished(api: Api, people: People) -> None:
    """A team deleted between the checks and the write: that row fails alone, the others land."""
    def row(line: int, team_id: int) -> ImportRow:
        values = {"name": f"Row {line}", "address": None, "latitude": 52.0, "longitude": 4.0,
                  "radius_m": 150.0, "grade": None, "tags": [], "custom_fields": {},
                  "external_id": f"V-{line}", "team_id": team_id, "assigned_rep_id": None}
        return ImportRow(line, values, None, None)

    result = ImportResult()
    async with api.pool.connection() as conn, conn.transaction():
        await _write(conn, [row(2, people.team_a), row(3, 999_999), row(4, people.team_b)],
                     frozenset({"name", "latitude", "longitude", "team_id"}), [], {}, result)
    assert result.imported == 2 and result.updated == 0 and result.unchanged == 0
    assert [line for line, _ in result.errors] == [3] and "foreign key" in result.errors[0][1]
    assert await _id(api, "SELECT count(*) FROM customers WHERE external_id IN ('V-2', 'V-4')") == 2
    assert await count(api) == 2
