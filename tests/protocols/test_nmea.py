"""Generic NMEA (Traccar's t55): vectors, framing, real receiver logs, replies, fuzzing.

Counts on the real logs are computed here, independently of the decoder, with a plain regular
expression and an XOR checksum (:func:`good_sentences`).
"""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import keys, nmea
from protocols.model import KNOT_KMH, Decoded, DecodeError, Position, Session
from protocols.nmea import MAX_LINE, PROTOCOL
from tests.protocols.fuzz import check_every_split, drain, fuzz_settings
from tests.protocols.vectors import (
    apply_context,
    check_expect,
    check_kind,
    check_sanity,
    frame_bytes,
    frame_vectors_for,
    frames_fed_in_chunks,
    frames_of,
    replay_method,
    session_for,
    vectors_for,
)

LOGS = Path(__file__).resolve().parent.parent / "data" / "nmea"
VECTORS = vectors_for("t55")
ALL = [v for items in VECTORS.values() for v in items]
FUZZ = fuzz_settings(400)
HELLO = b"IMEI 359853000144328\r\n"  # what a tracker sends before its NMEA


# --- an independent NMEA checker -------------------------------------------------------------


def xor(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


def checksum_ok(sentence: bytes) -> bool | None:
    """True/False for a '$...*hh' sentence, None when it carries no '*'."""
    body, star, rest = sentence.partition(b"*")
    if not star:
        return None
    digits = rest.strip()[:2]
    if not re.fullmatch(rb"[0-9A-Fa-f]{2}", digits):
        return False
    return int(digits, 16) in (xor(body[body.index(b"$") + 1 :]), xor(body[body.index(b"$") + 1 :].rstrip()))


SENTENCE = re.compile(rb"\$([A-Z]{2})([A-Z]{3}),([ -#%-)+-~]*)\*([0-9A-F]{2})(?=[\r\n]|\Z)")
LAT_FIELD = {b"RMC": 2, b"GGA": 1, b"GLL": 0}  # index of the latitude among the fields


@dataclass
class Good:
    talker: bytes
    kind: bytes
    fields: list[bytes]


def good_sentences(data: bytes, kinds: Iterable[bytes] = (b"RMC", b"GGA", b"GLL")) -> list[Good]:
    """Complete sentences of the given types whose checksum matches, in stream order."""
    out = []
    for m in SENTENCE.finditer(data):
        if m[2] in kinds and xor(m[1] + m[2] + b"," + m[3]) == int(m[4], 16):
            out.append(Good(m[1], m[2], m[3].split(b",")))
    return out


def with_fix(sentences: list[Good]) -> list[Good]:
    return [s for s in sentences if s.fields[LAT_FIELD[s.kind]]]


def read_log(name: str) -> bytes:
    path = LOGS / name
    return gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()


# --- feeding a stream as the gateway does ----------------------------------------------------


@dataclass
class Fed:
    positions: list[Position] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)
    errors: list[DecodeError] = field(default_factory=list)
    worst_error_run: int = 0  # the gateway drops a connection after 5 malformed frames in a row
    session: Session = field(default_factory=Session)

    @property
    def stats(self) -> nmea.NmeaStats:
        return nmea.stats(self.session)


def feed(chunks: Iterable[bytes], config: Mapping[str, Any] | None = None, hello: bytes = HELLO) -> Fed:
    fed = Fed(session=Session(transport="tcp", config=dict(config or {})))
    buf, run = b"", 0
    for chunk in [hello, *chunks]:
        buf += chunk
        while buf:
            frame, used = PROTOCOL.next_frame(buf)
            if used == 0:
                assert len(buf) <= PROTOCOL.max_frame, "the gateway would close: oversize"
                break
            assert 0 < used <= len(buf)
            buf = buf[used:]
            if frame is None:
                continue
            assert used > 0
            fed.frames.append(frame)
            try:
                decoded = PROTOCOL.decode(frame, fed.session)
            except DecodeError as exc:
                fed.errors.append(exc)
                run += 1
                fed.worst_error_run = max(fed.worst_error_run, run)
                continue
            run = 0
            if decoded.unique_id:
                fed.session.unique_id = decoded.unique_id
            fed.positions.extend(decoded.positions)
    return fed


def reads(data: bytes, size: int = 65536) -> list[bytes]:
    """The stream as socket reads of ``size`` bytes (a log fed whole would be copied quadratically)."""
    return [data[at : at + size] for at in range(0, len(data), size)]


