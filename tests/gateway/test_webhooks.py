"""Webhook outbox and dispatcher on a real database, POSTing to a real HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from gateway.webhooks import DispatcherSettings, WebhookDispatcher
from storage import db
from storage.webhooks import RetryPolicy, Webhook, WebhookOutbox, WebhookStore, enqueue
from tests.ports import free_port

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
SECRET = "s3cret-signing-key-0123456789"
HANG = 0  # a status that makes the receiver never answer
FAST = RetryPolicy(base_s=0.1, factor=2.0, max_delay_s=0.5, jitter=0.2, max_attempts=50)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    status: int

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server with keep-alive: answers ``script`` in order, then ``default``."""

    script: list[int] = field(default_factory=list)
    default: int = 200
    delay_s: float = 0.0
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self, port: int = 0) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:] if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = self.script.pop(0) if self.script else self.default
                self.requests.append(Received(headers, body, time.monotonic(), status))
                if status == HANG:
                    await asyncio.sleep(3600)
                await asyncio.sleep(self.delay_s)
                reply = b"" if status < 300 else b"boom"
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(reply)}\r\n\r\n".encode() + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    p = db.open_pool(database_url, 4)
    await p.open()
    yield p
    await p.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.close()


async def add_device(pool: AsyncConnectionPool, unique_id: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("INSERT INTO devices (unique_id, name) VALUES (%s, %s) RETURNING id",
                                 (unique_id, f"Rep {unique_id}"))
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def emit(pool: AsyncConnectionPool, events: list[tuple[int, str]]) -> list[int]:
    """Insert events and queue their deliveries in one transaction, as the processing runner does."""
    ids: list[int] = []
    async with pool.connection() as conn, conn.transaction():
        for device_id, kind in events:
            when = T0 + timedelta(seconds=random.randrange(10**8))
            cur = await conn.execute(
                "INSERT INTO events (device_id, time, type, latitude, longitude, geofence_id, attributes,"
                " emitted_time, emitted_key) VALUES (%s, %s, %s, 52.37, 4.89, 7, '{\"speed_kmh\": 61.5}',"
                " %s, 1) RETURNING id", (device_id, when, kind, when))
            row = await cur.fetchone()
            assert row is not None
            ids.append(int(row[0]))
        await enqueue(conn, ids)
    return ids


async def deliveries(pool: AsyncConnectionPool) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        await cur.execute("SELECT * FROM webhook_deliveries ORDER BY id")
        return list(await cur.fetchall())


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def all_delivered(pool: AsyncConnectionPool, n: int) -> bool:
    rows = await deliveries(pool)
    return len(rows) == n and all(r["delivered_at"] is not None for r in rows)


@contextlib.asynccontextmanager
async def dispatching(pool: AsyncConnectionPool, policy: RetryPolicy = FAST,
                      **settings: Any) -> AsyncIterator[WebhookDispatcher]:
    values = {"timeout_s": 2.0, "poll_s": 5.0} | settings
    dispatcher = WebhookDispatcher(WebhookOutbox(pool, policy), DispatcherSettings(**values))
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        dispatcher.stop()
        await task


async def hook(pool: AsyncConnectionPool, url: str, event_types: list[str] | None = None,
               device_ids: list[int] | None = None) -> Webhook:
    return await WebhookStore(pool).create(url, SECRET, event_types or [], device_ids or [])


def test_default_retry_schedule_spans_about_a_day_and_grows() -> None:
    p = RetryPolicy()
    rand = random.Random(1)
    middle = [RetryPolicy(jitter=0.0).delay_s(n) for n in range(1, p.max_attempts)]
    assert 23 * 3600 < sum(middle) < 25 * 3600
    assert middle == sorted(middle) and max(middle) == p.max_delay_s
    for n in range(1, 12):
        d = p.delay_s(n, rand)
        plain = min(p.base_s * p.factor ** (n - 1), p.max_delay_s)
        assert plain * (1 - p.jitter) <= d <= plain * (1 + p.jitter)


async def test_delivery_is_signed_and_carries_the_event(pool: AsyncConnectionPool,
                                                       receiver: Receiver) -> None:
    dev = await add_device(pool, "imei-1")
    webhook = await hook(pool, receiver.url)
    [event_id] = await emit(pool, [(dev, "geofenceEnter")])
    async with dispatching(pool):
        await eventually(lambda: all_delivered(pool, 1))
    [req] = receiver.requests
    [row] = await deliveries(pool)
    h = req.headers
    assert h["content-type"] == "application/json"
    assert h["x-fieldtrack-event"] == "geofenceEnter"
    assert h["x-fieldtrack-delivery"] == str(row["id"])
    assert abs(int(h["x-fieldtrack-timestamp"]) - time.time()) < 120
    expected = hmac.new(SECRET.encode(), h["x-fieldtrack-timestamp"].encode() + b"." + req.body,
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(h["x-fieldtrack-signature"], "sha256=" + expected)
    forged = hmac.new(b"another-secret", req.body, hashlib.sha256).hexdigest()
    assert h["x-fieldtrack-signature"] != "sha256=" + forged
    body = req.json()
    assert body["id"] == row["id"] and body["webhook_id"] == webhook.id and body["attempt"] == 1
    event = body["event"]
    assert event["id"] == event_id and event["device_id"] == dev and event["type"] == "geofenceEnter"
    assert datetime.fromisoformat(event["time"]).tzinfo is not None
    assert (event["latitude"], event["longitude"], event["geofence_id"]) == (52.37, 4.89, 7)
    assert event["attributes"] == {"speed_kmh": 61.5}
    assert body["device"] == {"id": dev, "unique_id": "imei-1", "name": "Rep imei-1"}
    assert row["attempts"] == 1 and row["last_error"] is None


async def test_webhooks_get_only_the_event_types_and_devices_they_ask_for(pool: AsyncConnectionPool) -> None:
    d1, d2 = await add_device(pool, "d1"), await add_device(pool, "d2")
    everything = await hook(pool, "http://127.0.0.1:9/all")
    enters = await hook(pool, "http://127.0.0.1:9/enter", event_types=["geofenceEnter"])
    second = await hook(pool, "http://127.0.0.1:9/d2", device_ids=[d2])
    both = await hook(pool, "http://127.0.0.1:9/both", event_types=["geofenceExit", "alarm"], device_ids=[d1])
    off = await WebhookStore(pool).update((await hook(pool, "http://127.0.0.1:9/off")).id, {"enabled": False})
    e1, e2, e3 = await emit(pool, [(d1, "geofenceEnter"), (d1, "geofenceExit"), (d2, "geofenceEnter")])
    got = {(r["webhook_id"], r["event_id"]) for r in await deliveries(pool)}
    assert got == {(everything.id, e1), (everything.id, e2), (everything.id, e3),
                   (enters.id, e1), (enters.id, e3), (second.id, e3), (both.id, e2)}
    assert not off.enabled
    async with pool.connection() as conn:
        assert await enqueue(conn, [e1, e2, e3]) == 0  # queued once only


async def test_routing_reaches_the_right_receivers(pool: AsyncConnectionPool) -> None:
    enters, device2 = await Receiver().start(), await Receiver().start()
    try:
        d1, d2 = await add_device(pool, "d1"), await add_device(pool, "d2")
        await hook(pool, enters.url, event_types=["geofenceEnter"])
        await hook(pool, device2.url, device_ids=[d2])
        e1, _, e3 = await emit(pool, [(d1, "geofenceEnter"), (d1, "geofenceExit"), (d2, "deviceOverspeed")])
        async with dispatching(pool):
            await eventually(lambda: all_delivered(pool, 2))
        assert [r.json()["event"]["id"] for r in enters.requests] == [e1]
        assert [r.json()["event"]["id"] for r in device2.requests] == [e3]
        assert device2.requests[0].headers["x-fieldtrack-event"] == "deviceOverspeed"
    finally:
        await enters.close()
        await device2.close()


async def test_enqueue_is_part_of_the_events_transaction(pool: AsyncConnectionPool,
                                                        database_url: str) -> None:
    dev = await add_device(pool, "d1")
    await hook(pool, "http://127.0.0.1:9/x")
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener:
        await listener.execute("LISTEN fieldtrack_webhooks")
        with contextlib.suppress(RuntimeError):
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO events (device_id, time, type, latitude, longitude, emitted_time,"
                    " emitted_key) VALUES (%s, %s, 'alarm', 0, 0, %s, 1)", (dev, T0, T0))
                cur = await conn.execute("SELECT max(id) FROM events")
                row = await cur.fetchone()
                assert row is not None
                assert await enqueue(conn, [row[0]]) == 1
                raise RuntimeError("roll back")
        assert await deliveries(pool) == []
        assert [n async for n in listener.notifies(timeout=0.3)] == []
        await emit(pool, [(dev, "alarm")])
        notes = [n async for n in listener.notifies(timeout=5, stop_after=1)]
        assert [n.channel for n in notes] == ["fieldtrack_webhooks"]
    assert len(await deliveries(pool)) == 1


async def test_retries_with_growing_backoff_until_accepted(pool: AsyncConnectionPool) -> None:
    receiver = await Receiver(script=[500, 500]).start()
    try:
        dev = await add_device(pool, "d1")
        await hook(pool, receiver.url)
        await emit(pool, [(dev, "deviceOverspeed")])
        policy = RetryPolicy(base_s=0.3, factor=3.0, jitter=0.2, max_attempts=10)
        async with dispatching(pool, policy):
            await eventually(lambda: all_delivered(pool, 1))
    finally:
        await receiver.close()
    first, second, third = receiver.requests
    assert [r.status for r in receiver.requests] == [500, 500, 200]
    assert [r.json()["attempt"] for r in receiver.requests] == [1, 2, 3]
    assert len({r.json()["id"] for r in receiver.requests}) == 1
    wait1, wait2 = second.at - first.at, third.at - second.at
    assert wait1 >= 0.3 * 0.8 and wait2 >= 0.9 * 0.8 and wait2 > wait1
    [row] = await deliveries(pool)
    assert row["attempts"] == 3 and row["delivered_at"] is not None


async def test_receiver_down_is_retried_and_delivered_when_it_comes_up(pool: AsyncConnectionPool) -> None:
    port = free_port()
    dev = await add_device(pool, "d1")
    await hook(pool, f"http://127.0.0.1:{port}/hook")
    await emit(pool, [(dev, "geofenceExit")])

    async def failed_twice() -> bool:
        [row] = await deliveries(pool)
        return bool(row["attempts"] >= 2 and row["last_error"])

    async with dispatching(pool):
        await eventually(failed_twice)
        [row] = await deliveries(pool)
        assert "Connect" in row["last_error"] and row["delivered_at"] is None
        receiver = await Receiver().start(port)
        try:
            await eventually(lambda: all_delivered(pool, 1))
        finally:
            await receiver.close()
    [row] = await deliveries(pool)
    [req] = receiver.requests
    assert req.json()["attempt"] == row["attempts"] >= 3


async def test_gives_up_after_max_attempts_with_the_last_error(pool: AsyncConnectionPool) -> None:
    receiver = await Receiver(default=500).start()
    try:
        dev = await add_device(pool, "d1")
        await hook(pool, receiver.url)
        await emit(pool, [(dev, "alarm")])

        async def given_up() -> bool:
            return (await deliveries(pool))[0]["failed_at"] is not None

        policy = RetryPolicy(base_s=0.05, factor=2.0, jitter=0.2, max_attempts=3)
        async with dispatching(pool, policy) as dispatcher:
            await eventually(given_up)
            await asyncio.sleep(0.5)  # several backoffs: nothing more is sent
        assert dispatcher.report()["given_up"] == 1
    finally:
        await receiver.close()
    [row] = await deliveries(pool)
    assert row["attempts"] == 3 and row["delivered_at"] is None
    assert "HTTP 500" in row["last_error"] and "boom" in row["last_error"]
    assert len(receiver.requests) == 3


async def test_gives_up_on_a_failure_past_the_maximum_age(pool: AsyncConnectionPool) -> None:
    dev = await add_device(pool, "d1")
    await hook(pool, "http://127.0.0.1:9/x")
    await emit(pool, [(dev, "alarm")])
    young = WebhookOutbox(pool, RetryPolicy(max_age_s=3600))
    [claim] = await young.claim(10, lease_s=0)
    assert not await young.failed(claim, "HTTP 502")
    old = WebhookOutbox(pool, RetryPolicy(max_age_s=0))
    async with pool.connection() as conn:
        await conn.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
    [claim] = await old.claim(10, lease_s=0)
    assert await old.failed(claim, "HTTP 503")
    [row] = await deliveries(pool)
    assert row["failed_at"] is not None and row["attempts"] == 2 and row["last_error"] == "HTTP 503"


async def test_a_stale_claim_cannot_overwrite_a_newer_one(pool: AsyncConnectionPool) -> None:
    dev = await add_device(pool, "d1")
    await hook(pool, "http://127.0.0.1:9/x")
    await emit(pool, [(dev, "alarm")])
    outbox = WebhookOutbox(pool, RetryPolicy(max_attempts=1))
    [stale] = await outbox.claim(10, lease_s=0)  # its lease has already run out
    [fresh] = await outbox.claim(10, lease_s=60)
    assert (stale.id, stale.attempt, fresh.attempt) == (fresh.id, 1, 2)
    assert await outbox.claim(10, lease_s=60) == []  # leased: no one else takes it
    assert not await outbox.failed(stale, "late timeout")
    [row] = await deliveries(pool)
    assert row["failed_at"] is None and row["last_error"] is None
    await outbox.delivered(fresh)
    assert (await deliveries(pool))[0]["delivered_at"] is not None


async def test_a_new_dispatcher_delivers_what_was_pending(pool: AsyncConnectionPool,
                                                         database_url: str) -> None:
    receiver = await Receiver(script=[503]).start()
    try:
        dev = await add_device(pool, "d1")
        await hook(pool, receiver.url)
        [first] = await emit(pool, [(dev, "alarm")])
        policy = RetryPolicy(base_s=0.5, jitter=0.0)
        async with dispatching(pool, policy):
            await eventually(lambda: _attempted(pool))
        [second] = await emit(pool, [(dev, "ignitionOn")])  # while no dispatcher runs
        restarted = db.open_pool(database_url, 2)  # as if in a new process
        await restarted.open()
        try:
            async with dispatching(restarted, policy):
                await eventually(lambda: all_delivered(pool, 2))
        finally:
            await restarted.close()
    finally:
        await receiver.close()
    seen = [(r.json()["event"]["id"], r.json()["attempt"], r.status) for r in receiver.requests]
    assert sorted(seen) == sorted([(first, 1, 503), (first, 2, 200), (second, 1, 200)])


async def _attempted(pool: AsyncConnectionPool) -> bool:
    return any(r["last_error"] for r in await deliveries(pool))


async def test_a_dispatcher_that_dies_mid_request_is_retried_after_its_lease(
        pool: AsyncConnectionPool) -> None:
    receiver = await Receiver(script=[HANG]).start()
    try:
        dev = await add_device(pool, "d1")
        await hook(pool, receiver.url)
        await emit(pool, [(dev, "alarm")])
        crashed = WebhookDispatcher(WebhookOutbox(pool, FAST),
                                    DispatcherSettings(timeout_s=30.0, lease_margin_s=0.0))
        task = asyncio.create_task(crashed.run())
        await eventually(lambda: _received(receiver, 1))
        with contextlib.suppress(psycopg.Error):
            async with pool.connection() as conn:  # shorten the 30 s lease the claim took
                await conn.execute("UPDATE webhook_deliveries SET next_attempt_at = now() + interval '0.3 s'")
        task.cancel()  # no outcome recorded, as if the process died
        with contextlib.suppress(asyncio.CancelledError):
            await task
        async with dispatching(pool):
            await eventually(lambda: all_delivered(pool, 1))
    finally:
        await receiver.close()
    ids = [r.json()["id"] for r in receiver.requests]
    assert len(ids) == 2 and ids[0] == ids[1]  # at least once: receivers deduplicate on the id
    assert [r.json()["attempt"] for r in receiver.requests] == [1, 2]


async def _received(receiver: Receiver, n: int) -> bool:
    return len(receiver.requests) >= n


async def test_two_dispatchers_deliver_each_event_exactly_once(pool: AsyncConnectionPool, database_url: str,
                                                               receiver: Receiver) -> None:
    receiver.delay_s = 0.01
    devices = [await add_device(pool, f"d{i}") for i in range(3)]
    await hook(pool, receiver.url)
    other = db.open_pool(database_url, 2)
    await other.open()
    try:
        async with dispatching(pool, max_in_flight=4) as a, dispatching(other, max_in_flight=4) as b:
            async def listening() -> bool:
                return bool(a.status.listening and b.status.listening)

            await eventually(listening)
            for batch in range(4):
                await emit(pool, [(devices[i % 3], "alarm") for i in range(15 * batch, 15 * batch + 15)])
            await eventually(lambda: all_delivered(pool, 60))
    finally:
        await other.close()
    counts = Counter(r.json()["id"] for r in receiver.requests)
    assert len(counts) == 60 and set(counts.values()) == {1}
    assert a.report()["delivered"] > 0 and b.report()["delivered"] > 0
    assert a.report()["delivered"] + b.report()["delivered"] == 60


async def test_410_gone_disables_the_webhook(pool: AsyncConnectionPool) -> None:
    receiver = await Receiver(default=410).start()
    try:
        dev = await add_device(pool, "d1")
        webhook = await hook(pool, receiver.url)
        await emit(pool, [(dev, "alarm"), (dev, "ignitionOff")])

        async def disabled() -> bool:
            rows = await deliveries(pool)
            enabled = (await WebhookStore(pool).get(webhook.id)).enabled
            return not enabled and all(r["failed_at"] for r in rows)

        async with dispatching(pool):
            await eventually(disabled)
            await emit(pool, [(dev, "ignitionOn")])
            await asyncio.sleep(0.3)
    finally:
        await receiver.close()
    rows = await deliveries(pool)
    assert len(rows) == 2 and all("410" in r["last_error"] for r in rows)
    assert 1 <= len(receiver.requests) <= 2


async def test_a_bad_url_is_retried_and_never_stops_the_dispatcher(pool: AsyncConnectionPool,
                                                                    receiver: Receiver) -> None:
    dev = await add_device(pool, "d1")
    bad = [await hook(pool, url) for url in ("http://", "http://[::1/x", "ftp://127.0.0.1/x",
                                             "http://no-such-host.invalid/x")]
    good = await hook(pool, receiver.url)
    await emit(pool, [(dev, "alarm")])

    async def settled() -> bool:
        rows = await deliveries(pool)
        ok = [r for r in rows if r["webhook_id"] == good.id and r["delivered_at"]]
        # a third claim means two failures were recorded
        tried = [r for r in rows if r["webhook_id"] != good.id and r["attempts"] >= 3]
        return len(ok) == 1 and len(tried) == len(bad)

    async with dispatching(pool) as dispatcher:
        await eventually(settled)
        assert dispatcher.report()["failed_attempts"] >= 2 * len(bad)
    assert len(receiver.requests) == 1


async def test_finished_deliveries_are_pruned_after_their_keep_times(pool: AsyncConnectionPool) -> None:
    dev = await add_device(pool, "d1")
    await hook(pool, "http://127.0.0.1:9/x")
    ids = await emit(pool, [(dev, "alarm") for _ in range(5)])
    age = {ids[0]: ("delivered_at", 8), ids[1]: ("delivered_at", 6), ids[2]: ("failed_at", 31),
           ids[3]: ("failed_at", 29)}  # ids[4] stays pending
    async with pool.connection() as conn:
        for event_id, (column, days) in age.items():
            await conn.execute(f"UPDATE webhook_deliveries SET {column} = now() - make_interval(days => %s)"
                               " WHERE event_id = %s".encode(), (days, event_id))
    assert await WebhookOutbox(pool).prune(7 * 86400, 30 * 86400) == 2
    assert sorted(r["event_id"] for r in await deliveries(pool)) == [ids[1], ids[3], ids[4]]

    async def only_pending_left() -> bool:
        return [r["event_id"] for r in await deliveries(pool)] == [ids[4]]

    async with dispatching(pool, keep_delivered_s=86400.0, keep_failed_s=86400.0):
        await eventually(only_pending_left)
