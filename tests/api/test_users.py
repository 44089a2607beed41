"""Users, teams and tokens over the API on a real database, the calendar checks, and
``fieldtrack user add``."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fieldtrack.cli import main
from storage.calendars import check_time_zone, check_working_hours
from storage.tokens import hash_token
from tests.api.conftest import REP, Api
from tests.api.people import CALENDAR, World, call, new_user, world

__all__ = ["world"]  # the fixture, imported so pytest finds it here


async def test_user_lifecycle(api: Api) -> None:
    team = await call(api, "POST", "/api/teams", expect=201, json={"name": "east"})
    r = await api.client.post("/api/users", json={"name": "Ana", "role": "rep", "email": "Ana@Example.com",
                                                  "team_id": team["id"], "working_hours": CALENDAR,
                                                  "time_zone": "Europe/Lisbon"}, headers=api.auth())
    assert r.status_code == 201, r.text
    ana = r.json()
    assert r.headers["location"] == f"/api/users/{ana['id']}"
    assert ana["email"] == "ana@example.com" and ana["working_hours"] == CALENDAR and ana["disabled"] is False
    assert ana["device_ids"] == [] and ana["managed_team_ids"] == []
    r = await api.client.post("/api/users", headers=api.auth(),
                              json={"name": "Other Ana", "role": "rep", "email": "ANA@example.com"})
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    r = await api.client.post("/api/users", json={"name": "Nobody", "role": "rep", "team_id": 987654},
                              headers=api.auth())
    assert r.status_code == 404 and r.json()["detail"] == "team 987654 not found"
    patched = await call(api, "PATCH", f"/api/users/{ana['id']}", json={"email": None, "role": "manager"})
    assert patched["email"] is None and patched["role"] == "manager" and patched["working_hours"] == CALENDAR
    r = await api.client.patch(f"/api/users/{ana['id']}", json={"name": None}, headers=api.auth())
    assert r.status_code == 422
    await call(api, "DELETE", f"/api/users/{ana['id']}", expect=204)
    assert (await api.client.get(f"/api/users/{ana['id']}", headers=api.auth())).status_code == 404
    assert (await api.client.delete(f"/api/users/{ana['id']}", headers=api.auth())).status_code == 404


async def test_only_admins_change_people_and_teams(api: Api, world: World) -> None:
    manager = world.managers["north"].token
    for token in (REP, manager):
        for method, path, body in (("POST", "/api/users", {"name": "x", "role": "rep"}),
                                   ("PATCH", f"/api/users/{world.reps['north-1'].id}", {"name": "x"}),
                                   ("DELETE", f"/api/users/{world.reps['north-1'].id}", None),
                                   ("POST", "/api/teams", {"name": "x"}),
                                   ("PATCH", f"/api/teams/{world.teams['north']}", {"name": "x"}),
                                   ("POST", f"/api/users/{world.reps['north-1'].id}/tokens", {})):
            r = await api.client.request(method, path, json=body, headers=api.auth(token))
            assert r.status_code == 403 and r.json()["error"] == "forbidden", (method, path)


async def test_user_lists_page_and_filter(api: Api, world: World) -> None:
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        page = await call(api, "GET", "/api/users",
                          params={"limit": 2, **({"after": after} if after else {})})
        seen += page["items"]
        after = page["next_after"]
        if after is None:
            break
    assert len(seen) == 6 and [u["id"] for u in seen] == sorted(u["id"] for u in seen)
    reps = await call(api, "GET", "/api/users", params={"role": "rep", "team": world.teams["south"]})
    assert sorted(u["id"] for u in reps["items"]) == sorted(
        [world.reps["south-1"].id, world.reps["south-2"].id])
    alone = await call(api, "GET", "/api/users", world.reps["south-1"].token)
    assert [u["id"] for u in alone["items"]] == [world.reps["south-1"].id]


async def test_team_lifecycle_and_managers(api: Api, world: World) -> None:
    r = await api.client.post("/api/teams", json={"name": "north"}, headers=api.auth())
    assert r.status_code == 409
    team = await call(api, "POST", "/api/teams", expect=201,
                      json={"name": "west", "settings": {"mileage": {"rate": 0.3}}})
    assert team["time_zone"] == "UTC" and team["working_hours"] == {} and team["manager_ids"] == []
    patched = await call(api, "PATCH", f"/api/teams/{team['id']}",
                         json={"time_zone": "America/Chicago", "working_hours": CALENDAR})
    assert patched["time_zone"] == "America/Chicago" and patched["working_hours"] == CALENDAR
    assert patched["settings"] == {"mileage": {"rate": 0.3}}
    # A policy the processors could not read is refused when saved, naming the setting.
    r = await api.client.patch(f"/api/teams/{team['id']}", json={"settings": {"mileage": {"rate": -1}}},
                               headers=api.auth())
    assert r.status_code == 422 and "mileage.rate" in r.text
    assert (await call(api, "GET", f"/api/teams/{team['id']}"))["settings"] == {"mileage": {"rate": 0.3}}
    boss = world.managers["north"]
    await call(api, "PUT", f"/api/teams/{team['id']}/managers/{boss.id}", expect=204)
    await call(api, "PUT", f"/api/teams/{team['id']}/managers/{boss.id}", expect=204)  # no change
    assert (await call(api, "GET", f"/api/teams/{team['id']}"))["manager_ids"] == [boss.id]
    me = await call(api, "GET", "/api/me", boss.token)
    assert me["scope"]["managed_team_ids"] == sorted([world.teams["north"], team["id"]])
    r = await api.client.put(f"/api/teams/{team['id']}/managers/{world.reps['north-1'].id}",
                             headers=api.auth())
    assert r.status_code == 422 and "only managers" in r.json()["detail"]
    await call(api, "DELETE", f"/api/teams/{team['id']}/managers/{boss.id}", expect=204)
    assert (await api.client.delete(f"/api/teams/{team['id']}/managers/{boss.id}",
                                    headers=api.auth())).status_code == 404
    # Removing a team keeps its people, without a team.
    await call(api, "DELETE", f"/api/teams/{world.teams['south']}", expect=204)
    assert (await call(api, "GET", f"/api/users/{world.reps['south-1'].id}"))["team_id"] is None
    assert (await call(api, "GET", "/api/me", world.managers["south"].token))["scope"]["device_ids"] == []


@pytest.mark.parametrize("body", [
    {"working_hours": {"monday": [["08:00", "17:00"]]}},
    {"working_hours": {"mon": [["17:00", "08:00"]]}},
    {"working_hours": {"mon": [["08:00", "17:00"], ["12:00", "18:00"]]}},
    {"working_hours": {"mon": [["8:00", "17:00"]]}},
    {"working_hours": {"mon": [["08:00", "24:01"]]}},
    {"working_hours": {"mon": [["08:00"]]}},
    {"working_hours": {"mon": "08:00-17:00"}},
    {"time_zone": "Europe/Atlantis"},
    {"time_zone": "localtime"},
    {"time_zone": "../etc/passwd"},
])
async def test_bad_calendars_and_zones_are_422(api: Api, body: dict[str, Any]) -> None:
    for path in ("/api/teams", "/api/users"):
        r = await api.client.post(path, json={"name": "x", "role": "rep", **body}, headers=api.auth())
        assert r.status_code == 422 and r.json()["error"] == "invalid", r.text
    team = await call(api, "POST", "/api/teams", expect=201, json={"name": "ok"})
    r = await api.client.patch(f"/api/teams/{team['id']}", json=body, headers=api.auth())
    assert r.status_code == 422


def test_calendar_checks() -> None:
    full = {"mon": [["00:00", "24:00"]], "sat": [], "sun": [["06:00", "06:30"], ["06:30", "07:00"]]}
    assert check_working_hours(full) == full
    with pytest.raises(ValueError, match="start 09:00 must be before the end 09:00"):
        check_working_hours({"tue": [["09:00", "09:00"]]})
    with pytest.raises(ValueError, match="unknown days"):
        check_working_hours({"Mon": []})
    assert check_time_zone("Asia/Kolkata") == "Asia/Kolkata" and check_time_zone("UTC") == "UTC"
    with pytest.raises(ValueError, match="unknown time zone"):
        check_time_zone("")


async def test_tokens_per_user(api: Api, world: World) -> None:
    rep = world.reps["north-1"]
    created = await call(api, "POST", "/api/me/tokens", rep.token, expect=201, json={"name": "tablet"})
    assert created["token"].startswith("ft_") and created["user_id"] == rep.id and created["role"] == "rep"
    assert (await call(api, "GET", "/api/me", created["token"]))["user"]["id"] == rep.id
    listed = await call(api, "GET", "/api/me/tokens", rep.token)
    assert [t["name"] for t in listed["items"]] == ["phone", "tablet"]
    assert all("token" not in t for t in listed["items"])
    # Someone else's token id is not yours to revoke.
    other = await call(api, "GET", "/api/me/tokens", world.reps["north-2"].token)
    r = await api.client.delete(f"/api/me/tokens/{other['items'][0]['id']}", headers=api.auth(rep.token))
    assert r.status_code == 404
    await call(api, "DELETE", f"/api/me/tokens/{created['id']}", rep.token, expect=204)
    r = await api.client.get("/api/me", headers=api.auth(created["token"]))
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert [t["name"] for t in (await call(api, "GET", "/api/me/tokens", rep.token))["items"]] == ["phone"]
    # The admin revokes a user's token.
    phone = (await call(api, "GET", f"/api/users/{rep.id}/tokens"))["items"][0]
    await call(api, "DELETE", f"/api/users/{rep.id}/tokens/{phone['id']}", expect=204)
    assert (await api.client.get("/api/devices", headers=api.auth(rep.token))).status_code == 401
    # A system token belongs to no user, so it has no tokens of its own.
    r = await api.client.post("/api/me/tokens", json={}, headers=api.auth())
    assert r.status_code == 403


async def test_a_disabled_users_tokens_are_refused(api: Api, world: World) -> None:
    rep = world.reps["south-2"]
    await call(api, "PATCH", f"/api/users/{rep.id}", json={"disabled": True})
    r = await api.client.get("/api/devices", headers=api.auth(rep.token))
    assert r.status_code == 401
    r = await api.client.post(f"/api/users/{rep.id}/tokens", json={}, headers=api.auth())
    assert r.status_code == 409
    await call(api, "PATCH", f"/api/users/{rep.id}", json={"disabled": False})
    assert [d["id"] for d in (await call(api, "GET", "/api/devices", rep.token))["items"]] == [rep.device]


async def test_a_token_follows_its_users_role(api: Api, world: World) -> None:
    rep = world.reps["south-2"]
    await call(api, "PATCH", f"/api/users/{rep.id}", json={"role": "admin"})
    devices = await call(api, "GET", "/api/devices", rep.token)
    assert devices["total"] == 4
    # An admin user cannot lock themselves out.
    for method, body in (("PATCH", {"disabled": True}), ("PATCH", {"role": "rep"}), ("DELETE", None)):
        r = await api.client.request(method, f"/api/users/{rep.id}", json=body, headers=api.auth(rep.token))
        assert r.status_code == 409, (method, body)
    await call(api, "PATCH", f"/api/users/{rep.id}", rep.token, json={"name": "Chief"})


async def test_a_managers_token_without_a_team_sees_only_themselves(api: Api) -> None:
    lone = await new_user(api, "lone", "manager")
    me = await call(api, "GET", "/api/me", lone.token)
    assert me["scope"] == {"everything": False, "user_ids": [lone.id], "team_ids": [], "managed_team_ids": [],
                           "device_ids": []}
    assert (await call(api, "GET", "/api/devices", lone.token))["items"] == []


def test_cli_user_add_prints_a_working_token(database_url: str, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FIELDTRACK_DATABASE_URL", database_url)
    assert main(["user", "add", "--name", "Mia", "--role", "manager", "--team", "Field North",
                 "--email", "mia@example.com"]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["user", "add", "--name", "Raf", "--role", "rep", "--team", "Field North"]) == 0
    second = capsys.readouterr().out.strip()
    assert main(["user", "add", "--name", "Dup", "--role", "rep", "--email", "MIA@example.com"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["user", "add", "--name", "Lost", "--role", "rep", "--team", "987654"]) == 1
    assert "team 987654 not found" in capsys.readouterr().err
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT u.name, u.role, t.name, t.id = ANY(array(SELECT team_id FROM team_managers m"
            " WHERE m.user_id = u.id)) FROM api_tokens k JOIN users u ON u.id = k.user_id"
            " JOIN teams t ON t.id = u.team_id WHERE k.token_hash = ANY(%s) ORDER BY u.id",
            ([hash_token(token), hash_token(second)],)).fetchall()
    assert rows == [("Mia", "manager", "Field North", True), ("Raf", "rep", "Field North", False)]