def random_chunks(data: bytes, seed: int, largest: int = 1500) -> list[bytes]:
    rnd = random.Random(seed)
    chunks, at = [], 0
    while at < len(data):
        size = rnd.randint(1, largest)
        chunks.append(data[at : at + size])
        at += size
    return chunks


def summary(fed: Fed) -> list[tuple[Any, ...]]:
    return [(p.fix_time, p.latitude, p.longitude, p.speed_kmh, p.altitude_m, p.unique_id)
            for p in fed.positions]


# --- Traccar's vectors -----------------------------------------------------------------------


def _lenient(frame: bytes, session: Session) -> Decoded:
    # The harness rebuilds session.config from each vector's context: add the setting per call.
    session.config = {**session.config, "checksum": "lenient"}
    return nmea.decode(frame, session)


LENIENT = dataclasses.replace(PROTOCOL, decode=_lenient)
BAD_CHECKSUM = [v for v in ALL if b"$" in frame_bytes(v) and checksum_ok(frame_bytes(v)) is False]


def test_vector_count() -> None:
    assert len(ALL) == 45
    assert sorted(VECTORS) == ["testDecode", "testMaxonDecode", "testWmcsDecode"]


def test_nine_traccar_frames_carry_a_wrong_checksum() -> None:
    # Traccar never verifies checksums; these test frames were edited by hand (times zeroed,
    # "*00" placeholders, a one-digit "*7", a PUBX that sums to 6B, not 6D) and no longer sum up.
    assert sorted(v["seq_in_test"] for v in BAD_CHECKSUM) == [3, 17, 20, 29, 30, 31, 32, 35, 36]
    assert {v["test_method"] for v in BAD_CHECKSUM} == {"testDecode"}


@pytest.mark.parametrize("method", sorted(VECTORS))
def test_traccar_vectors(method: str) -> None:
    """Every vector passes the harness with the checksum check relaxed, as Traccar decodes."""
    replay_method(LENIENT, VECTORS[method])


@pytest.mark.parametrize("method", sorted(VECTORS))
def test_traccar_vectors_with_checksums_verified(method: str) -> None:
    """Default settings: the wrong-checksum frames are rejected and counted, all others pass."""
    items = VECTORS[method]
    session = session_for(items[0])
    rejected = 0
    for v in items:
        where = f"{v['id']} ({v['source']})"
        apply_context(session, v)
        if v in BAD_CHECKSUM:
            with pytest.raises(nmea.ChecksumError):
                PROTOCOL.decode(frame_bytes(v), session)
            rejected += 1
            continue
        decoded = PROTOCOL.decode(frame_bytes(v), session)
        if decoded.unique_id:
            session.unique_id = decoded.unique_id
        check_kind(v, decoded, where)
        for p in decoded.positions:
            check_sanity(p, where)
        if v.get("expect") and decoded.positions:
            check_expect(decoded.positions[0], v["expect"], where)
    assert nmea.stats(session).bad_checksum == rejected
    assert nmea.stats(session).frames == len(items)


def vector(method: str, seq: int) -> bytes:
    return next(frame_bytes(v) for v in VECTORS[method] if v["seq_in_test"] == seq)


def decode_all(frames: Iterable[bytes], session: Session | None = None) -> list[Decoded]:
    session = session or Session(unique_id="dev")
    out = []
    for f in frames:
        decoded = PROTOCOL.decode(f, session)
        if decoded.unique_id:
            session.unique_id = decoded.unique_id
        out.append(decoded)
    return out


def dm(degrees: int, minutes: float) -> float:
    return degrees + minutes / 60


def test_gn_talker_epoch_shares_date_speed_and_altitude() -> None:
    rmc, gga, gll = decode_all([vector("testDecode", n) for n in (4, 5, 6)])
    when = datetime(2023, 11, 9, 16, 44, 14, 900000, tzinfo=UTC)
    for d in (rmc, gga, gll):
        (p,) = d.positions
        assert p.fix_time == when  # GGA and GLL carry no date: it is the RMC's
        assert p.latitude == pytest.approx(dm(46, 50.51565))
        assert p.longitude == pytest.approx(dm(12, 46.1059604))
        assert p.speed_kmh == pytest.approx(0.018 * KNOT_KMH)  # RMC's, same epoch
        assert p.valid
    assert rmc.positions[0].altitude_m is None
    for d in (gga, gll):
        assert d.positions[0].altitude_m == 740.729
        assert d.positions[0].hdop == 0.84
        assert d.positions[0].attributes[keys.SATELLITES] == 12


