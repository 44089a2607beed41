"""One gateway worker process: the TCP device listeners, with its own pool, writer and spool.

Started by gateway.workers (``python -m gateway.worker``) when ``gateway_workers`` is set, so the
device connections are spread over several processes, each under its own descriptor limit and on
its own core. It reads its configuration as one JSON line on stdin and keeps stdin open: end of
file means the main process is gone, and the worker stops as on SIGTERM (stop accepting, finish
in-flight frames, flush the writer). It reports on stdout, one JSON object per line: its state
every ``status_interval_s`` (the first one, with ``ready``, once its listeners are bound) and the
devices that got new positions (``wake``), so the main process's processing runner starts on them
at once instead of at its next poll. Everything durable goes through the database: identities,
positions and the ``processing_dirty`` marks the runner works from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from gateway.ingest import Ingest
from gateway.limits import raise_fd_limit
from gateway.privacy_cache import OffHoursPolicy
from gateway.service import Gateway
from protocols.registry import PROTOCOLS
from storage import db
from storage.devices import DeviceDirectory, DeviceStore
from storage.errors import StorageUnavailable
from storage.spool import Spool
from storage.writer import PositionWriter

log = logging.getLogger("fieldtrack.gateway.worker")


@dataclass(frozen=True)
class WorkerConfig:
    index: int
    database_url: str
    spool_dir: str
    ports: dict[str, int]
    host: str = "0.0.0.0"
    idle_timeout_s: float = 1800.0
    max_errors: int = 5
    register_unknown: bool = False
    api_port: int = 8000
    batch_max_rows: int = 5000
    linger_s: float = 0.005
    queue_rows: int = 100_000
    pool_size: int = 3
    log_level: str = "INFO"
    status_interval_s: float = 1.0
    # A device changed through the API (disabled, deleted, new identifier) is seen here within this.
    directory_refresh_s: float = 30.0
    protocols: list[str] = field(default_factory=lambda: sorted(PROTOCOLS))

    def to_line(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @staticmethod
    def from_line(line: bytes) -> WorkerConfig:
        return WorkerConfig(**json.loads(line))


class _Reporter:
    """Writes the status and wake lines; wakes are batched to one line per ``wake_interval_s``."""

    def __init__(self, out: TextIO, wake_interval_s: float = 0.05) -> None:
        self.out = out
        self.wake_interval_s = wake_interval_s
        self._pending: set[int] = set()
        self._scheduled = False

    def send(self, message: dict[str, Any]) -> None:
        # A few hundred bytes into a pipe the main process reads continuously: does not block.
        if self.out.closed:
            return
        try:
            self.out.write(json.dumps(message, separators=(",", ":")) + "\n")
            self.out.flush()
        except OSError:
            # The main process is gone; the stdin watch is stopping this worker.
            with contextlib.suppress(OSError):
                self.out.close()

    def wake(self, device_ids: list[int]) -> None:
        self._pending.update(device_ids)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self.wake_interval_s, self._flush_wake)

    def _flush_wake(self) -> None:
        self._scheduled = False
        if self._pending:
            ids, self._pending = sorted(self._pending), set()
            self.send({"wake": ids})


class _SpoolCount:
    """Rows waiting in the spool, recounted at most every ``every_s``: counting reads every
    segment, and during a long outage the spool can hold millions of rows."""

    def __init__(self, spool: Spool, every_s: float = 30.0) -> None:
        self.spool = spool
        self.every_s = every_s
        self._rows = 0
        self._at = float("-inf")

    def rows(self) -> int:
        if self.spool.is_empty():
            self._rows, self._at = 0, float("-inf")
        elif time.monotonic() - self._at >= self.every_s:
            self._rows, self._at = self.spool.row_count(), time.monotonic()
        return self._rows


def _status(cfg: WorkerConfig, gateway: Gateway, writer: PositionWriter, pending: _SpoolCount,
            ready: bool) -> dict[str, Any]:
    stats = writer.stats
    return {
        "status": {
            "index": cfg.index,
            "pid": os.getpid(),
            "ready": ready,
            "listeners": gateway.status(),
            "committed": stats.committed,
            "duplicates": stats.duplicates,
            "batches": stats.batches,
            "spooled": stats.spooled,
            "spool_pending_rows": pending.rows(),
            "db_up": stats.db_up,
            "refused_unknown": gateway.ingest.refused,
            "dropped_off_hours": gateway.ingest.dropped_off_hours,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    }


async def _open_directory(directory: DeviceDirectory, stop: asyncio.Event) -> bool:
    """Load the device directory, retrying while the database is away; False if told to stop."""
    delay = 1.0
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            # Raced against the stop: a connection attempt to a database that is away can take
            # the pool's whole timeout, and SIGTERM must not wait for it.
            load = asyncio.ensure_future(directory.load())
            await asyncio.wait({load, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not load.done():
                load.cancel()
                await asyncio.gather(load, return_exceptions=True)
                return False
            try:
                load.result()
                return True
            except StorageUnavailable as exc:
                log.error("database not reachable (%s); retrying in %.0f s", exc, delay)
            await asyncio.wait({stopped}, timeout=delay)
            delay = min(delay * 2, 30.0)
        return False
    finally:
        stopped.cancel()


async def _refresh_directory(directory: DeviceDirectory, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await directory.load()
        except StorageUnavailable as exc:
            log.warning("device directory not refreshed (%s); keeping the last one", exc)


async def _report(cfg: WorkerConfig, reporter: _Reporter, gateway: Gateway, writer: PositionWriter,
                  pending: _SpoolCount) -> None:
    while True:
        await asyncio.sleep(cfg.status_interval_s)
        reporter.send(_status(cfg, gateway, writer, pending, True))


def _watch_parent(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Stop when stdin reaches end of file: the main process closed it or died."""
    def wait() -> None:
        # os.read, not sys.stdin: a daemon thread blocked in a buffered read aborts the
        # interpreter's shutdown ("could not acquire lock").
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        with contextlib.suppress(RuntimeError):  # the loop may be closed already
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait, name="parent-watch", daemon=True).start()


