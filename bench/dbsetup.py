"""A scratch database for a benchmark run: the machine's PostgreSQL if reachable, else embedded."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from storage.embedded import EmbeddedPostgres

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
