"""``fieldtrack demo`` end to end: a real process on free ports and a fresh database seeds its team,
drives its reps through the real listeners and, within two minutes, the API shows positions of
every demo device, trips, stops, a visit done and mileage; SIGTERM stops it cleanly, and a second
start on the same database seeds nothing twice."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from fieldtrack.demo_team import MOVEMENT, PARK_S
from fieldtrack.settings import DEFAULT_PORTS
from simulators.field_app import live_calls
from simulators.movement import to_latlon
from simulators.shifts import CatchUpClock, ShiftTrack, shift_plan
from tests.ports import free_port

# What the demo promises to seed (fieldtrack/demo_team.py): 4 reps x (phone + van tracker), 8 customers each.
REPS, DEVICES, CUSTOMERS, FENCES = 4, 8, 32, 3


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine on a 6371 km sphere, written here so the test does not lean on processors.geo."""
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def test_clock_is_never_ahead_of_the_wall_clock_and_never_goes_back() -> None:
    now = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    clock = CatchUpClock(now, backlog_s=7200.0, speed=30.0, lag_s=2.0)
    # (7200 - 2) / 29 wall seconds to catch up: 248.2 s.
    assert abs(clock.caught_up_after_s - 7198 / 29) < 1e-9
    assert clock.at(0.0) == now - timedelta(hours=2)
    assert clock.at(10.0) == now - timedelta(hours=2) + timedelta(seconds=300)
    previous = clock.at(0.0)
    for k in range(0, 4000):
        wall = k * 0.25
        t = clock.at(wall)
        assert t <= now + timedelta(seconds=wall - 2.0) + timedelta(microseconds=1)
        assert t >= previous
        previous = t
    assert clock.at(600.0) == now + timedelta(seconds=598.0)


def test_wall_for_inverts_the_clock() -> None:
    now = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    clock = CatchUpClock(now, backlog_s=7200.0, speed=30.0, lag_s=2.0)
    for wall in (0.0, 0.5, 100.0, 248.0, clock.caught_up_after_s, 248.5, 300.0, 4000.0):
        assert abs(clock.wall_for(clock.at(wall)) - wall) < 1e-6
    assert clock.wall_for(clock.start - timedelta(hours=1)) == 0.0
    assert clock.live_from == now + timedelta(seconds=7198 / 29 - 2.0)


def test_the_field_app_calls_on_the_planned_customers_from_the_live_moment() -> None:
    clock = CatchUpClock(datetime(2026, 3, 1, 23, 0, tzinfo=UTC), backlog_s=7200.0, speed=30.0)
    plan = shift_plan(MOVEMENT, "demo/rep-2", PARK_S, clock.start)
    ids = [100 + k for k in range(len(plan.customers))]
    calls = list(itertools.islice(live_calls(plan, clock, MOVEMENT.center, ids), 12))
    later = clock.live_from + timedelta(days=1)
    expected = list(itertools.islice(plan.visits_between(clock.start, clock.live_from, later), 12))
    assert len(calls) == 12 and [c.arrive for c in calls] == [at for at, _ in expected]
    # Before the clock runs live there are visits too, but a check-in there would be refused as stale.
    assert any(True for _ in plan.visits_between(clock.start, clock.start, clock.live_from))
    for c, (_, point) in zip(calls, expected, strict=True):
        assert c.customer_id == 100 + plan.customers.index(point)
        assert (c.latitude, c.longitude) == to_latlon(MOVEMENT.center, *point)
        assert c.leave - c.arrive >= timedelta(minutes=MOVEMENT.visit_minutes[0])


def test_shift_track_makes_the_planned_visits_round_after_round() -> None:
    start = datetime(2026, 3, 1, 21, 0, tzinfo=UTC)
    plan = shift_plan(MOVEMENT, "demo/rep-1", PARK_S, start)
    assert len(plan.visits) == MOVEMENT.visits_per_day and len(plan.customers) == MOVEMENT.customers
    track = ShiftTrack(MOVEMENT, "demo/rep-1", start, plan)
    end = start + timedelta(seconds=2.5 * plan.period_s)
    visits = list(plan.visits_between(start, start, end))
    assert len(visits) == 3 * MOVEMENT.visits_per_day - sum(  # the third round is cut at ``end``
        1 for v in plan.visits if v.start - start > timedelta(seconds=0.5 * plan.period_s))
    for arrival, point in visits:
        # Visits last at least 7 minutes (MOVEMENT.visit_minutes): a minute in, the rep is there,
        # give or take the 3 m GPS jitter.
        fix = track.at(arrival + timedelta(minutes=1))
        assert fix is not None and fix.speed_kmh == 0
        assert _metres((fix.lat, fix.lon), to_latlon(MOVEMENT.center, *point)) < 20
    # Each round starts at home, where the last one parked.
    home = to_latlon(MOVEMENT.center, *plan.home)
    for k in (1, 2):
        fix = track.at(start + timedelta(seconds=k * plan.period_s - 60))
        assert fix is not None and _metres((fix.lat, fix.lon), home) < 20


