"""Phones posting over HTTP, one request per fix, oldest first: Traccar Client / OsmAnd (a query
string to port 5055) and the OwnTracks app in HTTP mode (its JSON to Fieldtrack's API port at
``/owntracks``, the device named by the ``X-Limit-U`` / ``X-Limit-D`` headers).

The apps treat only 200 as "stored" and keep everything else in their buffer, retrying with
backoff: 403 (not registered), 503 (server cannot store now), a refused connection alike.
"""

from __future__ import annotations

import httpx

from protocols import osmand, owntracks
from simulators.device import AckError, Counters, FixSource, LinkSettings, SimDevice
from simulators.movement import Fix


class HttpDevice(SimDevice):
    name = "osmand"

    def __init__(self, unique_id: str, client: httpx.AsyncClient, url: str, source: FixSource,
                 counters: Counters, link: LinkSettings, seed: str) -> None:
        super().__init__(unique_id, source, counters, link, seed)
        self.client = client
        self.url = url.rstrip("/")

    def request(self, f: Fix) -> tuple[str, bytes | None, dict[str, str]]:
        """(URL, body, headers) of the request that reports ``f``."""
        query = osmand.encode_query(
            self.unique_id, f.time, f.lat, f.lon, speed_kmh=f.speed_kmh, course_deg=f.course_deg,
            altitude_m=f.altitude_m, accuracy_m=f.accuracy_m, battery_pct=80,
            extra={"mock": True} if f.mock else None,
        )
        return f"{self.url}/?{query}", None, {}

    async def link(self) -> None:
        while not self.finished():
            batch = self.unsent(1)
            if not batch:
                await self._wait(3600.0)
                continue
            url, body, headers = self.request(batch[0].fix)
            self.mark_sent(batch)
            try:
                response = await self.client.post(url, content=body, headers=headers,
                                                  timeout=self.settings.ack_timeout_s)
            except httpx.TimeoutException as exc:
                raise TimeoutError(str(exc)) from exc
            except httpx.HTTPError as exc:
                raise OSError(str(exc)) from exc
            if response.status_code != 200:
                raise AckError(f"{self.name}: HTTP {response.status_code} {response.text.strip()[:80]}")
            self.confirm_on_wire()
            self.backoff.reset()
            self.connected_once = True


class OwnTracksHttpDevice(HttpDevice):
    """The OwnTracks app in HTTP mode; ``unique_id`` is ``<user>/<device>`` as over MQTT."""

    name = "owntracks:http"

    def request(self, f: Fix) -> tuple[str, bytes | None, dict[str, str]]:
        user, _, device = self.unique_id.partition("/")
        body = owntracks.encode_location(f.time, f.lat, f.lon, accuracy_m=f.accuracy_m,
                                         altitude_m=f.altitude_m, speed_kmh=f.speed_kmh,
                                         course_deg=f.course_deg, battery_pct=80, tracker_id=device[-2:],
                                         trigger="t", mock=True if f.mock else None)
        headers = {"Content-Type": "application/json", "X-Limit-U": user, "X-Limit-D": device}
        return f"{self.url}/owntracks", body, headers
