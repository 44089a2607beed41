"""A phone running Traccar Client / OsmAnd: one HTTP request per fix to port 5055, oldest first.

The app treats only 200 as "stored" and keeps everything else in its buffer, retrying with backoff:
403 (not registered), 503 (server cannot store now), a refused connection alike.
"""

from __future__ import annotations

import httpx

from protocols import osmand
from simulators.device import AckError, Counters, FixSource, LinkSettings, SimDevice


class HttpDevice(SimDevice):
    def __init__(self, unique_id: str, client: httpx.AsyncClient, url: str, source: FixSource,
                 counters: Counters, link: LinkSettings, seed: str) -> None:
        super().__init__(unique_id, source, counters, link, seed)
        self.client = client
        self.url = url.rstrip("/")

    async def link(self) -> None:
        while not self.finished():
            batch = self.unsent(1)
            if not batch:
                await self._wait(3600.0)
                continue
            f = batch[0].fix
            query = osmand.encode_query(
                self.unique_id, f.time, f.lat, f.lon, speed_kmh=f.speed_kmh, course_deg=f.course_deg,
                altitude_m=f.altitude_m, accuracy_m=f.accuracy_m, battery_pct=80,
                extra={"mock": True} if f.mock else None,
            )
            self.mark_sent(batch)
            try:
                response = await self.client.post(f"{self.url}/?{query}",
                                                  timeout=self.settings.ack_timeout_s)
            except httpx.TimeoutException as exc:
                raise TimeoutError(str(exc)) from exc
            except httpx.HTTPError as exc:
                raise OSError(str(exc)) from exc
            if response.status_code != 200:
                raise AckError(f"osmand: HTTP {response.status_code} {response.text.strip()[:80]}")
            self.confirm_on_wire()
            self.backoff.reset()
            self.connected_once = True
