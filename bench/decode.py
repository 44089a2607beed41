"""Decode benchmark: frames/s per protocol through the project's decoders, against a plain
``struct.unpack`` / ``str.split`` loop over the same frames measured in the same run.

    .venv/bin/python -m bench.decode --frames 20000 --repeat 3

Three sets of frames:

- generated: a track through four hemispheres encoded by the project's own encoders
  (``protocols/*.py encode_*``), cut by the protocol's framer as the gateway cuts a stream;
- Traccar: the real device frames of /work/shared/data/traccar/vectors.json (Apache-2.0), read at
  run time, never copied; every frame of a protocol (replayed per Traccar test in order), and the
  subset of the message type the baseline understands, decoder and baseline on the same frames;
- NMEA: a real 3 h car log (/work/shared/data/nmea, Apache-2.0), every line a frame.

The baselines are written per protocol family below. They are honest but bare: they cut out
latitude, longitude and fix time as numbers (seconds since the epoch) and nothing else: no
checksum, no validation, no attributes, no reply, no objects. The decoder does all of that, so
the ratio decoder / baseline is what the rest of the work costs. Each figure is the best of
``--repeat`` passes.
"""

from __future__ import annotations

import argparse
import calendar
import gzip
import json
import platform
import re
import struct
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from protocols import fieldtrack_json, gps103, gt06, h02, nmea, osmand, owntracks, teltonika, tk103
from protocols.base import Protocol
from protocols.model import DecodeError, Position, Session
from protocols.registry import PROTOCOLS

DATA = Path("/work/shared/data")
T0 = datetime(2026, 11, 2, 7, 30, tzinfo=UTC)
# Origins in the four hemispheres, so the baselines' sign handling is exercised and checked.
ORIGINS = ((52.37, 4.89), (-33.87, 151.21), (40.71, -74.01), (-22.91, -43.17))

Fix = tuple[float, float, float]  # latitude, longitude, seconds since the epoch
Baseline = Callable[[bytes], Fix | None]


# --- the baselines: split out lat/lon/time as numbers, nothing else -------------------------------


def _dm(text: str, hemisphere: str) -> float:
    """(D)DDMM.MMMM: devices drop leading zeros, so the degrees are what lies above the minutes."""
    raw = float(text)
    degrees = raw // 100
    value = degrees + (raw - degrees * 100) / 60
    return -value if hemisphere in ("S", "W") else value


def _stamp(ddmmyy: str, hhmmss: str) -> float:
    return calendar.timegm((2000 + int(ddmmyy[4:6]), int(ddmmyy[2:4]), int(ddmmyy[:2]),
                            int(hhmmss[:2]), int(hhmmss[2:4]), int(hhmmss[4:6])))


_GT06_GPS = struct.Struct(">6BxIIxH")


def base_gt06(frame: bytes) -> Fix:
    y, mo, d, h, mi, s, lat, lon, flags = _GT06_GPS.unpack_from(frame, 4)
    latitude = lat / 1_800_000 if flags & 0x400 else -lat / 1_800_000
    longitude = -lon / 1_800_000 if flags & 0x800 else lon / 1_800_000
    return latitude, longitude, calendar.timegm((2000 + y, mo, d, h, mi, s))


_AVL = struct.Struct(">QxiiHHBHBB")  # time ms, priority, lon, lat, altitude, angle, sats, speed, event, io


def base_teltonika(frame: bytes) -> Fix | None:
    """Codec 8 over TCP: walk every record (the I/O blocks have variable length), keep the first."""
    first: Fix | None = None
    pos = 10
    for _ in range(frame[9]):
        ms, lon, lat = _AVL.unpack_from(frame, pos)[:3]
        pos += _AVL.size
        for width in (1, 2, 4, 8):
            pos += 1 + frame[pos] * (1 + width)
        if first is None:
            first = (lat / 1e7, lon / 1e7, ms / 1000)
    return first


def base_h02(frame: bytes) -> Fix:
    f = frame.decode("ascii").split(",")
    return _dm(f[5], f[6]), _dm(f[7], f[8]), _stamp(f[11], f[3])