def test_identification_forms() -> None:
    cases = {
        ("testDecode", 1): "6Q5161694402B133",  # $PSIWMDID
        ("testDecode", 8): "0x0103846677F21422",  # $DEVID
        ("testDecode", 11): "355797031609284",  # $IMEI=
        ("testDecode", 12): "086415031C20",  # bare hex id
        ("testDecode", 13): "358244017671308",  # bare IMEI
        ("testDecode", 21): "ID123456ABC",  # $GPFID
        ("testDecode", 22): "359853000144328",  # $PGID
        ("testDecode", 23): "CradlePoint Test",  # $PCPTI
        ("testDecode", 24): "351467108700000",  # IMEI nnn
        ("testWmcsDecode", 1): "350030950116536",  # $CONNECT
    }
    for (method, seq), uid in cases.items():
        decoded = PROTOCOL.decode(vector(method, seq), Session())
        assert (decoded.unique_id, decoded.positions, decoded.reply) == (uid, [], None), (method, seq)


def test_id_before_the_sentence_names_the_device() -> None:
    cases = {10: "660420156A0066AA", 19: "022789000688081", 36: "123456789", 38: "990000561287964",
             39: "355096030432529"}
    for seq, uid in cases.items():
        decoded = PROTOCOL.decode(vector("testDecode", seq), Session(config={"checksum": "lenient"}))
        assert decoded.unique_id == uid
        assert [p.unique_id for p in decoded.positions] == [uid]


def test_maxon_fix_is_kept_until_the_device_names_itself() -> None:
    session = Session()
    first = PROTOCOL.decode(vector("testMaxonDecode", 1), session)
    assert first.positions == []
    second = PROTOCOL.decode(vector("testMaxonDecode", 2), session)
    (p,) = second.positions
    assert second.unique_id == p.unique_id == "ID123456ABC"
    assert p.fix_time == datetime(2015, 9, 18, 1, 20, 6, tzinfo=UTC)
    assert (p.latitude, p.longitude) == pytest.approx((dm(48, 28.10), dm(13, 53.52)))
    assert PROTOCOL.decode(vector("testMaxonDecode", 2), session).positions == []  # released once


def test_extended_rmc_tail_names_the_device() -> None:
    decoded = PROTOCOL.decode(vector("testDecode", 17), Session(config={"checksum": "lenient"}))
    (p,) = decoded.positions
    assert decoded.unique_id == p.unique_id == "865733027593268"
    assert p.attributes[keys.SATELLITES] == 11
    assert p.attributes[keys.IGNITION] is True
    assert p.attributes[keys.FUEL_PCT] == 90


def test_checksum_after_a_space_is_accepted() -> None:
    frame = vector("testDecode", 38)
    assert b"A * 72" in frame and checksum_ok(frame)
    (p,) = PROTOCOL.decode(frame, Session()).positions
    assert p.fix_time == datetime(2014, 12, 18, 21, 35, 16, tzinfo=UTC)
    assert (p.latitude, p.longitude) == pytest.approx((dm(43, 37.216791), -dm(116, 11.995877)))


def test_gps_week_rollover_date_is_unrolled() -> None:
    # 011196 is 1996-11-01, a receiver 1024 GPS weeks behind.
    (p,) = PROTOCOL.decode(vector("testDecode", 18), Session(unique_id="x")).positions
    assert p.fix_time == datetime(1996, 11, 1, 16, 12, 23, tzinfo=UTC) + timedelta(weeks=1024)