class Demo:
    def __init__(self, data_dir: Path, database_url: str) -> None:
        self.data_dir = data_dir
        self.api_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDTRACK_")}
        self.env.update({
            "FIELDTRACK_DATA_DIR": str(data_dir),
            "FIELDTRACK_DATABASE_URL": database_url,
            "FIELDTRACK_API_HOST": "127.0.0.1",
            "FIELDTRACK_LISTEN_HOST": "127.0.0.1",
            **{f"FIELDTRACK_{name.upper()}_PORT": str(free_port()) for name in DEFAULT_PORTS},
        })
        self.log = data_dir / "demo.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""

    def start(self, timeout_s: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        before = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen([sys.executable, "-m", "fieldtrack.cli", "demo", "--api-port",
                                      str(self.api_port)], env=self.env, stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT)
        tokens = self.data_dir / "demo-tokens.env"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"demo exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if tokens.is_file() and b"Try:" in self.log.read_bytes()[before:]:
                found = dict(line.split("=", 1) for line in tokens.read_text().splitlines()
                             if "=" in line and not line.startswith("#"))
                self.token = found["FIELDTRACK_DEMO_ADMIN"]
                return
            time.sleep(0.3)
        raise AssertionError(f"demo did not come up:\n{self.log.read_text()}")

    def get(self, path: str) -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}",
                                     headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raise AssertionError(f"GET {path}: {err.code} {err.read()[:300]!r}") from err

    def terminate(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _iso(t: datetime) -> str:
    return quote(t.isoformat())


def _counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        out = {}
        for table in ("teams", "users", "devices", "customers", "geofences", "user_devices", "team_managers",
                      "visits WHERE source = 'plan'", "report_templates WHERE version = 1"):
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None
            out[table] = int(row[0])
        return out


def _progress(demo: Demo, devices: list[dict[str, Any]], rep_ids: list[int]) -> dict[str, bool]:
    now = datetime.now(UTC)
    span = f"from={_iso(now - timedelta(hours=6))}&to={_iso(now + timedelta(minutes=5))}"
    latest = {p["device_id"] for p in demo.get("/api/positions/latest")}
    trips = stops = 0
    for d in devices:
        trips += len(demo.get(f"/api/devices/{d['id']}/trips?{span}")["items"])
        stops += len(demo.get(f"/api/devices/{d['id']}/stops?{span}")["items"])
    done = [v for v in demo.get("/api/visits?status=done&limit=1000")["items"] if v["rep_id"] in rep_ids]
    mileage = demo.get(f"/api/reports/mileage?{span}")
    km = sum(day["business_km"] for r in mileage["reps"] if r["rep_id"] in rep_ids for day in r["days"])
    return {"positions": latest >= {d["id"] for d in devices}, "trip": trips > 0, "stop": stops > 0,
            "visit": bool(done), "mileage": km > 0}


def test_demo_shows_a_working_team_and_seeds_once(database_url: str, short_tmp: Path) -> None:
    demo = Demo(short_tmp, database_url)
    try:
        demo.start()
        team = [t for t in demo.get("/api/teams?limit=100")["items"] if t["name"] == "Demo"]
        assert len(team) == 1 and team[0]["time_zone"] == "Europe/Amsterdam"
        devices = [d for d in demo.get("/api/devices?limit=100")["items"]
                   if d["unique_id"].startswith(("demo-phone-", "35999"))]
        assert len(devices) == DEVICES
        users = demo.get("/api/users?limit=100")["items"]
        rep_ids = [u["id"] for u in users if u["role"] == "rep" and u["team_id"] == team[0]["id"]]
        assert len(rep_ids) == REPS
        customers = demo.get("/api/customers?limit=100")["items"]
        assert len(customers) == CUSTOMERS
        assert {c["grade"] for c in customers} == {"A", "B", "C"}
        assert all(c["assigned_rep_id"] in rep_ids and c["radius_m"] == 150 for c in customers)
        deadline = time.monotonic() + 120
        seen: dict[str, bool] = {}
        while time.monotonic() < deadline:
            seen = _progress(demo, devices, rep_ids)
            if all(seen.values()):
                break
            time.sleep(3)
        assert all(seen.values()), f"not seen within 120 s: {seen}\n{demo.log.read_text()[-3000:]}"
        assert demo.terminate() == 0
        first = _counts(database_url)
        assert first["teams"] == 1 and first["devices"] == DEVICES and first["customers"] == CUSTOMERS
        assert first["geofences"] == FENCES and first["users"] == REPS + 1
        assert first["user_devices"] == DEVICES and first["team_managers"] == 1
        assert first["visits WHERE source = 'plan'"] > 0
        assert first["report_templates WHERE version = 1"] == 1  # the reps' report form, saved once

        demo.start()  # the same database and data folder: the tokens file is reused too
        assert demo.get("/api/teams?limit=100")["items"][0]["name"] == "Demo"
        assert demo.terminate() == 0
        second = _counts(database_url)
        # Plans may grow by the days the second start's week reaches past the first's; nothing else.
        assert {k: v for k, v in second.items() if not k.startswith("visits")} == \
            {k: v for k, v in first.items() if not k.startswith("visits")}
        with psycopg.connect(database_url) as conn:
            twice = conn.execute("SELECT count(*) FROM (SELECT 1 FROM visits WHERE source = 'plan'"
                                 " GROUP BY rep_id, customer_id, day HAVING count(*) > 1) x").fetchone()
        assert twice == (0,)
    finally:
        demo.kill()
