"""Webhooks: the configured receivers and the delivery outbox the dispatcher works through.

A delivery row is inserted in the same transaction as its event (``enqueue``), so an event is
never committed without its deliveries, nor a delivery without its event. Dispatchers claim due
rows with ``FOR UPDATE SKIP LOCKED`` and a lease: the claim pushes ``next_attempt_at`` past the
request timeout and counts the attempt, so other dispatchers skip the row while it is in flight,
and a dispatcher that dies mid-request leaves a row that becomes due again when the lease ends
(at-least-once; receivers deduplicate on the delivery id). ``attempts`` doubles as a fencing
token: a dispatcher whose lease ran out cannot overwrite the newer claim's outcome.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from storage.errors import NotFound, StorageUnavailable

CHANNEL = "fieldtrack_webhooks"
_NOTIFY = "NOTIFY fieldtrack_webhooks"


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    url: str
    # Kept out of repr so a logged webhook never leaks the signing key.
    secret: str = field(repr=False)
    event_types: list[str]
    device_ids: list[int]
    enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to retry a failed delivery and when to give up.

    The n-th failure (n = 1, 2, ...) waits ``base_s * factor**(n-1)``, capped at ``max_delay_s``,
    times a random factor in ``[1 - jitter, 1 + jitter]`` so receivers recovering from an outage
    are not hit by every dispatcher at once. With the defaults the waits are 1, 3, 9, 27, 81 min,
    4 h and then 6 h: the 10th attempt comes about 24 h after the first, the horizon GitHub and
    Stripe-style webhooks also retry over. A delivery is given up after its ``max_attempts``-th
    failure, or after any failure ``max_age_s`` or more after it was enqueued.
    """

    base_s: float = 60.0
    factor: float = 3.0
    max_delay_s: float = 6 * 3600.0
    jitter: float = 0.2
    max_attempts: int = 10
    max_age_s: float = 24 * 3600.0

    def delay_s(self, attempt: int, rand: random.Random | None = None) -> float:
        """The wait after the ``attempt``-th failed attempt (1-based)."""
        r = (rand or random).uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return min(self.base_s * self.factor ** (attempt - 1), self.max_delay_s) * r


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed for one attempt, with what its request needs."""

    id: int
    webhook_id: int
    url: str
    secret: str = field(repr=False)
    attempt: int  # 1 for the first attempt; also the fencing token of this claim
    event: dict[str, Any]  # id, device_id, type, time, latitude, longitude, geofence_id, attributes
    device: dict[str, Any]  # id, unique_id, name


_WEBHOOK = "id, url, secret, event_types, device_ids, enabled, created_at"

_ENQUEUE = """
INSERT INTO webhook_deliveries (webhook_id, event_id)
SELECT w.id, e.id FROM events e JOIN webhooks w
  ON w.enabled
 AND (cardinality(w.event_types) = 0 OR e.type = ANY (w.event_types))
 AND (cardinality(w.device_ids) = 0 OR e.device_id = ANY (w.device_ids))
WHERE e.id = ANY (%s::bigint[])
ON CONFLICT (webhook_id, event_id) DO NOTHING
"""

# Deliveries of a disabled webhook wait (an admin's pause) rather than fail.
_CLAIM = """
WITH due AS (
  SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
  WHERE d.delivered_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= now() AND w.enabled
  ORDER BY d.next_attempt_at
  LIMIT %(limit)s
  FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d
   SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => %(lease)s)
  FROM due, webhooks w, events e, devices v
 WHERE d.id = due.id AND w.id = d.webhook_id AND e.id = d.event_id AND v.id = e.device_id
RETURNING d.id, d.webhook_id, w.url, w.secret, d.attempts,
          e.id AS event_id, e.device_id, e.type, e.time, e.latitude, e.longitude, e.geofence_id,
          e.attributes, v.unique_id, v.name
"""

_FAILED = """
UPDATE webhook_deliveries
   SET last_error = %(error)s,
       next_attempt_at = now() + make_interval(secs => %(delay)s),
       failed_at = CASE WHEN attempts >= %(max_attempts)s
                          OR now() - created_at >= make_interval(secs => %(max_age)s)
                        THEN now() END
 WHERE id = %(id)s AND attempts = %(attempt)s AND delivered_at IS NULL AND failed_at IS NULL