def test_vendor_sentences() -> None:
    session = Session(unique_id="x", config={"checksum": "lenient"})
    (trccr,) = PROTOCOL.decode(vector("testDecode", 32), session).positions
    assert trccr.fix_time == datetime(2014, 1, 1, 0, 11, 22, 333000, tzinfo=UTC)
    assert (trccr.latitude, trccr.longitude, trccr.valid) == (60.0, -100.0, False)
    assert trccr.speed_kmh == pytest.approx(1.1 * KNOT_KMH) and trccr.course_deg == 2.2
    assert trccr.altitude_m == 3.3 and trccr.attributes[keys.BATTERY_V] == 4.4
    (iop,) = PROTOCOL.decode(vector("testDecode", 9), session).positions
    assert iop.latitude is None and iop.attributes[keys.POWER_V] == 4.69
    (qze,) = PROTOCOL.decode(vector("testDecode", 7), session).positions
    assert qze.unique_id == "868994033976700"
    assert qze.fix_time == datetime(2020, 6, 28, 11, 35, 53, tzinfo=UTC)
    assert (qze.latitude, qze.longitude, qze.attributes[keys.EVENT]) == (22.13673, 114.57263, 35)
    (pubx,) = PROTOCOL.decode(vector("testDecode", 3), session).positions
    assert (pubx.altitude_m, pubx.accuracy_m, pubx.speed_kmh, pubx.hdop) == (785.947, 4.1, 0.163, 0.88)
    assert pubx.attributes[keys.SATELLITES] == 24
    (net,) = PROTOCOL.decode(vector("testDecode", 2), session).positions
    assert net.latitude is None and net.attributes[keys.RSSI] == -53


def test_wmcs_reports() -> None:
    session = Session()
    PROTOCOL.decode(vector("testWmcsDecode", 1), session)
    (first,) = PROTOCOL.decode(vector("testWmcsDecode", 2), session).positions
    assert first.fix_time == datetime(2003, 7, 5, 9, 51, 21, tzinfo=UTC)
    assert (first.latitude, first.longitude, first.valid) == (51.89573, 5.8986, True)
    assert (first.attributes[keys.SATELLITES_VISIBLE], first.attributes[keys.SATELLITES]) == (9, 5)
    decoded = PROTOCOL.decode(vector("testWmcsDecode", 3), session)
    (alarm,) = decoded.positions
    assert decoded.unique_id == "355826017981316"
    assert (alarm.longitude, alarm.valid, alarm.course_deg) == (-2.21816, False, 21.47)


# --- replies --------------------------------------------------------------------------------

RMC = b"$GPRMC,094907.000,A,6000.5332,N,03020.5192,E,1.17,60.26,091111,,*33"
GGA = b"$GPGGA,094907.000,6000.5332,N,03020.5192,E,1,08,0.9,45.0,M,17.0,M,,*"


def with_checksum(sentence: bytes) -> bytes:
    body = sentence.rstrip(b"*")
    return body + b"*%02X" % xor(body[1:])


def test_rmc_is_acknowledged_only_when_configured_over_tcp() -> None:
    assert checksum_ok(RMC)
    ack = {"ack": True}
    assert PROTOCOL.decode(RMC, Session(unique_id="x", config=ack)).reply == b"OK1\r\n"
    assert PROTOCOL.decode(RMC, Session(unique_id="x")).reply is None
    assert PROTOCOL.decode(RMC, Session(unique_id="x", transport="udp", config=ack)).reply is None
    assert PROTOCOL.decode(RMC, Session(config=ack)).reply is None  # unknown device: no ack
    assert PROTOCOL.decode(with_checksum(GGA), Session(unique_id="x", config=ack)).reply is None


# --- checksums and statistics ---------------------------------------------------------------


def test_checksum_modes_and_counters() -> None:
    good, bare = with_checksum(GGA), GGA.rstrip(b"*")
    wrong = good[:-2] + b"%02X" % (int(good[-2:], 16) ^ 1)
    truncated = b"$GPGGA,094907.000,6000.53"
    session = Session(unique_id="x")
    assert len(PROTOCOL.decode(good, session).positions) == 1
    assert len(PROTOCOL.decode(bare, session).positions) == 1
    with pytest.raises(nmea.ChecksumError):
        PROTOCOL.decode(wrong, session)
    with pytest.raises(DecodeError):
        PROTOCOL.decode(truncated, session)
    PROTOCOL.decode(b"$GPGSV,3,1,12,04,16,162,46,07,84,207,48,08,34,135,45,09,17,315,38*74", session)
    assert nmea.stats(session) == nmea.NmeaStats(
        frames=5, ok=3, no_checksum=2, bad_checksum=1, unparsable=1, positions=2)

    required = Session(unique_id="x", config={"checksum": "required"})
    with pytest.raises(nmea.ChecksumError):
        PROTOCOL.decode(bare, required)
    lenient = Session(unique_id="x", config={"checksum": "lenient"})
    assert len(PROTOCOL.decode(wrong, lenient).positions) == 1
    assert nmea.stats(lenient).bad_checksum == 1 and nmea.stats(lenient).ok == 1


