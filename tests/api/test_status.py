"""``/api/status``: online/offline from the last message, moving/stopped and alarm from the
processed stream, the geofences a device is in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.processing import FenceSet, ProcessingRunner
from processors.fences import FenceIndex, fence_from_geojson
from protocols.model import Position
from storage.rows import StoredPosition
from storage.writer import insert_rows
from tests.api.conftest import Api


async def stored(api: Api, device_id: int, positions: list[Position], received: datetime,
                 fences: FenceSet | None = None) -> None:
    async with api.pool.connection() as conn:
        await insert_rows(conn, [StoredPosition(device_id, "x", "test", received, p) for p in positions])

    async def load() -> FenceSet:
        return fences or FenceSet(FenceIndex([]))

    await ProcessingRunner(api.pool, load).process(device_id)


def drive(start: datetime, seconds: int, lat: float = 52.0) -> list[Position]:
    """North at 54 km/h, one fix a second."""
    return [Position(fix_time=start + timedelta(seconds=k), latitude=lat + k * 15 / 111_195, longitude=4.0,
                     speed_kmh=54.0) for k in range(seconds)]


async def test_online_moving_and_offline_devices(api: Api) -> None:
    now = datetime.now(UTC)
    moving = (await api.deps.devices.create("van", "Van")).id
    silent = (await api.deps.devices.create("old", "Old")).id
    never = (await api.deps.devices.create("new", "New")).id
    fence = fence_from_geojson(3, {"type": "Point", "coordinates": [4.0, 52.0]}, radius_m=5000)
    await stored(api, moving, drive(now - timedelta(minutes=3), 120), now,
                 FenceSet(FenceIndex([fence]), {3: None}))
    await stored(api, silent, [Position(fix_time=now - timedelta(hours=2), latitude=52.1, longitude=4.1,
                                        attributes={"alarm": "sos"})], now - timedelta(hours=2))
    r = await api.client.get("/api/status", headers=api.auth())
    assert r.status_code == 200
    by_id = {row["id"]: row for row in r.json()}
    assert by_id[moving]["online"] and by_id[moving]["status"] == "moving"
    assert by_id[moving]["geofences"] == [3]
    assert by_id[moving]["open_trip"]["distance_km"] > 1.0
    assert 1.7 < by_id[moving]["odometer_km"] < 1.9  # 120 s at 15 m/s
    assert by_id[silent]["status"] == "offline" and by_id[silent]["alarm"] == "sos"
    assert by_id[never]["status"] == "offline" and by_id[never]["last_seen"] is None
    one = await api.client.get(f"/api/status?device={silent}", headers=api.auth())
    assert [row["id"] for row in one.json()] == [silent]


async def test_status_needs_a_token(api: Api) -> None:
    r = await api.client.get("/api/status")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
