"""Gateway worker processes (``gateway_workers`` > 0): started, watched, restarted and stopped
by the main process, which keeps the API, UDP, HTTP, MQTT and the processing runner.

Why processes: one process holds at most its descriptor limit of connections (a hard limit it
may not raise) and uses one core. Every worker binds each TCP device port with ``SO_REUSEPORT``,
so the kernel spreads new connections over them by address hash and a device keeps the port it
always used. Each worker writes through its own pool and its own spool folder
(``<spool>/worker-<k>``); a folder left by a worker that no longer exists (the count was lowered)
is drained by the main process (``drain_retired_spools``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from gateway.worker import WorkerConfig
from protocols.registry import PROTOCOLS
from storage.spool import Spool
from storage.writer import PositionWriter

log = logging.getLogger("fieldtrack.gateway.workers")

WORKER_SPOOL_PREFIX = "worker-"
_TOTALS = ("committed", "duplicates", "spooled", "spool_pending_rows", "refused_unknown", "dropped_off_hours")


@dataclass
class _Worker:
    index: int
    config: WorkerConfig
    process: asyncio.subprocess.Process | None = None
    status: dict[str, Any] | None = None
    # The last report of the last process, kept after it exits (its final counts, for the bench).
    last_status: dict[str, Any] | None = None
    restarts: int = 0
    started_at: float = 0.0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


def tcp_ports(ports: dict[str, int], protocols: list[str]) -> dict[str, int]:
    """The TCP device ports that are switched on, by protocol."""
    return {name: port for name, port in ports.items()
            if port != 0 and name in protocols and name in PROTOCOLS and "tcp" in PROTOCOLS[name].transports}


class GatewayWorkers:
    def __init__(self, count: int, template: WorkerConfig, *,
                 on_wake: Callable[[list[int]], None] | None = None, start_timeout_s: float = 60.0,
                 stop_timeout_s: float = 60.0) -> None:
        """``template``: every worker's settings; ``spool_dir`` is the parent of their folders."""
        if count < 1:
            raise ValueError("gateway workers: at least one")
        if not hasattr(socket, "SO_REUSEPORT"):
            raise RuntimeError("gateway workers need SO_REUSEPORT, which this system lacks")
        self.count = count
        self.template = template
        self.on_wake = on_wake
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.ports = tcp_ports(template.ports, template.protocols)
        self.workers: list[_Worker] = []
        self._stopping = False
        self._started = False

    def _reserve_ephemeral(self) -> list[socket.socket]:
        """Pick a port for each listener asked for with a negative port (any free one), held by a
        bound socket until the workers have bound it too."""
        held: list[socket.socket] = []
        for name, port in self.ports.items():
            if port > 0:
                continue
            family, kind, proto, _, addr = socket.getaddrinfo(
                self.template.host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(addr)
            held.append(sock)
            self.ports[name] = sock.getsockname()[1]
        return held

    async def start(self) -> None:
        held = self._reserve_ephemeral()
        try:
            ports = {**self.template.ports, **self.ports}
            base = Path(self.template.spool_dir)
            for k in range(1, self.count + 1):
                config = replace(self.template, index=k, ports=ports, protocols=sorted(self.ports),
                                 spool_dir=str(base / f"{WORKER_SPOOL_PREFIX}{k}"))
                worker = _Worker(k, config)
                self.workers.append(worker)
                await self._spawn(worker)
            for worker in self.workers:
                await self._wait_ready(worker)
            self._started = True
        except BaseException:
            await self.stop()
            raise
        finally:
            for sock in held:
                sock.close()
        log.info("%d gateway worker processes on tcp %s", self.count,
                 ", ".join(f"{n} {p}" for n, p in sorted(self.ports.items())))

    async def _spawn(self, worker: _Worker) -> None:
        worker.ready.clear()
        worker.status = None
        worker.started_at = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**22)
        assert proc.stdin is not None
        proc.stdin.write(worker.config.to_line())
        await proc.stdin.drain()
        worker.process = proc
        worker.task = asyncio.create_task(self._watch(worker, proc), name=f"gateway-worker-{worker.index}")

    async def _wait_ready(self, worker: _Worker) -> None:
        ready = asyncio.create_task(worker.ready.wait())
        assert worker.process is not None
        exited = asyncio.create_task(worker.process.wait())
        done, _ = await asyncio.wait({ready, exited}, timeout=self.start_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        exited.cancel()
        if ready in done and worker.ready.is_set():
            return
        if exited in done:
            raise RuntimeError(f"gateway worker {worker.index} failed to start "
                               f"(exit code {worker.process.returncode}; its log is above)")
        raise RuntimeError(f"gateway worker {worker.index} not ready after {self.start_timeout_s:.0f} s")

    async def _watch(self, worker: _Worker, proc: asyncio.subprocess.Process) -> None:
        """Read the worker's reports until it exits; restart it unless we are stopping."""
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                message = json.loads(line)
            except ValueError:
                log.warning("gateway worker %d wrote an unreadable line: %r", worker.index, line[:200])
                continue
            if "wake" in message and self.on_wake is not None:
                self.on_wake([int(d) for d in message["wake"]])
            elif "status" in message:
                worker.status = worker.last_status = message["status"]
                if worker.status.get("ready"):
                    worker.ready.set()
        code = await proc.wait()
        worker.status = None
        if self._stopping or not self._started:
            return  # while starting, start() reports the failure
        # A crash loses no acknowledged position (each was committed or spooled first); restart.
        ran_s = time.monotonic() - worker.started_at
        delay = 1.0 if ran_s > 60 else min(30.0, 2.0 ** min(worker.restarts, 5))
        worker.restarts += 1
        log.error("gateway worker %d (pid %d) exited with code %s; restarting in %.0f s",
                  worker.index, proc.pid, code, delay)
        while not self._stopping:
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self._spawn(worker)
                return
            except OSError as exc:  # no process could be made (out of memory, of pids)
                delay = 30.0
                log.error("gateway worker %d not restarted (%s); trying again in %.0f s",
                          worker.index, exc, delay)

    async def stop(self) -> None:
        """SIGTERM every worker (each finishes its in-flight frames and flushes), then wait."""
        self._stopping = True
        running = [w.process for w in self.workers if w.process is not None and w.process.returncode is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in running:
            try:
                await asyncio.wait_for(proc.wait(), self.stop_timeout_s)
            except TimeoutError:
                log.error("gateway worker pid %d did not stop in %.0f s; killing it", proc.pid,
                          self.stop_timeout_s)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        tasks = [w.task for w in self.workers if w.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def status(self) -> list[dict[str, Any]]:
        """The TCP listeners, one row per protocol as in the single-process gateway: up when every
        worker serves it, connections summed over the workers."""
        rows = []
        for name, port in sorted(self.ports.items()):
            mine = [row for w in self.workers for row in (w.status or {}).get("listeners", [])
                    if row["protocol"] == name and row["transport"] == "tcp"]
            rows.append({"protocol": name, "transport": "tcp", "port": port,
                         "up": len(mine) == self.count and all(r["up"] for r in mine),
                         "connections": sum(r["connections"] for r in mine),
                         "peak_connections": sum(r.get("peak_connections", 0) for r in mine),
                         "workers": len(mine)})
        return rows

    def report(self) -> list[dict[str, Any]]:
        rows = []
        for w in self.workers:
            st = w.status or {}
            rows.append({"index": w.index, "pid": w.process.pid if w.process else None,
                         "up": bool(st.get("ready")), "restarts": w.restarts,
                         "connections": sum(r.get("connections", 0) for r in st.get("listeners", [])),
                         "db_up": st.get("db_up"), "rss_mb": st.get("rss_mb"),
                         **{k: st.get(k, 0) for k in _TOTALS}})
        return rows

    def totals(self) -> dict[str, int]:
        return {k: sum(int((w.status or {}).get(k, 0)) for w in self.workers) for k in _TOTALS}


def retired_spools(spool_dir: Path, count: int) -> list[Path]:
    """Spool folders of workers beyond ``count`` (none of them runs, so nobody appends there)."""
    if not spool_dir.is_dir():
        return []
    found = []
    for path in spool_dir.iterdir():
        suffix = path.name.removeprefix(WORKER_SPOOL_PREFIX)
        if path.is_dir() and suffix != path.name and suffix.isdigit() and int(suffix) > count:
            found.append(path)
    return sorted(found)


async def drain_retired_spools(pool: AsyncConnectionPool, spool_dir: Path, count: int, *,
                               on_new_positions: Callable[[list[int]], None] | None = None,
                               retry_s: float = 5.0) -> None:
    """Move what retired workers spooled into the database, retrying until it is all there."""
    for folder in retired_spools(spool_dir, count):
        writer = PositionWriter(pool, Spool(folder))
        writer.on_new_positions = on_new_positions
        while True:
            try:
                moved = await writer.drain_spool_once()
            except Exception as exc:  # the database is away: the rows stay on disk, try again
                log.warning("spool of retired %s not drained yet (%s)", folder.name, exc)
                await asyncio.sleep(retry_s)
                continue
            if moved:
                log.info("drained %d positions spooled by retired gateway %s", moved, folder.name)
            with contextlib.suppress(OSError):
                folder.rmdir()
            break
