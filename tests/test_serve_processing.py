"""``fieldtrack serve`` end to end for the processors: a phone drives through a geofence over
OsmAnd, the server is killed mid-trip and restarted, the phone parks. The trip, the geofence
events, the status and a signed webhook all come out, and the restart did not split the trip."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from tests.ports import free_port
from tests.serverproc import ServerProcess

T = 1_764_000_000
LAT0, LON0 = 52.0, 4.0
STEP_DEG = 15 / 111_195  # 15 m north per second: 54 km/h


class Receiver:
    """A real HTTP endpoint for webhooks, recording what arrives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def send(server: ServerProcess, second: int, north_m: float, speed_kmh: float) -> None:
    lat = LAT0 + north_m / 111_195
    assert server.osmand(f"id=rep-1&lat={lat:.7f}&lon={LON0}&timestamp={T + second}"
                         f"&speed={speed_kmh / 1.852:.3f}&accuracy=5") == 200


def until(check: Any, within_s: float = 30.0) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_drive_through_a_fence_with_a_restart_mid_trip(database_url: str, short_tmp: Path) -> None:
    receiver = Receiver()
    server = ServerProcess(short_tmp / "data", database_url)
    server.start()
    try:
        assert server.api("POST", "/api/devices", {"unique_id": "rep-1", "name": "Rep"})[0] == 201
        status, fence = server.api("POST", "/api/geofences", {
            "name": "Customer", "geometry": {"type": "Point", "coordinates": [LON0, LAT0 + 900 / 111_195]},
            "radius_m": 150})
        assert status == 201, fence
        status, hook = server.api("POST", "/api/webhooks", {
            "url": f"http://127.0.0.1:{receiver.port}/hook", "event_types": ["geofenceEnter"]})
        assert status == 201, hook
        for second in range(0, 60):  # 900 m north at 54 km/h: into the fence
            send(server, second, second * 15, 54)
        until(lambda: server.api("GET", "/api/status")[1][0]["status"] == "moving")
        server.kill()  # mid-trip, without a chance to save anything more
    except BaseException:
        print(server.log.read_text())
        raise
    server.start()
    try:
        for second in range(60, 120):  # on through the fence, 1.8 km in all
            send(server, second, second * 15, 54)
        for second in range(120, 120 + 400, 10):  # parked 400 s: the trip ends
            send(server, second, 1800, 0)
        with psycopg.connect(database_url) as conn:
            trips = until(lambda: conn.execute(
                "SELECT start_time, end_time, distance_m FROM trips").fetchall())
        assert len(trips) == 1, "the restart must not split the trip"
        assert 1750 < trips[0][2] < 1850
        assert T <= trips[0][0].timestamp() <= T + 1  # the device's very first fix has no motion yet
        events = server.api("GET", "/api/events?from=2025-11-20T00:00:00Z&to=2025-11-30T00:00:00Z")[1]
        kinds = [e["type"] for e in events["items"]]
        assert kinds.count("geofenceEnter") == 1 and kinds.count("geofenceExit") == 1, kinds
        # The trip can be stored before the last parked fixes are processed (no mark yet).
        status_now = until(lambda: (st := server.api("GET", "/api/status")[1][0])["odometer_km"] is not None
                           and st)
        assert status_now["status"] == "stopped" and 1.75 < status_now["odometer_km"] < 1.85
        until(lambda: receiver.received)
        headers, body = receiver.received[0]
        stamp = headers["X-Fieldtrack-Timestamp"]
        expected = hmac.new(hook["secret"].encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        assert headers["X-Fieldtrack-Signature"] == f"sha256={expected}"
        assert json.loads(body)["event"]["type"] == "geofenceEnter"
        assert len(receiver.received) == 1  # the exit is not subscribed; the enter once
    except BaseException:
        print(server.log.read_text())
        raise
    finally:
        assert server.terminate() == 0
        receiver.server.shutdown()
