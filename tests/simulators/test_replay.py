"""Replay inputs: NMEA logs, GPX and CSV tracks read into positions, hex captures into frames, and the
timeline that paces them without ever sending a fix from the future."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulators.replay import (
    format_of,
    read_csv,
    read_gpx,
    read_hex,
    read_positions,
    send_captures,
    timeline,
    to_fixes,
)

ROOT = Path(__file__).resolve().parents[2]
RENO = ROOT / "tests" / "data" / "nmea" / "nmeaparser__NmeaSampleData.nmea.gz"

GPX = b"""<?xml version="1.0"?>
<gpx version="1.0" xmlns="http://www.topografix.com/GPX/1/0"><trk><trkseg>
<trkpt lat="52.370000" lon="4.890000"><ele>2.5</ele><time>2026-11-02T09:00:00Z</time></trkpt>
<trkpt lat="52.370900" lon="4.890000"><time>2026-11-02T09:00:10Z</time><speed>10</speed></trkpt>
<trkpt lat="52.371800" lon="4.890000"><time>2026-11-02T09:00:20Z</time></trkpt>
<trkpt lat="52.000000" lon="4.000000"></trkpt>
</trkseg></trk></gpx>"""


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def test_the_reno_log_gives_one_position_per_epoch(tmp_path: Path) -> None:
    # The first 300 epochs of the log (all of it takes a while to parse), gzip kept.
    lines = gzip.decompress(RENO.read_bytes()).splitlines(keepends=True)
    epochs = [i for i, line in enumerate(lines) if line.startswith(b"$GPRMC")]
    part = tmp_path / "reno.nmea.gz"
    part.write_bytes(gzip.compress(b"".join(lines[: epochs[300]])))
    positions = read_positions(part)
    assert len(positions) == 300 == sum(b",A," in lines[i] for i in epochs[:300])  # every RMC is valid
    # The data README: fixes every 2 s from 2005-09-25 23:52:34 UTC.
    assert positions[0].fix_time == datetime(2005, 9, 25, 23, 52, 34, tzinfo=UTC)
    assert positions[-1].fix_time == positions[0].fix_time + timedelta(seconds=2 * 299)
    # The last epoch of each is the merged one: RMC's speed with GGA's altitude.
    assert positions[0].altitude_m == 1378.6 and positions[0].speed_kmh == pytest.approx(45.1 * 1.852)


def test_gpx_points_with_times_and_the_speed_the_file_lacks() -> None:
    positions = read_gpx(GPX)
    assert [(p.latitude, p.longitude) for p in positions] == [(52.37, 4.89), (52.3709, 4.89), (52.3718, 4.89)]
    assert positions[0].altitude_m == 2.5 and positions[1].speed_kmh == 36.0  # GPX 1.0 speed is m/s
    fixes = to_fixes(positions)
    # 0.0009 degree of latitude in 10 s: about 100 m, 36 km/h, heading north.
    expected = haversine(52.3709, 4.89, 52.3718, 4.89) / 10 * 3.6
    assert fixes[2].speed_kmh == pytest.approx(expected)
    assert fixes[2].course_deg == pytest.approx(0.0, abs=1e-6)
    assert fixes[1].speed_kmh == 36.0  # recorded values win


def test_csv_with_common_column_names_and_naive_utc_times() -> None:
    text = b"Latitude,Longitude,timestamp,speed\n52.1,4.2,2026-11-02 09:00:10,\n52.0,4.1,1793610000,12.5\n"
    positions = read_csv(text)
    assert [p.fix_time for p in positions] == [datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
                                               datetime(2026, 11, 2, 9, 0, 10, tzinfo=UTC)]
    assert positions[0].speed_kmh == 12.5 and positions[1].speed_kmh is None
    with pytest.raises(ValueError, match="time"):
        read_csv(b"lat,lon\n1,2\n")


def test_hex_capture_lines() -> None:
    captures = read_hex(b"# a GT06 login\n78780d01 0868000000000017 0001 8c37 0d0a\n"
                        b"2026-11-02T09:00:00Z 7878\n\n")
    assert captures[0].at is None and captures[0].data.startswith(b"\x78\x78\x0d\x01")
    assert captures[1].at == datetime(2026, 11, 2, 9, tzinfo=UTC) and captures[1].data == b"\x78\x78"


def test_formats_from_file_names() -> None:
    assert [format_of(Path(n)) for n in ("a.nmea.gz", "b.gpx", "c.CSV", "d.hex", "e.log")] == [
        "nmea", "gpx", "csv", "hex", "nmea"]


def test_timeline_keeps_the_pace_divided_by_speed_and_ends_now() -> None:
    positions = read_gpx(GPX)
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    steps = list(timeline(to_fixes(positions), speed=10, now=now))
    assert [due for due, _ in steps] == [0.0, 1.0, 2.0]  # 10 s apart recorded, 1 s apart at x10
    sent = [f.time for _, f in steps if f is not None]
    assert [(b - a) for a, b in itertools.pairwise(sent)] == [timedelta(seconds=10)] * 2
    # Each fix's time is not after the wall clock at the moment it is due (now + due).
    assert all(f is not None and f.time <= now + timedelta(seconds=due) for due, f in steps)
    assert sent[-1] == now + timedelta(seconds=2)
    kept = [f.time for _, f in timeline(to_fixes(positions), speed=10, keep_times=True) if f is not None]
    assert kept == [p.fix_time for p in positions]


async def test_hex_captures_are_written_as_they_are_and_answers_counted() -> None:
    got = bytearray()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            got.extend(data)
            writer.write(b"ok")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    captures = read_hex(b"2026-11-02T09:00:00Z 0102\n2026-11-02T09:00:01Z 0304\n2026-11-02T09:00:03Z 05\n")
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent, answered = await send_captures("127.0.0.1", port, captures, speed=10, answer_wait_s=0.2)
    # Recorded over 3 s, replayed 10 times faster: 0.3 s, plus the wait for answers.
    assert 0.3 <= loop.time() - started < 2.0
    server.close()
    assert sent == 3 and bytes(got) == bytes.fromhex("0102030405") and answered >= 2
