"""The periodic visit reconciliation: every ``interval_s``, each rep's recent local days are
reconciled with their track (detected visits, plans done or missed, reconciliation flags).

Time drives part of it (a plan becomes missed after its day ends), so it runs on a timer, not on
new positions. Each rep is one transaction (storage/visit_detect.py); a failure with one rep is
logged and the others go on; a database outage ends the pass and it is tried again next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from gateway.throttle import ThrottledLog
from storage.errors import StorageUnavailable
from storage.visit_detect import Outcome, reconcile_rep, reps_to_reconcile

log = logging.getLogger("fieldtrack.gateway.visits")
throttled = ThrottledLog(log)


@dataclass
class VisitJobStats:
    passes: int = 0
    reps: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    errors: int = 0
    last_error: str | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class VisitJob:
    def __init__(self, pool: AsyncConnectionPool, *, interval_s: float = 60.0, recent_days: int = 3,
                 clock: Callable[[], datetime] = _utc_now) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self.recent_days = recent_days
        self.clock = clock
        self.stats = VisitJobStats()
        self._stopping = asyncio.Event()

    async def reconcile(self, rep_id: int, days: Collection[date] | None = None,
                        now: datetime | None = None) -> Outcome:
        """One rep now (or as of ``now``); raises what storage raises (NotFound, StorageUnavailable)."""
        outcome = await reconcile_rep(self.pool, rep_id, now or self.clock(), days,
                                      recent_days=self.recent_days)
        self.stats.created += outcome.created
        self.stats.updated += outcome.updated
        self.stats.deleted += outcome.deleted
        return outcome

    async def run_once(self, now: datetime | None = None) -> int:
        """One pass over every rep; returns how many were reconciled."""
        at = now or self.clock()
        done = 0
        for rep_id in await reps_to_reconcile(self.pool, at):
            if self._stopping.is_set():
                break
            try:
                await self.reconcile(rep_id, now=at)
                done += 1
            except (StorageUnavailable, psycopg.OperationalError):
                raise
            except Exception as exc:  # one rep's bad data must not stop the others
                self._error(exc)
                log.exception("visit reconciliation of user %s failed", rep_id)
        self.stats.passes += 1
        self.stats.reps = done
        return done

    async def run(self) -> None:
        """Until ``stop``: a pass, then a pause of ``interval_s``."""
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except (StorageUnavailable, psycopg.OperationalError, OSError) as exc:
                self._error(exc)
                throttled.warning("visits-db", "visit reconciliation paused, database unavailable: %s", exc)
            except Exception as exc:
                self._error(exc)
                log.exception("visit reconciliation pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)

    def stop(self) -> None:
        self._stopping.set()

    def report(self) -> dict[str, Any]:
        return vars(self.stats).copy()

    def _error(self, exc: BaseException) -> None:
        self.stats.errors += 1
        self.stats.last_error = str(exc) or type(exc).__name__