def base_gps103(frame: bytes) -> Fix:
    f = frame.decode("ascii").split(",")
    d = f[2]
    return _dm(f[7], f[8]), _dm(f[9], f[10]), _stamp(d[4:6] + d[2:4] + d[:2], f[5])


def base_tk103(frame: bytes) -> Fix:
    """``BR00`` is fixed width: date, validity, DDMM.MMMM, hemisphere, DDDMM.MMMM, ..., time."""
    s = frame.decode("ascii")
    d = s[17:23]
    return _dm(s[24:33], s[33]), _dm(s[34:44], s[44]), _stamp(d[4:6] + d[2:4] + d[:2], s[50:56])


class NmeaBaseline:
    """RMC and GGA only (GGA has no date: the last RMC's is used, as a receiver's epoch does)."""

    def __init__(self) -> None:
        self.date = "010100"

    def __call__(self, frame: bytes) -> Fix | None:
        f = frame.decode("ascii").split(",")
        kind = f[0][3:]
        if kind == "RMC":
            self.date = f[9]
            return _dm(f[3], f[4]), _dm(f[5], f[6]), _stamp(f[9], f[1])
        if kind == "GGA":
            return _dm(f[2], f[3]), _dm(f[4], f[5]), _stamp(self.date, f[1])
        return None


def base_osmand(frame: bytes) -> Fix:
    q = dict(pair.split("=", 1) for pair in frame.decode("ascii").split("&"))
    return float(q["lat"]), float(q["lon"]), float(q["timestamp"])


def base_owntracks(frame: bytes) -> Fix:
    m = json.loads(frame)
    return m["lat"], m["lon"], m["tst"]


def base_json(frame: bytes) -> Fix:
    m = json.loads(frame)
    return m["lat"], m["lon"], datetime.fromisoformat(m["time"]).timestamp()


def base_meitrack(frame: bytes) -> Fix:
    f = frame.decode("latin-1").split(",")
    t = f[6]
    return float(f[4]), float(f[5]), _stamp(t[4:6] + t[2:4] + t[:2], t[6:12])


def base_watch(frame: bytes) -> Fix:
    f = frame.decode("latin-1").split(",")
    return (-float(f[4]) if f[5] == "S" else float(f[4]), -float(f[6]) if f[7] == "W" else float(f[6]),
            _stamp(f[1], f[2]))


def base_gl200(frame: bytes) -> Fix:
    """@Track text reports move their location by version and report: take the first 14-digit
    GPS time after the header; longitude and latitude are the two fields before it."""
    f = frame.decode("latin-1").split(",")
    k = 4
    while len(f[k]) != 14:
        k += 1
    t = f[k]
    return float(f[k - 1]), float(f[k - 2]), calendar.timegm(
        (int(t[:4]), int(t[4:6]), int(t[6:8]), int(t[8:10]), int(t[10:12]), int(t[12:14])))


def base_gpsgate(frame: bytes) -> Fix:
    f = frame.decode("latin-1").split(",")
    if f[0] == "$FRCMD":
        return _dm(f[4], f[5]), _dm(f[6], f[7]), _stamp(f[11], f[12])
    return _dm(f[3], f[4]), _dm(f[5], f[6]), _stamp(f[9], f[1])


# --- generated frames -----------------------------------------------------------------------------


def track(n: int) -> Iterator[tuple[int, datetime, float, float, float, float]]:
    """(index, time, lat, lon, speed km/h, course): four devices driving in turn, each frame its own
    second (the agreement check pairs decoder and baseline by fix time)."""
    for i in range(n):
        lat0, lon0 = ORIGINS[i % 4]
        step = i // 4
        yield i, T0 + timedelta(seconds=3 * i), lat0 + step * 1.3e-4, lon0 + step * 0.9e-4, \
            30.0 + step % 60, float(step * 7 % 360)