def test_malformed_sentences_are_decode_errors() -> None:
    rmc_body = RMC.partition(b"*")[0][6:]
    for frame in (b"$PXRMC" + rmc_body, b"$PUBX,00", b"$GPRMC", b"$GPGGA,030130", RMC[:40],
                  b"$GPRMC,094907.000,A,6000.5332,X,03020.5192,E,1.17,60.26,091111,,",
                  b"$GPRMC,094907.000,A,9100.0000,N,03020.5192,E,1.17,60.26,091111,,",
                  b"$GPRMC,25xx07.000,A,6000.5332,N,03020.5192,E,1.17,60.26,091111,,",
                  b"$GPGGA,094907.000,6000.5332,N,03020.5192,E,1,08,nan,45.0,M,17.0,M,,",
                  b"QZE,868994033976700,35,28062020,113553,95.1,114.57263,0,22,A,0",
                  b"garbage$GPRMC" + rmc_body, b"hello"):
        with pytest.raises(DecodeError):
            PROTOCOL.decode(frame, Session(unique_id="x"))


def test_gga_only_epoch_is_dated_from_the_last_rmc_across_midnight() -> None:
    rmc = with_checksum(b"$GPRMC,235959.000,A,6000.5332,N,03020.5192,E,1.17,60.26,311224,,*")
    gga = with_checksum(b"$GPGGA,000001.000,6000.5332,N,03020.5192,E,1,08,0.9,45.0,M,17.0,M,,*")
    _, after = decode_all([rmc, gga])
    assert after.positions[0].fix_time == datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_gga_without_any_date_takes_the_nearest_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nmea, "_now", lambda: datetime(2025, 3, 10, 0, 5, tzinfo=UTC))
    gga = with_checksum(b"$GPGGA,235958.000,6000.5332,N,03020.5192,E,1,08,0.9,45.0,M,17.0,M,,*")
    (p,) = PROTOCOL.decode(gga, Session(unique_id="x")).positions
    assert p.fix_time == datetime(2025, 3, 9, 23, 59, 58, tzinfo=UTC)  # 7 minutes ago, not tonight


def test_epoch_mode_sends_one_merged_position_per_epoch() -> None:
    epoch = [
        b"$GPRMC,%s,A,6000.5332,N,03020.5192,E,10.0,60.26,091111,,*",
        b"$GPGGA,%s,6000.5332,N,03020.5192,E,1,08,0.9,45.0,M,17.0,M,,*",
        b"$GPGSA,A,3,04,07,08,09,11,24,26,27,,,,,1.5,0.9,1.2*",
        b"$GPGLL,6000.5332,N,03020.5192,E,%s,A,A*",
    ]
    times = [b"094907.000", b"094908.000", b"094909.000"]
    frames = [with_checksum(s % t if b"%s" in s else s) for t in times for s in epoch]
    session = Session(unique_id="x", config={"positions": "epoch"})
    out = [p for d in decode_all(frames, session) for p in d.positions]
    assert [p.fix_time.second for p in out] == [7, 8, 9]
    for p in out:
        assert p.speed_kmh == pytest.approx(10 * KNOT_KMH) and p.altitude_m == 45.0
        assert p.attributes[keys.PDOP] == 1.5 and p.attributes[keys.SATELLITES] == 8
    per_sentence = [p for d in decode_all(frames) for p in d.positions]
    assert len(per_sentence) == 9  # Traccar's way: RMC, GGA and GLL each


# --- framing --------------------------------------------------------------------------------


def test_no_traccar_frame_vectors_for_t55() -> None:
    assert frame_vectors_for("t55") == []  # Traccar's t55 uses a plain line framer


def test_every_vector_is_one_line_frame() -> None:
    frames = [frame_bytes(v) for v in ALL]
    stream = b"".join(f + (b"\r\n" if i % 2 else b"\n") for i, f in enumerate(frames))
    assert frames_of(PROTOCOL, stream) == frames


TRITON = read_log("gpsd__triton400.log")
UBX = read_log("gpsd__ublox-zed-f9p_hpg1.11.log.gz")
UBX_SNIPPET = UBX[UBX.index(b"$GNVTG") - 700 : UBX.index(b"$GNGLL") + 300]
SPLICED = b"$GPGGA,030130$GPGLL,2638.1728,N,08011.3893,W,030131.000,A,A*41"


