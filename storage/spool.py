"""A local on-disk spool for positions the database could not take.

A batch is appended to a segment file and fsynced before the writer reports it durable, so an
ack sent for a spooled position survives ``kill -9``. The drainer hands segments back oldest
first and removes a segment only after its rows are committed; a crash in between replays the
segment, which the positions primary key turns into a no-op.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from storage.rows import StoredPosition

_SUFFIX = ".jsonl"


class Spool:
    def __init__(self, directory: Path, segment_rows: int = 50_000) -> None:
        self.directory = directory
        self.segment_rows = segment_rows
        directory.mkdir(parents=True, exist_ok=True)
        self._current: Path | None = None
        self._current_rows = 0
        # Appends run in a worker thread; the lock keeps the drainer off a half-written segment.
        self._lock = threading.Lock()

    def _segments(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.name.endswith(_SUFFIX))

    def _next_name(self) -> Path:
        existing = self._segments()
        last = int(existing[-1].name.removesuffix(_SUFFIX)) if existing else 0
        return self.directory / f"{last + 1:012d}{_SUFFIX}"

    def append(self, rows: list[StoredPosition]) -> None:
        """Durably append rows (returns after fsync)."""
        with self._lock:
            self._append_locked(rows)

    def _append_locked(self, rows: list[StoredPosition]) -> None:
        if self._current is None or self._current_rows >= self.segment_rows or not self._current.exists():
            self._current = self._next_name()
            self._current_rows = 0
            created = True
        else:
            created = False
        data = "".join(json.dumps(r.to_json(), separators=(",", ":")) + "\n" for r in rows).encode()
        fd = os.open(self._current, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            # The new directory entry must be durable too, or the file can vanish after a crash.
            dfd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        self._current_rows += len(rows)

    def sealed_segments(self) -> list[Path]:
        """Close the current segment and list every complete one, oldest first."""
        with self._lock:
            self._current = None
            return self._segments()

    def is_empty(self) -> bool:
        return not self._segments()

    @staticmethod
    def read_all(segment: Path) -> list[StoredPosition]:
        return list(Spool.read(segment))

    @staticmethod
    def read(segment: Path) -> Iterator[StoredPosition]:
        with segment.open("rb") as fh:
            for line in fh:
                try:
                    doc = json.loads(line)
                except ValueError:
                    # A torn last line from a crash mid-write: it was never fsynced, never acked.
                    continue
                yield StoredPosition.from_json(doc)

    def remove(self, segment: Path) -> None:
        with self._lock:
            if segment == self._current:
                self._current = None
            segment.unlink(missing_ok=True)

    def row_count(self) -> int:
        total = 0
        for seg in self._segments():
            with seg.open("rb") as fh:
                total += sum(1 for _ in fh)
        return total
