"""Rate-limited log lines, so one noisy device cannot flood the log."""

from __future__ import annotations

import logging
import time


class ThrottledLog:
    """At most ``burst`` lines per key per ``interval_s``; the next line says how many were dropped."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0, burst: int = 5) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.burst = burst
        self._windows: dict[str, tuple[float, int, int]] = {}

    def warning(self, key: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        start, sent, dropped = self._windows.get(key, (now, 0, 0))
        if now - start >= self.interval_s:
            start, sent = now, 0
        if sent < self.burst:
            if dropped:
                msg += f" ({dropped} similar lines suppressed)"
                dropped = 0
            self.logger.warning(msg, *args)
            sent += 1
        else:
            dropped += 1
        if len(self._windows) > 50_000:
            self._windows.clear()
        self._windows[key] = (start, sent, dropped)