RETURNING failed_at IS NOT NULL AS gave_up
"""


async def enqueue(conn: psycopg.AsyncConnection[Any], event_ids: list[int]) -> int:
    """Queue a delivery of each event to every enabled webhook that wants it; returns how many.

    Call inside the transaction that inserted the events: the NOTIFY is sent on commit, and
    nothing is queued if it rolls back. Queuing an event twice is a no-op.
    """
    if not event_ids:
        return 0
    cur = await conn.execute(_ENQUEUE, (event_ids,))
    queued = cur.rowcount
    if queued > 0:
        await conn.execute(_NOTIFY)
    return queued


class WebhookStore:
    """Webhook configuration, for the API."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(self, url: str, secret: str, event_types: list[str], device_ids: list[int],
                     enabled: bool = True) -> Webhook:
        rows = await _rows(self.pool,
                           "INSERT INTO webhooks (url, secret, event_types, device_ids, enabled)"
                           f" VALUES (%s, %s, %s::text[], %s::bigint[], %s) RETURNING {_WEBHOOK}",
                           (url, secret, event_types, device_ids, enabled))
        return Webhook(**rows[0])

    async def get(self, webhook_id: int) -> Webhook:
        rows = await _rows(self.pool, f"SELECT {_WEBHOOK} FROM webhooks WHERE id = %s", (webhook_id,))
        if not rows:
            raise NotFound(f"webhook {webhook_id}")
        return Webhook(**rows[0])

    async def page(self, limit: int, offset: int) -> tuple[list[Webhook], int]:
        rows = await _rows(self.pool, f"SELECT {_WEBHOOK} FROM webhooks ORDER BY id LIMIT %s OFFSET %s",
                           (limit, offset))
        total = await _rows(self.pool, "SELECT count(*) AS n FROM webhooks", ())
        return [Webhook(**r) for r in rows], int(total[0]["n"])

    async def update(self, webhook_id: int, changes: dict[str, Any]) -> Webhook:
        casts = {"url": "%s", "enabled": "%s", "event_types": "%s::text[]", "device_ids": "%s::bigint[]"}
        sets = {k: v for k, v in changes.items() if k in casts}
        if not sets:
            return await self.get(webhook_id)
        assignments = ", ".join(f"{k} = {casts[k]}" for k in sets)
        rows = await _rows(self.pool, f"UPDATE webhooks SET {assignments} WHERE id = %s RETURNING {_WEBHOOK}",
                           (*sets.values(), webhook_id))
        if not rows:
            raise NotFound(f"webhook {webhook_id}")
        return Webhook(**rows[0])

    async def delete(self, webhook_id: int) -> None:
        rows = await _rows(self.pool, "DELETE FROM webhooks WHERE id = %s RETURNING id", (webhook_id,))
        if not rows:
            raise NotFound(f"webhook {webhook_id}")

    async def deliveries(self, webhook_id: int, state: str | None, limit: int) -> list[dict[str, Any]]:
        """The newest deliveries of a webhook; ``state`` is pending, delivered or failed (None: all)."""
        where = {None: "", "pending": " AND delivered_at IS NULL AND failed_at IS NULL",
                 "delivered": " AND delivered_at IS NOT NULL", "failed": " AND failed_at IS NOT NULL"}
        return await _rows(self.pool,
                           "SELECT id, event_id, attempts, next_attempt_at, delivered_at, failed_at,"
                           " last_error, created_at FROM webhook_deliveries WHERE webhook_id = %s"
                           f"{where[state]} ORDER BY id DESC LIMIT %s", (webhook_id, limit))


class WebhookOutbox:
    """The dispatcher's side of the outbox: claim due deliveries and record their outcome."""

    def __init__(self, pool: AsyncConnectionPool, policy: RetryPolicy | None = None) -> None:
        self.pool = pool
        self.policy = policy or RetryPolicy()

    async def claim(self, limit: int, lease_s: float) -> list[Claimed]:
        """Up to ``limit`` due deliveries, each hidden from other dispatchers for ``lease_s``."""
        rows = await _rows(self.pool, _CLAIM, {"limit": limit, "lease": lease_s})
        return [
            Claimed(id=r["id"], webhook_id=r["webhook_id"], url=r["url"], secret=r["secret"],
                    attempt=r["attempts"],
                    event={"id": r["event_id"], "device_id": r["device_id"], "type": r["type"],
                           "time": r["time"], "latitude": r["latitude"], "longitude": r["longitude"],
                           "geofence_id": r["geofence_id"], "attributes": r["attributes"]},
                    device={"id": r["device_id"], "unique_id": r["unique_id"], "name": r["name"]})
            for r in rows
        ]

    async def delivered(self, claim: Claimed) -> None:
        # Not fenced on attempts: once a receiver has accepted it, it is delivered, whoever asks.
        await _rows(self.pool, "UPDATE webhook_deliveries SET delivered_at = now(), last_error = NULL"
                    " WHERE id = %s AND delivered_at IS NULL", (claim.id,))

    async def failed(self, claim: Claimed, error: str) -> bool:
        """Record a failed attempt and schedule the next; True when this gave the delivery up."""
        p = self.policy
        rows = await _rows(self.pool, _FAILED, {
            "id": claim.id, "attempt": claim.attempt, "error": error[:1000],
            "delay": p.delay_s(claim.attempt), "max_attempts": p.max_attempts, "max_age": p.max_age_s})
        return bool(rows and rows[0]["gave_up"])

    async def gone(self, claim: Claimed, error: str) -> None:
        """The receiver answered 410 Gone: disable the webhook and give up its pending deliveries."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute("UPDATE webhooks SET enabled = false WHERE id = %s", (claim.webhook_id,))
                await conn.execute(
                    "UPDATE webhook_deliveries SET failed_at = now(), last_error = %s"
                    " WHERE webhook_id = %s AND delivered_at IS NULL AND failed_at IS NULL",
                    (error[:1000], claim.webhook_id))
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def next_due_s(self) -> float | None:
        """Seconds until the earliest pending delivery is due (<= 0: now), None when none is."""
        rows = await _rows(self.pool,
                           "SELECT extract(epoch FROM min(d.next_attempt_at) - now())::float8 AS wait"
                           " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
                           " WHERE d.delivered_at IS NULL AND d.failed_at IS NULL AND w.enabled", ())
        wait = rows[0]["wait"] if rows else None
        return None if wait is None else float(wait)

    async def prune(self, delivered_older_than_s: float, failed_older_than_s: float) -> int:
        """Delete finished deliveries older than these ages; returns how many."""
        rows = await _rows(self.pool,
                           "WITH gone AS (DELETE FROM webhook_deliveries"
                           " WHERE delivered_at < now() - make_interval(secs => %s)"
                           " OR failed_at < now() - make_interval(secs => %s) RETURNING 1)"
                           " SELECT count(*) AS n FROM gone",
                           (delivered_older_than_s, failed_older_than_s))
        return int(rows[0]["n"])


async def _rows(pool: AsyncConnectionPool, sql: str, params: Any) -> list[dict[str, Any]]:
    try:
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.encode(), params)
            return list(await cur.fetchall()) if cur.description else []
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc
