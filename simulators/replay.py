"""Replay of recorded tracks and captures: NMEA logs, GPX and CSV tracks become fixes sent by one
simulated device through a protocol's encoder; hex captures are sent as they are.

Time: the recording's pace is kept, divided by ``speed``. By default fix times are moved so the
replay ends at the wall clock (the first fix at "now" when ``speed`` is 1); ``keep_times`` sends
the recorded times instead (a server may then treat them as old, late data).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gzip
import io
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from protocols import nmea
from protocols.model import Position, Session
from simulators.movement import Fix

FORMATS = ("nmea", "gpx", "csv", "hex")
_EARTH_RADIUS_M = 6_371_008.8


def format_of(path: Path) -> str:
    """The format a file name suggests (a ``.gz`` suffix is looked through)."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    last = suffixes[-1] if suffixes else ""
    if last == ".gpx":
        return "gpx"
    if last == ".csv":
        return "csv"
    if last in (".hex", ".cap"):
        return "hex"
    return "nmea"  # .nmea, .log, .txt: receivers' logs


def read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


# --- readers: recordings -> positions ----------------------------------------------------------


def read_nmea(data: bytes) -> list[Position]:
    """One position per epoch, through our own NMEA decoder (sentences with a bad checksum and
    lines that are not NMEA are skipped, as the server would).

    Each positional sentence of an epoch gives a position carrying what the epoch told so far, so
    the epoch's last one is the most complete; the decoder's own "epoch" mode would hold back the
    file's last epoch, waiting for a next one that never comes."""
    session = Session(unique_id="replay")
    out: list[Position] = []
    # Line by line: a sentence never spans lines, and cutting one big buffer again and again
    # would copy the rest of the log for every sentence.
    for line in data.splitlines(keepends=True):
        buffer = line if line.endswith(b"\n") else line + b"\r\n"
        while buffer:
            frame, used = nmea.next_frame(buffer)
            if used == 0:
                break
            buffer = buffer[used:]
            if frame is None:
                continue
            try:
                out.extend(nmea.decode(frame, session).positions)
            except ValueError:
                continue
    last_of_epoch = {p.fix_time: p for p in out if p.latitude is not None and p.longitude is not None}
    return [p for p in last_of_epoch.values() if p.valid]


def read_gpx(data: bytes) -> list[Position]:
    """Track points (``trkpt``, else route points) with ``time``; ``ele`` and GPX 1.0 ``speed``
    (m/s) and ``course`` when present."""
    root = ET.fromstring(data)

    def local(tag: str) -> str:
        return tag.rpartition("}")[2]

    points = [e for e in root.iter() if local(e.tag) == "trkpt"] or [e for e in root.iter()
                                                                      if local(e.tag) == "rtept"]
    out = []
    for point in points:
        children = {local(c.tag): (c.text or "").strip() for c in point}
        if not children.get("time"):
            continue
        p = Position(fix_time=_parse_time(children["time"]), latitude=float(point.attrib["lat"]),
                     longitude=float(point.attrib["lon"]))
        if children.get("ele"):
            p.altitude_m = float(children["ele"])
        if children.get("speed"):
            p.speed_kmh = float(children["speed"]) * 3.6
        if children.get("course"):
            p.course_deg = float(children["course"])
        out.append(p)
    return out


_CSV_COLUMNS = {
    "lat": ("lat", "latitude"),
    "lon": ("lon", "lng", "long", "longitude"),
    "time": ("time", "timestamp", "fix_time", "datetime", "date_time"),
    "speed": ("speed_kmh", "speed"),
    "course": ("course_deg", "course", "bearing", "heading"),
    "altitude": ("altitude_m", "altitude", "ele", "elevation"),
}


def read_csv(data: bytes) -> list[Position]:
    """A header row naming lat/lon/time columns (common spellings accepted); speed in km/h."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    names = {name.strip().lower(): name for name in reader.fieldnames or []}
    column = {key: next((names[a] for a in aliases if a in names), None)
              for key, aliases in _CSV_COLUMNS.items()}
    missing = [k for k in ("lat", "lon", "time") if column[k] is None]
    if missing:
        raise ValueError(f"CSV needs columns for {', '.join(missing)} (header: {reader.fieldnames})")
    out = []
    for row in reader:
        def value(key: str, row: dict[str, str] = row) -> str:
            name = column[key]
            return (row.get(name) or "").strip() if name else ""

        p = Position(fix_time=_parse_time(value("time")), latitude=float(value("lat")),
                     longitude=float(value("lon")))
        for key, attr in (("speed", "speed_kmh"), ("course", "course_deg"), ("altitude", "altitude_m")):
            if value(key):
                setattr(p, attr, float(value(key)))
        out.append(p)
    return sorted(out, key=lambda p: p.fix_time)


def _parse_iso(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _parse_time(text: str) -> datetime:
    """ISO 8601 (no zone = UTC) or unix seconds / milliseconds."""
    try:
        stamp = float(text)
    except ValueError:
        return _parse_iso(text)
    return datetime.fromtimestamp(stamp / 1000 if stamp >= 2**31 else stamp, UTC)


@dataclass(frozen=True, slots=True)
class Capture:
    """One captured frame; ``at`` is None when the capture has no times."""

    at: datetime | None
    data: bytes


def read_hex(data: bytes) -> list[Capture]:
    """One frame per line: ``HEX`` or ``TIME HEX`` (``#`` starts a comment; the hex may have spaces).
    A bare number in front of the hex would be ambiguous, so times are ISO 8601 here."""
    out = []
    for line in data.decode("ascii", "replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        head, _, rest = line.partition(" ")
        try:
            at: datetime | None = _parse_iso(head) if rest else None
        except ValueError:
            at = None  # spaces inside the hex, not a time in front of it
        digits = rest if at is not None else line
        out.append(Capture(at, bytes.fromhex(digits.replace(" ", ""))))
    return out


def read_positions(path: Path, fmt: str | None = None) -> list[Position]:
    fmt = fmt or format_of(path)
    readers = {"nmea": read_nmea, "gpx": read_gpx, "csv": read_csv}
    if fmt not in readers:
        raise ValueError(f"{fmt} files are replayed frame by frame, not as positions")
    return readers[fmt](read_bytes(path))


# --- positions -> fixes on a timeline ----------------------------------------------------------


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360


def to_fixes(positions: Iterable[Position]) -> list[Fix]:
    """Fixes in time order; speed and course the recording lacks come from the previous point."""
    ordered = sorted((p for p in positions if p.latitude is not None and p.longitude is not None),
                     key=lambda p: p.fix_time)
    out: list[Fix] = []
    prev: Position | None = None
    for p in ordered:
        assert p.latitude is not None and p.longitude is not None
        speed, course = p.speed_kmh, p.course_deg
        if prev is not None and prev.latitude is not None and prev.longitude is not None:
            seconds = (p.fix_time - prev.fix_time).total_seconds()
            if speed is None and seconds > 0:
                speed = haversine_m(prev.latitude, prev.longitude, p.latitude, p.longitude) / seconds * 3.6
            if course is None and (prev.latitude, prev.longitude) != (p.latitude, p.longitude):
                course = bearing_deg(prev.latitude, prev.longitude, p.latitude, p.longitude)
        out.append(Fix(p.fix_time, p.latitude, p.longitude, speed or 0.0, course or 0.0,
                       p.accuracy_m if p.accuracy_m is not None else 5.0, p.altitude_m or 0.0,
                       ignition=(speed or 0.0) > 3))
        prev = p
    return out


def shift_for(first: datetime, last: datetime, speed: float, now: datetime) -> timedelta:
    """How far to move recorded times so the replay never reports a fix from the future: the
    recording, played ``speed`` times faster from ``now``, ends with its last fix at the wall clock."""
    span = (last - first).total_seconds()
    start = now - timedelta(seconds=span * (1 - 1 / speed))
    return start - first


def timeline(fixes: list[Fix], speed: float, *, keep_times: bool = False,
             now: datetime | None = None) -> Iterator[tuple[float, Fix | None]]:
    """(wall seconds after the start, fix) for a device's source, at ``speed`` times the recording's pace."""
    if not fixes:
        return
    if speed <= 0:
        raise ValueError("speed must be positive")
    shift = timedelta(0) if keep_times else shift_for(fixes[0].time, fixes[-1].time, speed,
                                                       now or datetime.now(UTC))
    for f in fixes:
        due = (f.time - fixes[0].time).total_seconds() / speed
        yield (due, f if not shift else _moved(f, shift))


def _moved(f: Fix, shift: timedelta) -> Fix:
    return Fix(f.time + shift, f.lat, f.lon, f.speed_kmh, f.course_deg, f.accuracy_m, f.altitude_m,
               f.ignition, f.mock)


async def send_captures(host: str, port: int, captures: list[Capture], speed: float, *,
                        gap_s: float = 1.0, answer_wait_s: float = 2.0) -> tuple[int, int]:
    """Write captured frames in order on one TCP connection, at their recorded pace divided by
    ``speed`` (``gap_s`` apart when the capture has no times). The frames already name their
    device, so nothing is re-encoded; answers are read and counted, not checked (a capture does
    not say which answer each frame had). Returns (frames sent, bytes answered)."""
    reader, writer = await asyncio.open_connection(host, port)
    answered = 0

    async def drain_answers() -> None:
        nonlocal answered
        while data := await reader.read(65536):
            answered += len(data)

    reading = asyncio.create_task(drain_answers())
    try:
        loop = asyncio.get_running_loop()
        t0, first = loop.time(), next((c.at for c in captures if c.at is not None), None)
        for i, capture in enumerate(captures):
            if capture.at is not None and first is not None:
                due = (capture.at - first).total_seconds() / speed
            else:
                due = i * gap_s / speed
            await asyncio.sleep(max(0.0, t0 + due - loop.time()))
            writer.write(capture.data)
            await writer.drain()
        await asyncio.sleep(answer_wait_s)
    finally:
        reading.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return len(captures), answered
