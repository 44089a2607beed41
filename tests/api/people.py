"""A small company for access tests, built through the API with the admin token: teams north and
south, each with a manager and two reps; each rep carries a device that drove one trip (stored
and processed by the processing runner) and raised one alarm event."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.processing import ProcessingRunner
from protocols.model import Position
from storage.rows import StoredPosition
from storage.writer import insert_rows
from tests.api.conftest import Api

T0 = datetime(2026, 10, 5, 7, 0, tzinfo=UTC)
DAY = {"from": (T0 - timedelta(hours=1)).isoformat(), "to": (T0 + timedelta(hours=5)).isoformat()}
CALENDAR = {"mon": [["08:00", "12:00"], ["13:00", "17:00"]], "fri": [["08:00", "14:00"]]}


@dataclass
class Person:
    id: int
    token: str
    device: int | None = None


@dataclass
class World:
    teams: dict[str, int] = field(default_factory=dict)
    managers: dict[str, Person] = field(default_factory=dict)
    reps: dict[str, Person] = field(default_factory=dict)  # "north-1", "north-2", "south-1", "south-2"

    def devices(self, team: str) -> list[int]:
        return sorted(p.device for k, p in self.reps.items() if k.startswith(team) and p.device is not None)


async def call(api: Api, method: str, path: str, token: str | None = None, expect: int = 200,
               **kwargs: Any) -> Any:
    headers = api.auth(token) if token else api.auth()
    r = await api.client.request(method, path, headers=headers, **kwargs)
    assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
    return r.json() if r.content else None


async def new_user(api: Api, name: str, role: str, team_id: int | None = None) -> Person:
    user = await call(api, "POST", "/api/users", expect=201,
                      json={"name": name, "role": role, "team_id": team_id, "email": f"{name}@example.com"})
    token = await call(api, "POST", f"/api/users/{user['id']}/tokens", expect=201, json={"name": "phone"})
    return Person(user["id"], token["token"])


def drive(device_id: int, east_km: float) -> list[StoredPosition]:
    """Parked 5 min, 10 min east at a steady pace covering ``east_km``, parked 10 min; fixes every
    10 s, with an SOS alarm on the last one (the runner turns it into an alarm event)."""
    lat, lon = 52.0 + device_id / 100, 4.0
    per_degree_km = 111.32 * math.cos(math.radians(lat))
    speed = east_km / (10 / 60)
    out: list[Position] = []
    for i in range(151):
        t = T0 + timedelta(seconds=10 * i)
        moving = 30 <= i < 90
        done_km = east_km * min(max(i - 30, 0), 60) / 60
        out.append(Position(fix_time=t, latitude=lat, longitude=lon + done_km / per_degree_km,
                            speed_kmh=speed if moving else 0.0, course_deg=90.0 if moving else None,
                            attributes={"alarm": "sos"} if i == 150 else {}))
    return [StoredPosition(device_id, f"dev-{device_id}", "test", p.fix_time, p) for p in out]


async def give_device(api: Api, person: Person, name: str, east_km: float) -> int:
    dev = await call(api, "POST", "/api/devices", expect=201, json={"unique_id": name, "name": name})
    await call(api, "PUT", f"/api/users/{person.id}/devices/{dev['id']}", expect=204)
    async with api.pool.connection() as conn:
        await insert_rows(conn, drive(dev["id"], east_km))
    await ProcessingRunner(api.pool).process(dev["id"])
    person.device = dev["id"]
    return int(dev["id"])


@pytest.fixture
async def world(api: Api) -> World:
    w = World()
    for n, team in enumerate(("north", "south")):
        created = await call(api, "POST", "/api/teams", expect=201,
                             json={"name": team, "time_zone": "Europe/Amsterdam", "working_hours": CALENDAR})
        w.teams[team] = created["id"]
        w.managers[team] = await new_user(api, f"{team}-manager", "manager", created["id"])
        await call(api, "PUT", f"/api/teams/{created['id']}/managers/{w.managers[team].id}", expect=204)
        for i in (1, 2):
            rep = await new_user(api, f"{team}-rep{i}", "rep", created["id"])
            w.reps[f"{team}-{i}"] = rep
            await give_device(api, rep, f"{team}-phone{i}", east_km=2.0 + 2 * n + i)
    return w