async def serve(cfg: WorkerConfig, out: TextIO) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    _watch_parent(loop, stop)
    reporter = _Reporter(out)
    pool = db.open_pool(cfg.database_url, cfg.pool_size)
    await pool.open(wait=False)
    store = DeviceStore(pool)
    directory = DeviceDirectory(store)
    writer = PositionWriter(pool, Spool(Path(cfg.spool_dir)), batch_max_rows=cfg.batch_max_rows,
                            linger_s=cfg.linger_s, queue_rows=cfg.queue_rows)
    writer.on_new_positions = reporter.wake
    pending = _SpoolCount(writer.spool)
    ingest = Ingest(directory, store, writer, register_unknown=cfg.register_unknown,
                    api_hint=f"http://<server>:{cfg.api_port}", off_hours=OffHoursPolicy(pool))
    protocols = [PROTOCOLS[name] for name in cfg.protocols if name in PROTOCOLS]
    gateway = Gateway(protocols, cfg.ports, ingest, host=cfg.host, idle_timeout_s=cfg.idle_timeout_s,
                      max_errors=cfg.max_errors, transports=frozenset({"tcp"}), reuse_port=True)
    # Bound first: a port this worker cannot share fails the start at once, whatever the
    # database is doing; devices are accepted only once the directory is loaded.
    try:
        await gateway.start(accept=False)
    except OSError:
        await gateway.stop_accepting()
        await pool.close()
        raise
    if not await _open_directory(directory, stop):
        await gateway.stop_accepting()
        await pool.close()
        return
    writer_task = asyncio.create_task(writer.run(), name="writer")
    helpers = [asyncio.create_task(writer.drain_spool(), name="spool-drain"),
               asyncio.create_task(_refresh_directory(directory, cfg.directory_refresh_s), name="refresh")]
    await gateway.accept()
    reporter.send(_status(cfg, gateway, writer, pending, True))
    helpers.append(asyncio.create_task(_report(cfg, reporter, gateway, writer, pending), name="report"))
    await stop.wait()
    log.info("worker %d stopping", cfg.index)
    await gateway.stop_accepting()
    await gateway.close()
    await writer.close()
    await writer_task
    for task in helpers:
        task.cancel()
    await asyncio.gather(*helpers, return_exceptions=True)
    if ingest.off_hours is not None:
        await ingest.off_hours.close()
    reporter.send(_status(cfg, gateway, writer, pending, False))
    await pool.close()


def main() -> None:
    cfg = WorkerConfig.from_line(sys.stdin.buffer.readline())
    logging.basicConfig(level=cfg.log_level, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s %(name)s[worker {cfg.index}]: %(message)s")
    # Ctrl-C reaches the whole process group; the main process stops the workers in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_fd_limit()
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    # Nothing else may write to the status pipe.
    sys.stdout = sys.stderr
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve(cfg, out))


if __name__ == "__main__":
    main()
