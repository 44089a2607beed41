"""Our own storage exceptions: callers above this layer never see psycopg's."""

from __future__ import annotations


class StorageError(Exception):
    """A storage operation failed for a reason that retrying will not fix."""


class StorageUnavailable(StorageError):
    """The database cannot be reached now (connection refused, lost, pool timeout)."""


class Conflict(StorageError):
    """A unique key already exists (e.g. a device with this unique_id)."""


class NotFound(StorageError):
    """No row with that id."""
