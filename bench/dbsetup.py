"""A scratch database for a benchmark run: the machine's PostgreSQL if reachable, else embedded."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from storage.embedded import EmbeddedPostgres
from storage.rows import COPY_TYPES

LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def scratch_database() -> Iterator[tuple[str, str]]:
    """Yields (url, where) of a new empty database, dropped afterwards."""
    server = os.environ.get("FIELDTRACK_BENCH_DATABASE_URL") or (LOCAL if _reachable(LOCAL) else None)
    embedded = None
    folder = None
    if server is None:
        folder = Path(tempfile.mkdtemp(prefix="ft-bench-"))
        embedded = EmbeddedPostgres(folder / "pgdata")
        server = embedded.start()
        where = "embedded PostgreSQL 18 (Unix socket)"
    else:
        with psycopg.connect(server) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        where = f"PostgreSQL {version[0] if version else '?'} at {server.split('@')[-1]}"
    name = f"ft_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield make_conninfo(server, dbname=name), where
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
        if embedded is not None:
            embedded.stop()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

_COPY_COLUMNS = ("device_id, fix_time, fingerprint, server_time, device_time, latitude, longitude, valid,"
                 " speed_kmh, course_deg, altitude_m, accuracy_m, hdop, protocol, attributes")


def raw_copy_seconds(url: str, rows: Sequence[tuple[object, ...]]) -> float:
    """The benchmarks' common baseline: seconds for one binary COPY of ``rows`` (``StoredPosition.row()``
    tuples) into a bare copy of the positions table, dropped afterwards."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE positions_baseline (LIKE positions INCLUDING ALL)")
        conn.execute("ALTER TABLE positions_baseline ALTER COLUMN attributes TYPE text")
        t = time.perf_counter()
        with conn.transaction(), conn.cursor().copy(
                f"COPY positions_baseline ({_COPY_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(COPY_TYPES))
            for r in rows:
                copy.write_row(r)
        elapsed = time.perf_counter() - t
        conn.execute("DROP TABLE positions_baseline")
    return elapsed
