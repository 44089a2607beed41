"""A TCP proxy in a background thread that a test can cut and restore, to make a real database
unreachable without touching the database server itself."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future

from tests.ports import free_port


class TcpProxy:
    """Listens on 127.0.0.1; forwards to ``host:port``, or to a Unix socket when ``host`` is a folder
    (the embedded PostgreSQL listens on a socket only)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def _call(self, coro: object) -> None:
        fut: Future[None] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        fut.result(timeout=10)

    def start(self) -> None:
        self._call(self._start())

    def cut(self) -> None:
        """Stop listening and drop every proxied connection (the database 'goes away')."""
        self._call(self._cut())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            host, port = self.target
            if host.startswith("/"):
                up_reader, up_writer = await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
            else:
                up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()
            self._writers.discard(writer)


def proxied(url: str) -> tuple[TcpProxy, str]:
    """A started proxy in front of the database of ``url`` and the URL that goes through it."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    host = str(params.get("host") or "127.0.0.1")
    port = int(params.get("port") or 5432)
    proxy = TcpProxy(host, port)
    proxy.start()
    return proxy, make_conninfo(url, host="127.0.0.1", port=str(proxy.port))
