"""The events list on a real database: filters by device, type and time, keyset pagination in both
orders (with ties on time), and refused time ranges. Events are inserted with SQL, as the
processing runner would write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from tests.api.conftest import Api

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
WINDOW = {"from": T0.isoformat(), "to": (T0 + timedelta(days=1)).isoformat()}


async def device(api: Api, unique_id: str) -> int:
    r = await api.client.post("/api/devices", json={"unique_id": unique_id, "name": unique_id},
                              headers=api.auth())
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def insert_events(api: Api, rows: list[tuple[int, datetime, str, int | None]]) -> None:
    async with api.pool.connection() as conn:
        for i, (device_id, time, type_, fence) in enumerate(rows):
            await conn.execute(
                "INSERT INTO events (device_id, time, type, latitude, longitude, geofence_id, attributes,"
                " emitted_time, emitted_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (device_id, time, type_, 52 + i / 1000, 4.9, fence, Jsonb({"n": i}), time, i),
            )


@pytest.fixture
async def fleet(api: Api) -> dict[str, Any]:
    """Van: 12 geofence enter/exit events a minute apart, the last two sharing a time with an
    overspeed; car: 5 overspeeds; one van event a day before and one a day after T0's day."""
    van, car = await device(api, "van"), await device(api, "car")
    rows: list[tuple[int, datetime, str, int | None]] = [
        (van, T0 + timedelta(minutes=i), "geofenceEnter" if i % 2 == 0 else "geofenceExit", 7)
        for i in range(12)
    ]
    rows += [(van, T0 + timedelta(minutes=11), "deviceOverspeed", None),
             (van, T0 + timedelta(minutes=10), "deviceOverspeed", None)]
    rows += [(car, T0 + timedelta(minutes=3 * i, seconds=30), "deviceOverspeed", None) for i in range(5)]
    rows += [(van, T0 - timedelta(hours=1), "geofenceEnter", 7), (van, T0 + timedelta(days=1), "alarm", None)]
    await insert_events(api, rows)
    return {"van": van, "car": car}


async def fetch_all(api: Api, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    pages = 0
    cursor = None
    while True:
        q = params | ({"cursor": cursor} if cursor else {})
        r = await api.client.get("/api/events", params=q, headers=api.auth())
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        pages += 1
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items, pages


def key(e: dict[str, Any]) -> tuple[datetime, int]:
    return datetime.fromisoformat(e["time"]), e["id"]


async def test_filters_by_device_type_and_time(api: Api, fleet: dict[str, Any]) -> None:
    van, car = fleet["van"], fleet["car"]
    items, _ = await fetch_all(api, WINDOW | {"device": van})
    assert len(items) == 14 and {e["device_id"] for e in items} == {van}
    items, _ = await fetch_all(api, WINDOW | {"device": [van, car]})
    assert len(items) == 19
    items, _ = await fetch_all(api, WINDOW)
    assert len(items) == 19  # the events outside [from, to) are not there
    items, _ = await fetch_all(api, WINDOW | {"type": "deviceOverspeed"})
    assert len(items) == 7 and {e["type"] for e in items} == {"deviceOverspeed"}
    items, _ = await fetch_all(api, WINDOW | {"type": ["geofenceEnter", "alarm"], "device": van})
    assert [e["type"] for e in items] == ["geofenceEnter"] * 6
    items, _ = await fetch_all(api, WINDOW | {"type": "deviceOverspeed", "device": car})
    assert len(items) == 5 and {e["device_id"] for e in items} == {car}
    assert (await fetch_all(api, WINDOW | {"device": 999999}))[0] == []

    # from is inclusive, to exclusive
    window = {"from": (T0 + timedelta(minutes=2)).isoformat(), "to": (T0 + timedelta(minutes=4)).isoformat()}
    items, _ = await fetch_all(api, window | {"device": van, "order": "asc"})
    assert [datetime.fromisoformat(e["time"]) for e in items] == [T0 + timedelta(minutes=m) for m in (2, 3)]
    wide = {"from": "2026-11-19T00:00:00+01:00", "to": "2026-11-22T00:00:00+01:00"}
    assert len((await fetch_all(api, wide))[0]) == 21


async def test_each_event_has_its_fields(api: Api, fleet: dict[str, Any]) -> None:
    items, _ = await fetch_all(api, WINDOW | {"device": fleet["van"], "order": "asc", "limit": 1})
    first = items[0]
    assert set(first) == {"id", "device_id", "time", "type", "latitude", "longitude", "geofence_id",
                          "attributes"}
    assert first["type"] == "geofenceEnter" and first["geofence_id"] == 7
    assert datetime.fromisoformat(first["time"]) == T0
    assert first["latitude"] == 52.0 and first["longitude"] == 4.9 and first["attributes"] == {"n": 0}
    overspeed = [e for e in items if e["type"] == "deviceOverspeed"]
    assert overspeed and all(e["geofence_id"] is None for e in overspeed)


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 3, 4, 19, 1000])
async def test_pages_cover_every_event_once_in_order(api: Api, fleet: dict[str, Any], order: str,
                                                     limit: int) -> None:
    whole, pages = await fetch_all(api, WINDOW | {"order": order, "limit": 1000})
    assert pages == 1 and len(whole) == 19
    assert whole == sorted(whole, key=key, reverse=order == "desc")
    paged, pages = await fetch_all(api, WINDOW | {"order": order, "limit": limit})
    assert paged == whole
    assert pages == -(-19 // limit)  # the last page is never an empty one


async def test_default_order_is_newest_first(api: Api, fleet: dict[str, Any]) -> None:
    items, _ = await fetch_all(api, WINDOW)
    assert items == sorted(items, key=key, reverse=True)


@pytest.mark.parametrize(("params", "message"), [
    ({"from": "2026-11-20T08:00:00"}, "`from` needs a time zone"),
    ({"from": "2026-11-20T08:00:00Z", "to": "2026-11-21T08:00:00"}, "`to` needs a time zone"),
    ({"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, "`to` must be after `from`"),
    ({"from": "2026-11-20T00:00:00Z", "to": "2026-11-20T01:00:00+01:00"}, "`to` must be after `from`"),
    ({"from": "2025-11-20T00:00:00Z", "to": "2026-11-21T00:00:01Z"}, "longer than 366 days"),
    ({"cursor": "bm90LWEtY3Vyc29y"}, "invalid cursor"),
    ({"cursor": "%%%"}, "invalid cursor"),
])
async def test_bad_time_ranges_and_cursors_are_422(api: Api, params: dict[str, str], message: str) -> None:
    r = await api.client.get("/api/events", params=params, headers=api.auth())
    assert r.status_code == 422 and r.json()["error"] == "invalid" and message in r.json()["detail"]


async def test_garbage_parameters_and_no_token(api: Api) -> None:
    for params in ({"from": "yesterday"}, {"device": "van"}, {"limit": 0}, {"order": "up"}):
        r = await api.client.get("/api/events", params=params, headers=api.auth())
        assert r.status_code == 422 and r.json()["error"] == "invalid", params
    r = await api.client.get("/api/events", params={"from": "2024-11-20T00:00:00Z",
                                                    "to": "2025-11-20T00:00:00Z"}, headers=api.auth())
    assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}  # exactly 365 days
    assert (await api.client.get("/api/events")).status_code == 401
