"""Device groups over the API: lifecycle, membership, refusals, and how membership reaches the
fences the processing runner loads (their members and the store's version())."""

from __future__ import annotations

from typing import Any

from storage.geofences import GeofenceStore
from tests.api.conftest import REP, Api

CIRCLE = {"name": "Depot", "geometry": {"type": "Point", "coordinates": [4.9, 52.37]}, "radius_m": 150}


async def device(api: Api, unique_id: str) -> int:
    r = await api.client.post("/api/devices", json={"unique_id": unique_id, "name": unique_id},
                              headers=api.auth())
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def group(api: Api, name: str) -> dict[str, Any]:
    r = await api.client.post("/api/groups", json={"name": name, "attributes": {"region": name}},
                              headers=api.auth())
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/api/groups/{r.json()['id']}"
    out: dict[str, Any] = r.json()
    return out


async def members(api: Api, group_id: int) -> list[int]:
    r = await api.client.get(f"/api/groups/{group_id}", headers=api.auth(REP))
    assert r.status_code == 200, r.text
    return list(r.json()["device_ids"])


async def test_group_lifecycle_and_membership(api: Api) -> None:
    north, south = await group(api, "north"), await group(api, "south")
    assert north["attributes"] == {"region": "north"} and north["device_ids"] == []
    van, car = await device(api, "van"), await device(api, "car")
    for dev in (van, car):
        r = await api.client.put(f"/api/groups/{north['id']}/devices/{dev}", headers=api.auth())
        assert r.status_code == 204
    assert await members(api, north["id"]) == sorted([van, car])
    again = await api.client.put(f"/api/groups/{north['id']}/devices/{van}", headers=api.auth())
    assert again.status_code == 204 and await members(api, north["id"]) == sorted([van, car])

    r = await api.client.put(f"/api/groups/{south['id']}/devices/{van}", headers=api.auth())
    assert r.status_code == 204  # moved: a device is in one group at most
    assert await members(api, north["id"]) == [car] and await members(api, south["id"]) == [van]

    r = await api.client.delete(f"/api/groups/{north['id']}/devices/{van}", headers=api.auth())
    assert r.status_code == 404 and r.json()["detail"] == f"device {van} in group {north['id']} not found"
    r = await api.client.delete(f"/api/groups/{south['id']}/devices/{van}", headers=api.auth())
    assert r.status_code == 204 and await members(api, south["id"]) == []

    r = await api.client.delete(f"/api/groups/{north['id']}", headers=api.auth())
    assert r.status_code == 204
    assert (await api.client.get(f"/api/groups/{north['id']}", headers=api.auth())).status_code == 404
    car_row = await api.client.get(f"/api/devices/{car}", headers=api.auth())
    assert car_row.status_code == 200  # the device stays, outside any group


async def test_refusals(api: Api) -> None:
    g = await group(api, "north")
    van = await device(api, "van")
    r = await api.client.post("/api/groups", json={"name": "north"}, headers=api.auth())
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    r = await api.client.post("/api/groups", json={"name": ""}, headers=api.auth())
    assert r.status_code == 422
    for r in (await api.client.put(f"/api/groups/9999/devices/{van}", headers=api.auth()),
              await api.client.put(f"/api/groups/{g['id']}/devices/9999", headers=api.auth()),
              await api.client.delete(f"/api/groups/{g['id']}/devices/9999", headers=api.auth()),
              await api.client.delete("/api/groups/9999", headers=api.auth()),
              await api.client.get("/api/groups/9999", headers=api.auth())):
        assert r.status_code == 404 and r.json()["error"] == "not_found"
    for r in (await api.client.post("/api/groups", json={"name": "x"}, headers=api.auth(REP)),
              await api.client.put(f"/api/groups/{g['id']}/devices/{van}", headers=api.auth(REP)),
              await api.client.delete(f"/api/groups/{g['id']}", headers=api.auth(REP))):
        assert r.status_code == 403
    assert await members(api, g["id"]) == []


async def test_a_group_named_by_a_fence_cannot_be_deleted(api: Api) -> None:
    g = await group(api, "north")
    r = await api.client.post("/api/geofences", json={**CIRCLE, "group_ids": [g["id"]]}, headers=api.auth())
    fence = r.json()
    r = await api.client.delete(f"/api/groups/{g['id']}", headers=api.auth())
    assert r.status_code == 409 and f"geofences {fence['id']}" in r.json()["detail"]
    await api.client.patch(f"/api/geofences/{fence['id']}", json={"group_ids": []}, headers=api.auth())
    assert (await api.client.delete(f"/api/groups/{g['id']}", headers=api.auth())).status_code == 204


async def test_list_pages_cover_every_group_once(api: Api) -> None:
    ids = [(await group(api, f"g{i}"))["id"] for i in range(5)]
    seen: list[int] = []
    after = None
    while True:
        params = {"limit": 2} | ({"after": after} if after is not None else {})
        r = await api.client.get("/api/groups", params=params, headers=api.auth(REP))
        assert r.status_code == 200 and len(r.json()["items"]) <= 2
        seen += [g["id"] for g in r.json()["items"]]
        after = r.json()["next_after"]
        if after is None:
            break
    assert seen == ids


async def test_membership_reaches_the_fences_and_their_version(api: Api) -> None:
    store = GeofenceStore(api.pool)
    north, south = await group(api, "north"), await group(api, "south")
    van, car = await device(api, "van"), await device(api, "car")
    r = await api.client.post("/api/geofences", json={**CIRCLE, "group_ids": [north["id"]],
                                                      "device_ids": [car]}, headers=api.auth())
    fence_id = r.json()["id"]

    async def scope() -> tuple[bool, bool]:
        (loaded,) = await store.load_fences()
        assert loaded.fence.id == fence_id and not loaded.everyone
        return loaded.applies_to(van), loaded.applies_to(car)

    assert await scope() == (False, True)
    before = await store.version()
    await api.client.put(f"/api/groups/{north['id']}/devices/{van}", headers=api.auth())
    joined = await store.version()
    assert joined != before and await scope() == (True, True)

    await api.client.put(f"/api/groups/{south['id']}/devices/car", headers=api.auth())  # 422, no change
    await api.client.put(f"/api/groups/{south['id']}/devices/{car}", headers=api.auth())
    assert await store.version() == joined  # south is named by no fence
    assert await scope() == (True, True)  # car is named directly

    await api.client.put(f"/api/groups/{south['id']}/devices/{van}", headers=api.auth())
    moved = await store.version()
    assert moved != joined and await scope() == (False, True)
