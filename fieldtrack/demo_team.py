"""The demo's sales team: who they are, where their customers are, and seeding them once.

Everything seeded carries the "Demo" team, a ``demo-`` external id or unique id, or an
``@demo.example.com`` email, so a second start finds it and adds nothing twice. The customers are
the simulator's own (simulators/shifts.py: the same seed gives the same customers and the same
rounds), so the seeded plans are the visits the reps really make.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from simulators.movement import MovementConfig, to_latlon
from simulators.shifts import CatchUpClock, ShiftPlan, shift_plan
from storage.geofences import GeofenceStore
from storage.visit_reports import VisitReportStore

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
# The visit report form the reps fill in (seeded once; a manager may change it through the API).
REPORT_FORM: list[dict[str, Any]] = [
    {"key": "shelf_ok", "label": "Shelf stocked and priced", "type": "boolean", "required": True},
    {"key": "facings", "label": "Facings of our range", "type": "number", "min": 0, "max": 60,
     "required": True},
    {"key": "order", "label": "Order taken", "type": "choice", "choices": ["none", "reorder", "new listing"],
     "required": True},
]
STREETS = ("Jordaan", "De Pijp", "Oost", "West", "Noord", "Zuid", "Centrum", "Watergraafsmeer")



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
    reports = VisitReportStore(pool)
    if (await reports.template(team)).version == 0:
        await reports.put_template(team, REPORT_FORM, manager)
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