def test_spliced_sentence_is_cut_at_the_next_dollar() -> None:
    assert SPLICED in TRITON
    assert frames_of(PROTOCOL, SPLICED + b"\r\n") == [b"$GPGGA,030130", SPLICED[13:]]


def test_binary_ubx_is_skipped_and_sentences_kept() -> None:
    frames = frames_of(PROTOCOL, UBX_SNIPPET)
    wanted = [m[0] for m in re.finditer(rb"\$GN(VTG|GGA|GLL),[^\r\n]*", UBX_SNIPPET)]
    assert len(wanted) == 3
    assert all(w in frames for w in wanted)
    assert all(checksum_ok(f) for f in frames)  # no junk frame from the binary


def mixed_stream() -> tuple[bytes, list[bytes]]:
    lines = [HELLO.strip(), RMC, vector("testDecode", 10), vector("testWmcsDecode", 2),
             vector("testDecode", 24), SPLICED[:13], SPLICED[13:]]
    stream = (b"************ program startup 16:40:33 09-25-2005 ************\r\n"
              + b"\r\n".join(lines[:5]) + b"\n\x00\x01garbage 12345678\n" + SPLICED + b"\r\n"
              + UBX_SNIPPET)
    return stream, lines + frames_of(PROTOCOL, UBX_SNIPPET)


def test_mixed_stream_frames() -> None:
    stream, expected = mixed_stream()
    assert frames_of(PROTOCOL, stream) == expected


def test_mixed_stream_split_at_every_byte_gives_the_same_frames() -> None:
    stream, expected = mixed_stream()
    check_every_split(PROTOCOL, stream, expected)


def test_need_more_until_the_line_ends() -> None:
    assert PROTOCOL.next_frame(b"") == (None, 0)
    assert PROTOCOL.next_frame(RMC) == (None, 0)
    assert PROTOCOL.next_frame(b"IMEI 3598530001") == (None, 0)
    assert PROTOCOL.next_frame(b"$GP") == (None, 0)
    assert PROTOCOL.next_frame(RMC + b"\r\n") == (RMC, len(RMC))


def leftover(buffer: bytes) -> bytes:
    while buffer:
        frame, used = PROTOCOL.next_frame(buffer)
        assert frame is None
        if used == 0:
            break
        buffer = buffer[used:]
    return buffer


def test_garbage_is_discarded() -> None:
    # Only a single byte may stay: the framer's marker that it is inside garbage.
    assert len(leftover(bytes(range(256)).replace(b"$", b"").replace(b"\n", b"").replace(b"\r", b""))) <= 1
    assert leftover(b"#comment line\r\n") == b""
    assert leftover(b"hello world\n") == b""
    assert leftover(b"$\x00\x01\x02") == b"\x02"
    assert len(leftover(UBX[UBX.index(b"\xb5b") :][:400].replace(b"$", b"").replace(b"\n", b""))) <= 1


def test_oversize_lines_are_dropped_not_buffered() -> None:
    for junk in (b"$GPRMC," + b"1" * 2000, b"A" * 2000, b"123456789$GPGGA," + b"9" * 3000):
        assert leftover(junk) == b""
        assert frames_of(PROTOCOL, junk + b"\r\n" + RMC + b"\r\n") == [RMC]


# --- real receiver logs ----------------------------------------------------------------------

SAMPLE = read_log("nmeaparser__NmeaSampleData.nmea.gz")


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_garmin_car_log(seed: int | None) -> None:
    chunks = reads(SAMPLE) if seed is None else random_chunks(SAMPLE, seed)
    rmc = [s for s in good_sentences(SAMPLE, [b"RMC"]) if s.fields[1] == b"A"]
    assert len(rmc) == 4469  # the README's count
    fixes = with_fix(good_sentences(SAMPLE))
    fed = feed(chunks)
    assert fed.errors == [] and fed.stats.unparsable == 0  # the garbage first line is no frame
    assert not any(b"program startup" in f for f in fed.frames)
    assert len(fed.positions) == len(fixes) == 3 * 4469  # RMC, GGA and GLL, as Traccar
    assert len({p.fix_time for p in fed.positions}) == 4469
    assert fed.positions[0].fix_time == datetime(2005, 9, 25, 23, 52, 34, tzinfo=UTC)
    assert fed.positions[-1].fix_time == datetime(2005, 9, 26, 2, 56, 32, tzinfo=UTC)
    assert all(p.unique_id is None for p in fed.positions)  # identity is the session's

    epoch = feed(chunks, {"positions": "epoch"})
    assert len(epoch.positions) == 4469
    times = [p.fix_time for p in epoch.positions]
    assert times == sorted(set(times)) == sorted({p.fix_time for p in fed.positions})
    assert all(p.speed_kmh is not None and p.altitude_m is not None for p in epoch.positions)
    for p, s in zip(epoch.positions, rmc, strict=True):
        assert p.speed_kmh == pytest.approx(float(s.fields[6]) * KNOT_KMH)
    if seed is not None:
        assert summary(fed) == summary(feed(reads(SAMPLE)))


