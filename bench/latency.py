"""A TCP proxy that adds network latency, for benchmarking against a database on another host.

Loopback answers in microseconds; a managed PostgreSQL in the same region answers in 0.3-1 ms.
Each chunk read from one side is written to the other ``one_way_s`` later (order kept, no
bandwidth limit), so a round trip costs ``2 * one_way_s`` more, plus the proxy's own overhead:
``measured_rtt_ms`` tells what a round trip really costs through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, one_way_s: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((time.monotonic() + one_way_s, data))
    except ConnectionError:
        pass
    queue.put_nowait((0.0, b""))
    with contextlib.suppress(ConnectionError):
        await sender


async def _serve(host: str, port: int, one_way_s: float) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(host, port)
        await asyncio.gather(_pipe(client_r, server_w, one_way_s), _pipe(server_r, client_w, one_way_s),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def delayed(url: str, rtt_ms: float) -> Iterator[str]:
    """``url`` (a TCP PostgreSQL URL or conninfo) reached through a proxy adding ``rtt_ms`` per
    round trip; yields the URL to connect to instead. The proxy is a process of its own: as a
    thread it would wait for the benchmark's GIL and add milliseconds of its own."""
    params = conninfo_to_dict(url)
    host, port = str(params.get("host") or "127.0.0.1"), str(params.get("port") or 5432)
    if host.startswith("/"):
        raise ValueError("the latency proxy needs a TCP database URL, not a Unix socket")
    proc = subprocess.Popen([sys.executable, "-m", "bench.latency", host, port, str(rtt_ms)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield make_conninfo(url, host="127.0.0.1", port=proc.stdout.readline().strip())
    finally:
        proc.terminate()
        proc.wait(10)


def measured_rtt_ms(url: str, queries: int = 200) -> float:
    """The time of one ``SELECT 1`` through ``url``, in ms: what a round trip really costs."""
    with psycopg.connect(url) as conn:
        for _ in range(20):
            conn.execute("SELECT 1")
        t = time.perf_counter()
        for _ in range(queries):
            conn.execute("SELECT 1")
        return (time.perf_counter() - t) / queries * 1000


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 2000.0))