def cut(proto: Protocol, stream: bytes, segment: int = 8192) -> list[bytes]:
    """The frames the gateway's decode sees: the stream, arriving in segments as from a socket
    (cutting a whole log at once would copy its rest for every frame), cut by the protocol's framer."""
    frames: list[bytes] = []
    buffer = b""
    for start in range(0, len(stream), segment):
        buffer += stream[start:start + segment]
        while buffer:
            frame, used = proto.next_frame(buffer)
            if used == 0:
                break
            if frame is not None:
                frames.append(frame)
            buffer = buffer[used:]
    return frames


def generated(name: str, n: int) -> tuple[list[bytes], list[bytes]]:
    """(identification frames decoded first, untimed; report frames), from the encoders."""
    imei = "356307042441013"
    if name == "gt06":
        return [gt06.encode_login(imei, 1)], [gt06.encode_gps(t, la, lo, v, c, 2 + i % 60000)
                                              for i, t, la, lo, v, c in track(n)]
    if name == "h02":
        return [], [h02.encode_report("4210051415", t, la, lo, v, c) for _, t, la, lo, v, c in track(n)]
    if name == "tk103":
        return [], cut(tk103.PROTOCOL, b"".join(tk103.encode_report("013632782450", t, la, lo, v, c)
                                                for _, t, la, lo, v, c in track(n)))
    if name == "gps103":
        return cut(gps103.PROTOCOL, gps103.encode_login(imei)), cut(gps103.PROTOCOL, b"".join(
            gps103.encode_report(imei, t, la, lo, v, c) for _, t, la, lo, v, c in track(n)))
    if name == "teltonika":
        return cut(teltonika.PROTOCOL, teltonika.encode_imei(imei)), [teltonika.encode_avl(
            [teltonika.AvlRecord(t, la, lo, 12.0, c, v, io1=((239, 1), (240, 1)))])
            for _, t, la, lo, v, c in track(n)]
    if name == "nmea":
        # A receiver's epoch: RMC then GGA, so n frames are n / 2 fixes.
        epochs = (nmea.encode_rmc(t, la, lo, v, c) + nmea.encode_gga(t, la, lo, 4.0)
                  for _, t, la, lo, v, c in track(n // 2))
        return [nmea.encode_identity(imei)], cut(nmea.PROTOCOL, b"".join(epochs))
    if name == "osmand":
        return [], [osmand.encode_query("rep-7", t, la, lo, speed_kmh=v, course_deg=c, accuracy_m=8.0,
                                        battery_pct=80.0).encode() for _, t, la, lo, v, c in track(n)]
    if name == "owntracks":
        return [], [owntracks.encode_location(t, la, lo, accuracy_m=8, speed_kmh=v, course_deg=c,
                                              battery_pct=80, tracker_id="r7", trigger="p")
                    for _, t, la, lo, v, c in track(n)]
    if name == "json":
        return [], [fieldtrack_json.encode([Position(fix_time=t, latitude=la, longitude=lo, speed_kmh=v,
                                                     course_deg=c, accuracy_m=8.0)])
                    for _, t, la, lo, v, c in track(n)]
    raise ValueError(name)


GENERATED: dict[str, tuple[str, Callable[[], Baseline]]] = {
    # bench name -> (registry name, baseline factory: a fresh one per pass for stateful ones)
    "gt06": ("gt06", lambda: base_gt06),
    "h02": ("h02", lambda: base_h02),
    "tk103": ("tk103", lambda: base_tk103),
    "gps103": ("gps103", lambda: base_gps103),
    "teltonika": ("teltonika", lambda: base_teltonika),
    "nmea": ("nmea", NmeaBaseline),
    "osmand": ("osmand", lambda: base_osmand),
    "owntracks": ("owntracks", lambda: base_owntracks),
    "json": ("json", lambda: base_json),
}


# --- timing ---------------------------------------------------------------------------------------


def best_rate(frames: int, repeat: int, one_pass: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        one_pass()
        best = min(best, time.perf_counter() - t)
    return frames / best if best > 0 else float("inf")


def decode_all(proto: Protocol, frames: list[bytes], session: Session) -> list[Position]:
    positions: list[Position] = []
    for frame in frames:
        positions += proto.decode(frame, session).positions
    return positions


def baseline_all(base: Baseline, frames: list[bytes]) -> list[Fix | None]:
    return [base(frame) for frame in frames]


def agreement(positions: list[Position], fixes: list[Fix | None]) -> tuple[int, int]:
    """(agree, disagree): every decoded position against the baseline's fix of the same second."""
    by_second = {round(f[2]): f for f in fixes if f is not None}
    good = bad = 0
    for p in positions:
        f = by_second.get(round(p.fix_time.timestamp()))
        if f is not None and p.latitude is not None and p.longitude is not None \
                and abs(p.latitude - f[0]) < 1e-5 and abs(p.longitude - f[1]) < 1e-5:
            good += 1
        else:
            bad += 1
    return good, bad


def pairwise(firsts: list[list[Position]], fixes: list[Fix | None]) -> tuple[int, int]:
    """(agree, disagree): the decoder's first position of each frame against the baseline's fix."""
    good = 0
    for first, f in zip(firsts, fixes, strict=True):
        p = first[0] if first else None
        if p is not None and f is not None and p.latitude is not None and p.longitude is not None \
                and abs(p.latitude - f[0]) < 1e-5 and abs(p.longitude - f[1]) < 1e-5 \
                and abs(p.fix_time.timestamp() - f[2]) < 1:
            good += 1
    return good, len(fixes) - good


@dataclass
class Row:
    name: str
    frames: int
    decoder: float
    baseline: float | None
    note: str = ""
    check: tuple[int, int] | None = None

    def line(self) -> str:
        base = f"{self.baseline:>12,.0f}" if self.baseline else f"{'-':>12}"
        ratio = f"{self.decoder / self.baseline:>7.3f}" if self.baseline else f"{'-':>7}"
        check = f"  check {self.check[0]}/{self.check[0] + self.check[1]} agree" if self.check else ""
        rate = f"{self.decoder:>12,.0f}"
        return f"  {self.name:<26} {self.frames:>7,} {rate} {base} {ratio}  {self.note}{check}"


def run_generated(name: str, n: int, repeat: int) -> Row:
    registry_name, make_base = GENERATED[name]
    proto = PROTOCOLS[registry_name]
    hello, frames = generated(name, n)

    def fresh_session() -> Session:
        session = Session(transport="mqtt" if name in ("owntracks", "json") else "tcp",
                          unique_id="rep-7" if name in ("owntracks", "json") else None)
        for frame in hello:
            # The gateway binds the connection to the device a login names.
            session.unique_id = proto.decode(frame, session).unique_id or session.unique_id
        return session

    # The decoder's session lives across frames as a connection's does; one per pass.
    positions = decode_all(proto, frames, fresh_session())
    check = agreement(positions, baseline_all(make_base(), frames))
    sessions = iter([fresh_session() for _ in range(repeat)])
    decoder = best_rate(len(frames), repeat, lambda: decode_all(proto, frames, next(sessions)))
    baseline = best_rate(len(frames), repeat, lambda: baseline_all(make_base(), frames))
    return Row(name, len(frames), decoder, baseline, f"{len(positions):,} positions", check)


# --- real frames ----------------------------------------------------------------------------------

TRACCAR_NAME = {"t55": "nmea"}
_TK103_BR00 = re.compile(rb"\(\w{12}BR00\d{6}[AV]\d{4}\.\d{4}[NS]\d{5}\.\d{4}[EW]")
_WATCH_POSITION = {"UD", "UD2", "UD3", "AL", "UD_LTE", "AL_LTE", "UD_WCDMA", "AL_WCDMA"}


def _watch_kind(frame: bytes) -> str:
    return frame.split(b",", 1)[0].rsplit(b"*", 1)[-1].decode("latin-1")


# registry name -> (baseline, does this real frame have the layout the baseline reads)
REAL_BASELINES: dict[str, tuple[Baseline, Callable[[bytes], bool]]] = {
    "gt06": (base_gt06, lambda f: f[:2] == b"xx" and len(f) > 30 and f[3] in (0x12, 0x22)),
    "teltonika": (base_teltonika, lambda f: f[:4] == bytes(4) and len(f) > 12 and f[8] == 0x08),
    "h02": (base_h02, lambda f: f[:4] == b"*HQ," and f.split(b",")[2:3] == [b"V1"]),
    "gps103": (base_gps103, lambda f: b",tracker," in f and f.split(b",")[4:5] == [b"F"]),
    "tk103": (base_tk103, lambda f: _TK103_BR00.match(f) is not None),
    "osmand": (base_osmand, lambda f: re.search(rb"(^|&)timestamp=\d+(&|$)", f) is not None
               and b"lat=" in f and b"lon=" in f and not f.startswith(b"/")),
    "meitrack": (base_meitrack, lambda f: f[:2] == b"$$" and f.split(b",")[2:3] == [b"AAA"]),
    "watch": (base_watch, lambda f: f[:1] == b"[" and _watch_kind(f) in _WATCH_POSITION),
    "gl200": (base_gl200, lambda f: f.startswith((b"+RESP:GTFRI", b"+BUFF:GTFRI"))),
    "gpsgate": (base_gpsgate, lambda f: f.startswith(b"$GPRMC")
                or (f.startswith(b"$FRCMD,") and b"_SendMessage" in f)),
}


def _session_for(v: dict[str, Any]) -> Session:
    """Traccar tests change decoder settings mid-test (model, extended, UDP); the same here."""
    context = v.get("context") or {}
    config: dict[str, Any] = {k2: context[k1] for k1, k2 in (("modelOverride", "model"),
                                                              ("extended", "extended")) if k1 in context}
    transport = v["transport"]
    if context.get("connectionless") is not None:
        transport = "udp" if context["connectionless"] else "tcp"
    return Session(transport=transport, config=config)


@dataclass
class Method:
    """One Traccar test: its frames in order, each with the session settings it ran under."""

    frames: list[bytes] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)


def traccar_methods(path: Path) -> dict[str, list[Method]]:
    by_method: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for v in json.loads(path.read_text()):
        if not v.get("disabled_in_traccar"):
            by_method[(TRACCAR_NAME.get(v["protocol"], v["protocol"]), v["test_method"])].append(v)
    out: dict[str, list[Method]] = defaultdict(list)
    for (name, _), items in by_method.items():
        items.sort(key=lambda v: v["seq_in_test"])
        m = Method()
        for v in items:
            m.frames.append(bytes.fromhex(v["frame"]) if v["encoding"] == "hex"
                            else str(v["frame"]).encode("latin-1"))
            m.sessions.append(_session_for(v))
        out[name].append(m)
    return dict(out)


def replay(proto: Protocol, methods: list[Method]) -> int:
    """Every frame of every test on a session of its own, as the tests ran; returns refusals."""
    refused = 0
    for m in methods:
        live = Session()
        for frame, settings in zip(m.frames, m.sessions, strict=True):
            live.config, live.transport = settings.config, settings.transport
            try:
                live.unique_id = proto.decode(frame, live).unique_id or live.unique_id
            except DecodeError:
                refused += 1
    return refused


def _reads(base: Baseline, frame: bytes) -> bool:
    """A frame of the right type may still lack a fix (empty fields): not the baseline's to read."""
    try:
        return base(frame) is not None
    except (ValueError, IndexError, KeyError, struct.error):
        return False


def prepared_subset(proto: Protocol, methods: list[Method], base: Baseline,
                    wanted: Callable[[bytes], bool]) -> list[tuple[bytes, Session]]:
    """The frames the baseline can read (and the decoder accepts), each with the session its
    test had reached before it."""
    subset: list[tuple[bytes, Session]] = []
    for m in methods:
        live = Session()
        for frame, settings in zip(m.frames, m.sessions, strict=True):
            live.config, live.transport = settings.config, settings.transport
            before = Session(transport=live.transport, unique_id=live.unique_id, state=dict(live.state),
                             config=live.config)
            try:
                live.unique_id = proto.decode(frame, live).unique_id or live.unique_id
            except DecodeError:
                continue
            if wanted(frame) and _reads(base, frame):
                subset.append((frame, before))
    return subset


def traccar_rows(name: str, methods: list[Method], repeat: int, loops: int) -> list[Row]:
    proto = PROTOCOLS[name]
    total = sum(len(m.frames) for m in methods)
    refused = replay(proto, methods)
    rate = best_rate(total * loops, repeat, lambda: [replay(proto, methods) for _ in range(loops)])
    rows = [Row(f"{name} (all frames)", total, rate, None, f"{len(methods)} tests, {refused} refused")]
    if name not in REAL_BASELINES:
        return rows
    base, wanted = REAL_BASELINES[name]
    subset = prepared_subset(proto, methods, base, wanted)
    if not subset:
        return rows
    frames = [f for f, _ in subset]
    firsts = [proto.decode(f, s).positions[:1] for f, s in subset]
    check = pairwise(firsts, baseline_all(base, frames))

    def decode_subset() -> None:
        for _ in range(loops):
            for f, s in subset:
                proto.decode(f, s)

    decoder = best_rate(len(frames) * loops, repeat, decode_subset)
    baseline = best_rate(len(frames) * loops, repeat,
                         lambda: [baseline_all(base, frames) for _ in range(loops)])
    rows.append(Row(f"{name} (baseline's type)", len(frames), decoder, baseline, "", check))
    return rows


def run_traccar(path: Path, repeat: int, loops: int) -> list[Row]:
    return [row for name, methods in sorted(traccar_methods(path).items())
            for row in traccar_rows(name, methods, repeat, loops)]


def run_nmea_log(path: Path, repeat: int) -> Row:
    with gzip.open(path, "rb") as f:
        frames = cut(nmea.PROTOCOL, f.read())
    positions = decode_all(nmea.PROTOCOL, frames, Session(unique_id="reno"))
    check = agreement(positions, baseline_all(NmeaBaseline(), [f for f in frames if f[3:6] in (
        b"RMC", b"GGA")]))

    def baseline_pass() -> None:
        # Everything but RMC and GGA is skipped; the split still happens, as it must to know.
        baseline_all(NmeaBaseline(), frames)

    decoder = best_rate(len(frames), repeat,
                        lambda: decode_all(nmea.PROTOCOL, frames, Session(unique_id="reno")))
    baseline = best_rate(len(frames), repeat, baseline_pass)
    return Row("nmea (Reno car log)", len(frames), decoder, baseline, f"{len(positions):,} positions", check)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20000, help="generated frames per protocol")
    parser.add_argument("--repeat", type=int, default=3, help="passes; the best counts")
    parser.add_argument("--loops", type=int, default=20, help="Traccar frames: passes over them per timing")
    parser.add_argument("--vectors", type=Path, default=DATA / "traccar" / "vectors.json",
                        help="Traccar's test frames (JSON)")
    parser.add_argument("--nmea-log", type=Path, default=DATA / "nmea" / "nmeaparser__NmeaSampleData.nmea.gz",
                        help="a gzipped NMEA log")
    parser.add_argument("--protocols", default=",".join(GENERATED), help="generated: comma-separated")
    args = parser.parse_args()
    print(f"decode benchmark  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
          f"{platform.python_version()}")
    header = f"  {'frames':<26} {'count':>7} {'decoder/s':>12} {'baseline/s':>12} {'ratio':>7}"
    print("generated by the project's encoders (check: decoded positions vs the baseline's fixes)")
    print(header)
    for name in args.protocols.split(","):
        print(run_generated(name, args.frames, args.repeat).line(), flush=True)
    vectors = args.vectors
    if vectors.exists():
        print(f"real frames: Traccar's decoder tests ({vectors}, Apache-2.0), replayed per test")
        print(header)
        for row in run_traccar(vectors, args.repeat, args.loops):
            print(row.line(), flush=True)
    else:
        print(f"real frames: {vectors} not found, skipped")
    log = args.nmea_log
    if log.exists():
        print(f"real NMEA log ({log.name}, Apache-2.0), every line a frame")
        print(header)
        print(run_nmea_log(log, args.repeat).line())
    else:
        print(f"real NMEA log: {log} not found, skipped")


if __name__ == "__main__":
    main()