@pytest.mark.parametrize("seed", [None, 3])
def test_firefly_gga_checksums_are_all_wrong(seed: int | None) -> None:
    data = read_log("gpsd__firefly-II.log")
    gga = [m for m in re.finditer(rb"\$GPGGA[^\r\n]*", data)]
    assert gga and not any(checksum_ok(m[0]) for m in gga)
    rmc = with_fix(good_sentences(data, [b"RMC"]))
    fed = feed([data] if seed is None else random_chunks(data, seed, 200))
    assert fed.stats.bad_checksum == len(gga)
    assert all(isinstance(e, nmea.ChecksumError) for e in fed.errors)
    assert fed.worst_error_run == 1  # the good RMC after each bad GGA keeps the connection
    assert len(fed.positions) == len(rmc) == 23
    assert all(p.altitude_m is None for p in fed.positions)  # nothing taken from a bad GGA
    assert [p.fix_time.date() for p in fed.positions] == [date(2010, 7, 8)] * 23


@pytest.mark.parametrize("seed", [None, 4, 5])
def test_triton_spliced_sentence_costs_only_itself(seed: int | None) -> None:
    fed = feed([TRITON] if seed is None else random_chunks(TRITON, seed, 100))
    assert fed.stats.unparsable == 1 and fed.stats.bad_checksum == 0
    assert b"$GPGGA,030130" in fed.frames
    good = with_fix(good_sentences(TRITON))
    assert len(fed.positions) == len(good) == 13
    gll = [p for p in fed.positions if p.fix_time.time().isoformat() == "03:01:31"]
    assert gll and gll[0].latitude == pytest.approx(dm(26, 38.1728))  # the GLL right after it
    epoch = feed([TRITON], {"positions": "epoch"})
    assert [p.fix_time.second for p in epoch.positions] == [29, 30, 31, 32, 33]
    assert {p.fix_time.date() for p in epoch.positions} == {date(2013, 4, 1)}


