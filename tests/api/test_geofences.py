"""Geofences over the API on a real database: CRUD for each kind, refused geometry, auth, 404s,
pagination, GeoJSON output, and the store's version() and load_fences() for the processing runner."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from processors.fences import fence_from_feature
from storage.geofences import GeofenceStore
from tests.api.conftest import REP, Api

CIRCLE = {"name": "Depot", "geometry": {"type": "Point", "coordinates": [4.9, 52.37]}, "radius_m": 150}
SQUARE = [[4.88, 52.36], [4.90, 52.36], [4.90, 52.38], [4.88, 52.38], [4.88, 52.36]]
HOLE = [[4.885, 52.365], [4.885, 52.37], [4.89, 52.37], [4.89, 52.365], [4.885, 52.365]]
POLYGON = {"name": "Centre", "geometry": {"type": "Polygon", "coordinates": [SQUARE, HOLE]},
           "speed_limit_kmh": 30, "attributes": {"colour": "red"}}
CORRIDOR = {"name": "A10", "geometry": {"type": "LineString", "coordinates": [[4.8, 52.3], [4.85, 52.32],
                                                                              [4.9, 52.31]]},
            "width_m": 40}
KINDS = {"circle": CIRCLE, "polygon": POLYGON, "corridor": CORRIDOR}


async def create(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.client.post("/api/geofences", json=body, headers=api.auth())
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def device(api: Api, unique_id: str) -> int:
    r = await api.client.post("/api/devices", json={"unique_id": unique_id, "name": unique_id},
                              headers=api.auth())
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_crud_round_trip(api: Api, kind: str) -> None:
    body = KINDS[kind]
    fence = await create(api, body)
    assert fence["kind"] == kind and fence["name"] == body["name"]
    assert fence["geometry"] == body["geometry"]
    for field in ("radius_m", "width_m", "speed_limit_kmh"):
        assert fence[field] == body.get(field)
    assert fence["attributes"] == body.get("attributes", {})
    assert fence["device_ids"] == [] and fence["group_ids"] == []
    rebuilt = fence_from_feature(fence["feature"])
    assert rebuilt.id == fence["id"] and rebuilt.kind == kind and rebuilt.geometry == body["geometry"]
    assert fence["feature"]["properties"]["name"] == body["name"]

    url = f"/api/geofences/{fence['id']}"
    got = await api.client.get(url, headers=api.auth(REP))
    assert got.status_code == 200 and got.json() == fence

    r = await api.client.patch(url, json={"name": "Renamed", "speed_limit_kmh": 50}, headers=api.auth())
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["name"] == "Renamed" and patched["speed_limit_kmh"] == 50
    assert patched["geometry"] == fence["geometry"] and patched["created_at"] == fence["created_at"]
    assert datetime.fromisoformat(patched["updated_at"]) > datetime.fromisoformat(fence["updated_at"])
    assert (await api.client.get(url, headers=api.auth())).json() == patched

    r = await api.client.delete(url, headers=api.auth())
    assert r.status_code == 204
    r = await api.client.get(url, headers=api.auth())
    assert r.status_code == 404 and r.json() == {"error": "not_found",
                                                 "detail": f"geofence {fence['id']} not found"}


async def test_location_header_and_altitudes_dropped(api: Api) -> None:
    r = await api.client.post("/api/geofences", headers=api.auth(), json={
        "name": "High", "geometry": {"type": "Point", "coordinates": [4.9, 52.37, 12.5]}, "radius_m": 10})
    assert r.status_code == 201
    assert r.headers["location"] == f"/api/geofences/{r.json()['id']}"
    assert r.json()["geometry"]["coordinates"] == [4.9, 52.37]


OPEN_RING = [[4.88, 52.36], [4.90, 52.36], [4.90, 52.38], [4.88, 52.38]]
BAD = [
    ({"geometry": {"type": "Polygon", "coordinates": [[*OPEN_RING, [4.881, 52.36]]]}}, "not closed"),
    ({"geometry": {"type": "Point", "coordinates": [4.9, 95.0]}, "radius_m": 10}, "latitude 95"),
    ({"geometry": {"type": "Point", "coordinates": [4.9, 52.0]}, "radius_m": 0}, "radius_m 0"),
    ({"geometry": {"type": "Point", "coordinates": [4.9, 52.0]}}, "needs radius_m"),
    ({"geometry": {"type": "LineString", "coordinates": [[4.9, 52.0], [4.91, 52.0]]}}, "needs width_m"),
    ({"geometry": {"type": "Hexagon", "coordinates": [4.9, 52.0]}}, "geometry type 'Hexagon'"),
    ({"geometry": {"type": "Polygon", "coordinates": [SQUARE]}, "radius_m": 10}, "only for circles"),
    ({"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}},
     "invalid polygon"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
async def test_unusable_geometry_is_a_422_naming_the_problem(api: Api, body: dict[str, Any],
                                                              message: str) -> None:
    r = await api.client.post("/api/geofences", json={"name": "x", **body}, headers=api.auth())
    assert r.status_code == 422
    assert r.json()["error"] == "invalid" and message in r.json()["detail"], r.text
    listed = await api.client.get("/api/geofences", headers=api.auth())
    assert listed.json()["items"] == []


async def test_patch_validates_the_whole_fence_again(api: Api) -> None:
    fence = await create(api, CIRCLE)
    url = f"/api/geofences/{fence['id']}"
    r = await api.client.patch(url, json={"geometry": {"type": "Point", "coordinates": [4.9, 95]}},
                               headers=api.auth())
    assert r.status_code == 422 and "latitude 95" in r.json()["detail"]
    r = await api.client.patch(url, json={"geometry": POLYGON["geometry"]}, headers=api.auth())
    assert r.status_code == 422 and "radius_m is only for circles" in r.json()["detail"]
    r = await api.client.patch(url, json={"name": None}, headers=api.auth())
    assert r.status_code == 422 and r.json()["error"] == "invalid"
    assert (await api.client.get(url, headers=api.auth())).json() == fence  # nothing changed

    r = await api.client.patch(url, json={"geometry": POLYGON["geometry"], "radius_m": None},
                               headers=api.auth())
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "polygon" and r.json()["radius_m"] is None
    assert r.json()["geometry"] == POLYGON["geometry"]


async def test_unknown_devices_and_groups_are_named(api: Api) -> None:
    known = await device(api, "known")
    body = {**CIRCLE, "device_ids": [known, 987654, 987653], "group_ids": [42]}
    r = await api.client.post("/api/geofences", json=body, headers=api.auth())
    assert r.status_code == 422
    assert r.json()["detail"] == "unknown device ids 987653, 987654; unknown group ids 42"
    fence = await create(api, {**CIRCLE, "device_ids": [known, known]})
    assert fence["device_ids"] == [known]
    r = await api.client.patch(f"/api/geofences/{fence['id']}", json={"group_ids": [77]}, headers=api.auth())
    assert r.status_code == 422 and r.json()["detail"] == "unknown group ids 77"


async def test_rep_token_reads_but_cannot_write(api: Api) -> None:
    fence = await create(api, CIRCLE)
    url = f"/api/geofences/{fence['id']}"
    for r in (await api.client.post("/api/geofences", json=CIRCLE, headers=api.auth(REP)),
              await api.client.patch(url, json={"name": "x"}, headers=api.auth(REP)),
              await api.client.delete(url, headers=api.auth(REP))):
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert (await api.client.get(url, headers=api.auth(REP))).json() == fence
    assert (await api.client.get("/api/geofences")).status_code == 401


async def test_unknown_id_is_a_404(api: Api) -> None:
    url = "/api/geofences/424242"
    for r in (await api.client.get(url, headers=api.auth()),
              await api.client.patch(url, json={"name": "x"}, headers=api.auth()),
              await api.client.delete(url, headers=api.auth())):
        assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await api.client.get(f"/api/geofences/{2**70}", headers=api.auth())
    assert r.status_code == 422


async def page_through(api: Api, params: dict[str, Any], key: str) -> list[list[Any]]:
    pages: list[list[Any]] = []
    after = None
    while True:
        q = params | ({"after": after} if after is not None else {})
        r = await api.client.get("/api/geofences", params=q, headers=api.auth())
        assert r.status_code == 200, r.text
        pages.append(r.json()[key])
        after = r.json()["next_after"]
        if after is None:
            return pages


async def test_pagination_covers_every_fence_once(api: Api) -> None:
    ids = [(await create(api, {**CIRCLE, "name": f"f{i}"}))["id"] for i in range(7)]
    pages = await page_through(api, {"limit": 3}, "items")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [f["id"] for p in pages for f in p] == ids
    pages = await page_through(api, {"limit": 7}, "items")
    assert [len(p) for p in pages] == [7]
    r = await api.client.get("/api/geofences", params={"limit": 1001}, headers=api.auth())
    assert r.status_code == 422


async def test_geojson_feature_collection(api: Api) -> None:
    made = [await create(api, body) for body in (CIRCLE, POLYGON, CORRIDOR)]
    r = await api.client.get("/api/geofences", params={"format": "geojson", "limit": 2}, headers=api.auth())
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    first = r.json()
    assert first["type"] == "FeatureCollection" and len(first["features"]) == 2
    pages = await page_through(api, {"format": "geojson", "limit": 2}, "features")
    features = [f for p in pages for f in p]
    assert [f["id"] for f in features] == [m["id"] for m in made]
    for feature, fence in zip(features, made, strict=True):
        assert feature["type"] == "Feature" and feature == fence["feature"]
        rebuilt = fence_from_feature(feature)
        assert (rebuilt.kind, rebuilt.geometry) == (fence["kind"], fence["geometry"])
        assert feature["properties"]["name"] == fence["name"]


async def test_version_changes_after_every_write(api: Api) -> None:
    store = GeofenceStore(api.pool)
    seen = [await store.version()]
    assert seen[0] == (None, 0)
    a = await create(api, CIRCLE)
    seen.append(await store.version())
    b = await create(api, POLYGON)
    seen.append(await store.version())
    await api.client.patch(f"/api/geofences/{a['id']}", json={"name": "A2"}, headers=api.auth())
    seen.append(await store.version())
    await api.client.delete(f"/api/geofences/{b['id']}", headers=api.auth())
    seen.append(await store.version())
    await create(api, CORRIDOR)  # back to two fences: the count alone would not tell
    seen.append(await store.version())
    refused = await api.client.patch(f"/api/geofences/{a['id']}", json={"radius_m": 0}, headers=api.auth())
    assert refused.status_code == 422
    seen.append(await store.version())
    assert len(set(seen[:-1])) == len(seen) - 1, seen
    assert seen[-1] == seen[-2]  # a refused change is no change
    assert [n for _, n in seen] == [0, 1, 2, 2, 1, 2, 2]


async def test_load_fences_gives_each_fence_its_devices(api: Api) -> None:
    van, car = await device(api, "van"), await device(api, "car")
    everyone = await create(api, CIRCLE)
    only_van = await create(api, {**POLYGON, "device_ids": [van]})
    loaded = {s.fence.id: s for s in await GeofenceStore(api.pool).load_fences()}
    assert set(loaded) == {everyone["id"], only_van["id"]}
    assert loaded[everyone["id"]].everyone and loaded[everyone["id"]].applies_to(car)
    scoped = loaded[only_van["id"]]
    assert scoped.applies_to(van) and not scoped.applies_to(car)
    assert scoped.fence.speed_limit_kmh == 30 and scoped.fence.attributes == {"colour": "red"}
    assert scoped.fence.signed_distance_m(52.37, 4.895) < 0  # inside the square, outside the hole
