"""Webhook dispatcher: POSTs each queued event to its receivers, retrying until they take it.

The outbox (storage/webhooks.py) is the only state, so any number of dispatchers, in one process
or many, work through it together and a restart resumes where the last one stopped. A dispatcher
wakes on ``LISTEN fieldtrack_webhooks`` (sent when events are queued), when a retry falls due, and
at least every ``poll_s`` in case a notification was missed while its listening connection was down.

The request: ``POST <url>`` with a JSON body ``{"id": <delivery id>, "event": {...}, "device":
{...}, "webhook_id": ..., "attempt": n}``. The delivery id is the same on every retry, so a
receiver deduplicates on it. Headers ``X-Fieldtrack-Event`` (event type), ``X-Fieldtrack-Delivery``,
``X-Fieldtrack-Timestamp`` (unix seconds) and ``X-Fieldtrack-Signature: sha256=<hex>``, the
HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed with the webhook's secret. A receiver recomputes it
over the raw body, compares in constant time and rejects old timestamps (e.g. > 5 min): the
timestamp is signed, so a captured request cannot be replayed later (the Stripe/GitHub scheme).

Outcome: 2xx delivered; 410 Gone disables the webhook; anything else (other status, redirect,
timeout, connection error, bad URL) is retried by the outbox's RetryPolicy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import httpx
import psycopg
from psycopg import sql

from gateway.throttle import ThrottledLog
from storage.errors import StorageError
from storage.webhooks import CHANNEL, Claimed, WebhookOutbox

log = logging.getLogger("fieldtrack.gateway.webhooks")
throttled = ThrottledLog(log)

_LISTEN = sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL))


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    max_in_flight: int = 32  # requests at once, over all receivers
    timeout_s: float = 10.0  # a whole attempt: connect, send, first bytes of the answer
    poll_s: float = 5.0  # the longest sleep without a notification
    lease_margin_s: float = 30.0  # a claim outlives the attempt by this much before others retry it
    keep_delivered_s: float = 7 * 86400.0  # finished deliveries are pruned after these ages
    keep_failed_s: float = 30 * 86400.0
    prune_every_s: float = 3600.0
    user_agent: str = "Fieldtrack-Webhooks/1"

    @property
    def lease_s(self) -> float:
        return self.timeout_s + self.lease_margin_s


@dataclass
class DispatcherStatus:
    listening: bool = False
    delivered: int = 0
    failed_attempts: int = 0
    given_up: int = 0
    gone: int = 0
    last_error: str | None = None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Fieldtrack-Signature value for a request body sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def payload(claim: Claimed) -> bytes:
    event = dict(claim.event)
    event["time"] = event["time"].astimezone(UTC).isoformat()
    body = {"id": claim.id, "event": event, "device": claim.device, "webhook_id": claim.webhook_id,
            "attempt": claim.attempt}
    return json.dumps(body, separators=(",", ":"), default=str).encode()


class WebhookDispatcher:
    def __init__(self, outbox: WebhookOutbox, settings: DispatcherSettings | None = None, *,
                 listen_url: str | None = None) -> None:
        """``listen_url``: the database for LISTEN (one connection outside the pool); by default
        the outbox pool's connection string."""
        info = listen_url if listen_url is not None else outbox.pool.conninfo
        if not isinstance(info, str):
            raise TypeError("pass listen_url: the pool's conninfo is not a plain string")
        self.listen_url: str = info
        self.outbox = outbox
        self.settings = settings or DispatcherSettings()
        self.status = DispatcherStatus()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Dispatch until ``stop``; then let requests in flight finish (up to the timeout)."""
        s = self.settings
        limits = httpx.Limits(max_connections=s.max_in_flight, max_keepalive_connections=s.max_in_flight)
        listener = asyncio.create_task(self._listen(), name="webhooks-listen")
        try:
            async with httpx.AsyncClient(limits=limits, timeout=s.timeout_s, follow_redirects=False,
                                         headers={"User-Agent": s.user_agent}) as client:
                pruned_at = -s.prune_every_s
                while not self._stopping.is_set():
                    self._wake.clear()
                    try:
                        if time.monotonic() - pruned_at >= s.prune_every_s:
                            pruned_at = time.monotonic()
                            await self.outbox.prune(s.keep_delivered_s, s.keep_failed_s)
                        await self._fill(client)
                        wait = await self._wait_s()
                    except (StorageError, psycopg.Error) as exc:
                        throttled.warning("webhooks-db", "webhook outbox unavailable: %s", exc)
                        wait = s.poll_s
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
                if self._tasks:
                    await asyncio.wait(self._tasks, timeout=s.timeout_s + 1.0)
        finally:
            # What is cut off here stays claimed until its lease ends, then is retried.
            for t in (listener, *self._tasks):
                t.cancel()
            await asyncio.gather(listener, *self._tasks, return_exceptions=True)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def report(self) -> dict[str, Any]:
        st = self.status
        return {"listening": st.listening, "in_flight": len(self._tasks), "delivered": st.delivered,
                "failed_attempts": st.failed_attempts, "given_up": st.given_up,
                "disabled_by_410": st.gone, "last_error": st.last_error}

    async def _fill(self, client: httpx.AsyncClient) -> None:
        free = self.settings.max_in_flight - len(self._tasks)
        if free <= 0:
            return
        for claim in await self.outbox.claim(free, self.settings.lease_s):
            task = asyncio.create_task(self._deliver(client, claim), name=f"webhook-{claim.id}")
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()  # a slot is free

    async def _wait_s(self) -> float:
        if len(self._tasks) >= self.settings.max_in_flight:
            return self.settings.poll_s
        due = await self.outbox.next_due_s()
        if due is None:
            return self.settings.poll_s
        # A due row another dispatcher holds locked right now is skipped: do not spin on it.
        return min(max(due, 0.05), self.settings.poll_s)

    async def _deliver(self, client: httpx.AsyncClient, claim: Claimed) -> None:
        try:
            status, error = await self._post(client, claim)
            if status is not None and 200 <= status < 300:
                await self.outbox.delivered(claim)
                self.status.delivered += 1
            elif status == 410:
                await self.outbox.gone(claim, f"HTTP 410 Gone: webhook disabled{error}")
                self.status.gone += 1
                log.warning("webhook %s answered 410 Gone: disabled", claim.webhook_id)
            else:
                message = f"HTTP {status}{error}" if status is not None else error
                self.status.failed_attempts += 1
                self.status.last_error = message
                if await self.outbox.failed(claim, message):
                    self.status.given_up += 1
                    log.warning("webhook %s: gave up delivery %s after %s attempts: %s",
                                claim.webhook_id, claim.id, claim.attempt, message)
        except (StorageError, psycopg.Error) as exc:
            # The outcome is lost; the lease runs out and the delivery is tried again.
            throttled.warning("webhooks-db", "webhook delivery %s outcome not recorded: %s", claim.id, exc)
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly", claim.id)

    async def _post(self, client: httpx.AsyncClient, claim: Claimed) -> tuple[int | None, str]:
        """(HTTP status, detail) of one attempt; status None when no answer came."""
        body = payload(claim)
        stamp = int(time.time())
        headers = {"Content-Type": "application/json", "X-Fieldtrack-Event": str(claim.event["type"]),
                   "X-Fieldtrack-Delivery": str(claim.id), "X-Fieldtrack-Timestamp": str(stamp),
                   "X-Fieldtrack-Signature": signature(claim.secret, stamp, body)}
        status: int | None = None
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                async with client.stream("POST", claim.url, content=body, headers=headers) as resp:
                    status = resp.status_code
                    head = await _head(resp, 200)
                    return status, (f": {head}" if head else "")
        except TimeoutError:
            if status is not None:  # the status counts even if the body dribbles in too slowly
                return status, " (the rest of the answer timed out)"
            error = f"timed out after {self.settings.timeout_s:g} s"
        except Exception as exc:  # a bad URL, refused connection, TLS error...: retried, never fatal
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        throttled.warning(f"webhook:{claim.webhook_id}", "webhook %s: %s", claim.webhook_id, error)
        return None, error

    async def _listen(self) -> None:
        """Set the wake flag on every notification; reconnect with jittered backoff."""
        delay = 1.0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.listen_url, autocommit=True) as conn:
                    await conn.execute(_LISTEN)
                    self.status.listening = True
                    delay = 1.0
                    self._wake.set()  # notifications sent while we were not listening are lost
                    async for _ in conn.notifies():
                        self._wake.set()
            except psycopg.Error as exc:
                throttled.warning("webhooks-listen", "webhook LISTEN connection lost: %s", exc)
            finally:
                self.status.listening = False
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 60.0)


async def _head(resp: httpx.Response, limit: int) -> str:
    """The start of a response body, for last_error; a huge answer is not read whole."""
    data = b""
    async for chunk in resp.aiter_raw():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit].decode("utf-8", "replace").strip()