@pytest.mark.parametrize("seed", [None, 6])
def test_ubx_binary_mixed_in_resyncs(seed: int | None) -> None:
    fed = feed(reads(UBX) if seed is None else random_chunks(UBX, seed, 4000))
    good = with_fix(good_sentences(UBX))
    assert len(good) == 3 * 655
    assert len(fed.positions) == len(good)
    assert fed.errors == []  # no junk frame cut out of the binary
    assert fed.stats.frames == 1 + len(good_sentences(UBX, [b"RMC", b"GGA", b"GLL", b"VTG"]))
    for p, s in zip(fed.positions, good, strict=True):
        lat = float(s.fields[LAT_FIELD[s.kind]])
        assert abs(p.latitude or 0) == pytest.approx(lat // 100 + lat % 100 / 60)
    epoch = feed(reads(UBX, 4096), {"positions": "epoch"})
    assert len(epoch.positions) == 655
    assert all(p.altitude_m is not None and p.speed_kmh is not None for p in epoch.positions)


@pytest.mark.parametrize("name", ["gpsd__ublox-zed-f9p-nmea.log", "gpsd__nl2008u.log",
                                  "gpsd__humminbird-M37.log"])
def test_multi_talker_logs(name: str) -> None:
    data = read_log(name)
    good = with_fix(good_sentences(data))
    talkers = {s.talker for s in good_sentences(data, [b"RMC", b"GGA", b"GLL", b"GSV", b"GSA", b"VTG"])}
    assert talkers - {b"GP"}  # GN/GL/GA/GB/IN: not only GPS
    fed = feed([data])
    assert fed.errors == []
    assert len(fed.positions) == len(good)
    assert summary(feed(random_chunks(data, 7, 300))) == summary(fed)
    # Epochs: runs of sentences sharing a time (a replayed stretch makes times repeat later on).
    runs = [t for t, _ in itertools.groupby(s.fields[4 if s.kind == b"GLL" else 0] for s in good)]
    epoch = feed([data], {"positions": "epoch"})
    # One per epoch; an epoch whose closing sentence never came is sent when the next starts,
    # so the stream's last epoch may still be waiting.
    assert len(runs) - 1 <= len(epoch.positions) <= len(runs)
    stamps = [p.fix_time.strftime("%H%M%S") for p in epoch.positions]
    assert stamps == [t.decode()[:6] for t in runs[: len(stamps)]]


def test_multi_constellation_dops_and_date_from_zda() -> None:
    epoch = feed([read_log("gpsd__ublox-zed-f9p-nmea.log")], {"positions": "epoch"})
    first = epoch.positions[0]
    assert first.fix_time == datetime(2019, 4, 12, 0, 39, 56, tzinfo=UTC)
    assert (first.attributes[keys.PDOP], first.attributes[keys.VDOP], first.hdop) == (1.05, 0.83, 0.64)
    assert first.altitude_m == 14.2 and first.attributes[keys.SATELLITES] == 12


# --- fuzzing --------------------------------------------------------------------------------

REAL_LINES = [frame_bytes(v) for v in ALL] + [m[0] for m in re.finditer(rb"\$[^\r\n]*", TRITON)]
PIECES = [*REAL_LINES, b"\r\n", b"\n", b"$", b"\x00", b"\xb5b", b"12345678", b"*", b"IMEI ", b"$GP", b"/"]


@FUZZ
@given(st.binary(max_size=2 * MAX_LINE + 10))
def test_fuzz_next_frame(data: bytes) -> None:
    frames, waiting = drain(PROTOCOL, data)
    assert all(frames)  # no empty frame
    assert len(waiting) <= MAX_LINE


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=12)), max_size=12), st.data())
def test_fuzz_frames_do_not_depend_on_how_the_stream_is_split(
    pieces: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(pieces)[:MAX_LINE]
    split = data.draw(st.integers(0, len(stream)))
    assert frames_fed_in_chunks(PROTOCOL, stream, split) == frames_of(PROTOCOL, stream)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(REAL_LINES)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 4))
        at = draw(st.integers(0, len(frame)))
        if op == 4 and b"$" in frame:  # another address: other talkers, proprietary, unknown types
            start = frame.index(b"$") + 1
            frame[start : start + 5] = draw(st.text("PGNLABDIRMCSVTXZUQ", min_size=1, max_size=6)).encode()
        elif op == 0 and frame:
            del frame[min(at, len(frame) - 1)]
        elif op == 1:
            frame[at:at] = draw(st.sampled_from([b",", b"*", b"$", b".", b"-", b"9", b"\x00", b"*00", b"A"]))
        elif op == 2:
            frame = frame[:at]
        else:
            frame[at:at] = draw(st.binary(max_size=4))
    return bytes(frame)


CONFIGS = [{}, {"checksum": "lenient"}, {"checksum": "lenient", "positions": "epoch"}, {"ack": True}]


def fuzz_decode(frames: list[bytes], config: dict[str, Any], unique_id: str | None) -> None:
    session = Session(unique_id=unique_id, config=config)
    for frame in frames:
        try:
            decoded = PROTOCOL.decode(frame, session)
        except DecodeError:
            continue
        for p in decoded.positions:
            check_sanity(p, repr(frame))


@FUZZ
@given(st.lists(mutated_frames(), min_size=1, max_size=6), st.sampled_from(CONFIGS),
       st.sampled_from([None, "x"]))
def test_fuzz_decode_mutated_frames(frames: list[bytes], config: dict[str, Any], uid: str | None) -> None:
    fuzz_decode(frames, config, uid)


@FUZZ
@given(st.lists(st.binary(max_size=100), min_size=1, max_size=4), st.sampled_from(CONFIGS))
def test_fuzz_decode_arbitrary_bytes(frames: list[bytes], config: dict[str, Any]) -> None:
    fuzz_decode(frames, config, "x")
    fuzz_decode([b"$" + f for f in frames], config, "x")
