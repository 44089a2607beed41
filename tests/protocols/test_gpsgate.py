"""GpsGate (FRLIN login, FRCMD/FRRET commands, NMEA RMC): Traccar's vectors, exact replies with
their NMEA checksums, checksum policy, framing, robustness."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from functools import reduce

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import gpsgate
from protocols.gpsgate import PROTOCOL
from protocols.model import Decoded, DecodeError, Session
from tests.protocols.fuzz import (
    all_finite,
    check_decoder,
    check_every_split,
    check_next_frame,
    drain,
    fuzz_settings,
    real_frame_streams,
    real_frames,
    token_mutations,
)
from tests.protocols.vectors import (
    frame_bytes,
    frames_fed_in_chunks,
    frames_of,
    replay_method,
    vectors_for,
)

VECTORS = vectors_for("gpsgate")
ALL = [v for items in VECTORS.values() for v in items]
BY_ID = {v["id"]: v for v in ALL}
ALL_FRAMES = real_frames(VECTORS)


def nmea_line(body: str) -> bytes:
    """``$body*hh\\r\\n`` with the checksum computed here, bit by bit over ``body``."""
    checksum = reduce(lambda acc, ch: acc ^ ord(ch), body, 0)
    return f"${body}*{checksum:02X}\r\n".encode()


def decode(frame: bytes | str, session: Session | None = None, **config: object) -> Decoded:
    raw = frame.encode("latin-1") if isinstance(frame, str) else frame
    return PROTOCOL.decode(raw, session if session is not None else Session(config=config))


# --- Traccar's decoder vectors ------------------------------------------------------------------


def test_vector_count() -> None:
    assert len(ALL) == 12


@pytest.mark.parametrize("method", sorted(VECTORS))
def test_traccar_vectors(method: str) -> None:
    results = replay_method(PROTOCOL, VECTORS[method])
    assert len(results) == len(VECTORS[method])


def test_vector_checksums_are_right() -> None:
    # Real sentences: all carry a correct NMEA checksum, so strict checking loses none of them.
    for v in ALL:
        text = frame_bytes(v).decode()
        assert nmea_line(text[1 : text.index("*")]) == (text + "\r\n").encode(), v["id"]


def test_commands_name_the_device() -> None:
    for vid in ("gpsgate-001", "gpsgate-002", "gpsgate-003", "gpsgate-004", "gpsgate-005"):
        text = frame_bytes(BY_ID[vid]).decode()
        decoded = decode(text)
        assert decoded.unique_id == text.split(",")[1], vid
        assert all(p.unique_id == decoded.unique_id for p in decoded.positions), vid


# --- replies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vid", "uid"),
    [("gpsgate-006", "user1"), ("gpsgate-007", "354503026292842"), ("gpsgate-008", "1234123412341234"),
     ("gpsgate-009", "saab93_device")],
)
def test_login_is_answered_with_a_session(vid: str, uid: str) -> None:
    decoded = decode(frame_bytes(BY_ID[vid]))
    assert decoded.unique_id == uid and decoded.positions == []
    session = f"{zlib.crc32(uid.encode()):08x}"
    assert decoded.reply == nmea_line(f"FRSES,{session}")
    assert decoded.reject_reply == nmea_line("FRERR,AuthError,Unknown device")


def test_login_replies_pinned() -> None:
    decoded = decode(frame_bytes(BY_ID["gpsgate-006"]))
    assert decoded.reply == b"$FRSES,8c518555*2F\r\n"
    assert decoded.reject_reply == b"$FRERR,AuthError,Unknown device*51\r\n"
    # The GpsGate spec's own sample error sentence, checksum and all.
    spec_sample = b"$FRERR,AuthError,You have provided wrong username or password*18\r\n"
    assert gpsgate.sentence("$FRERR,AuthError,You have provided wrong username or password") == spec_sample


def test_session_differs_per_device_and_holds_across_reconnects() -> None:
    first = decode(nmea_line("FRLIN,IMEI,111111111111111,"))
    again = decode(nmea_line("FRLIN,IMEI,111111111111111,"))
    other = decode(nmea_line("FRLIN,IMEI,222222222222222,"))
    assert first.reply == again.reply != other.reply


@pytest.mark.parametrize("body", ["FRLIN,IMEI", "FRLIN,,,pass", "FRLIN,IMEI,123456"])
def test_login_parse_errors(body: str) -> None:
    decoded = decode(nmea_line(body))
    assert decoded.reply == nmea_line("FRERR,AuthError,Parse error")
    assert decoded.unique_id is None


def test_version_is_answered() -> None:
    assert decode(nmea_line("FRVER,2,0,TrackerOne 1.2")).reply == nmea_line("FRVER,1,0,GpsGate Server 1.0")


def test_reports_get_no_reply() -> None:
    for v in ALL:
        if not frame_bytes(v).startswith(b"$FRLIN"):
            assert decode(frame_bytes(v)).reply is None, v["id"]


# --- checksum policy ------------------------------------------------------------------------------

SEND = frame_bytes(BY_ID["gpsgate-002"]).decode()


def test_wrong_checksum_is_refused_unless_lenient() -> None:
    wrong = SEND[:-2] + "00"
    with pytest.raises(DecodeError):
        decode(wrong)
    assert len(decode(wrong, checksum="lenient").positions) == 1


def test_missing_checksum_is_tolerated_unless_required() -> None:
    bare = SEND[: SEND.index("*")]
    assert len(decode(bare).positions) == 1
    with pytest.raises(DecodeError):
        decode(bare, checksum="required")


def test_rmc_checksum_goes_through_the_nmea_decoder() -> None:
    session = Session(unique_id="saab93_device")
    rmc = frame_bytes(BY_ID["gpsgate-010"]).decode()
    with pytest.raises(DecodeError):
        decode(rmc[:-2] + "0B", session)
    assert len(decode(rmc, session).positions) == 1


# --- field decoding -------------------------------------------------------------------------------


def test_send_message_fields() -> None:
    # _SendMessage,,7618.51990,S,4002.26182,E,350.0,1.08,0.0,250816,183522.000,0
    (p,) = decode(frame_bytes(BY_ID["gpsgate-001"])).positions
    assert p.latitude == pytest.approx(-(76 + 18.51990 / 60))
    assert p.longitude == pytest.approx(40 + 2.26182 / 60)
    assert p.altitude_m == 350.0
    assert p.speed_kmh == pytest.approx(1.08 * 1.852)  # knots on the wire
    assert p.course_deg == 0.0
    assert p.fix_time == datetime(2016, 8, 25, 18, 35, 22, tzinfo=UTC)
    assert p.valid is False  # last field 0
    (q,) = decode(frame_bytes(BY_ID["gpsgate-002"])).positions
    assert q.valid is True and q.course_deg is None  # empty course


def test_send_message_variables() -> None:
    (p,) = decode(frame_bytes(BY_ID["gpsgate-005"])).positions  # ...,1,SosButton=0,voltage=4
    assert p.attributes == {"sos_button": 0, "voltage": 4}
    assert p.longitude == pytest.approx(152 + 59.145 / 60)
    (q,) = decode(frame_bytes(BY_ID["gpsgate-003"])).positions  # ...,1,Odometer=
    assert q.attributes == {}


def test_ping_names_the_device_only() -> None:
    assert decode(frame_bytes(BY_ID["gpsgate-004"])) == Decoded(unique_id="862950025974620")


def test_command_answer_with_a_fix() -> None:
    line = nmea_line("FRRET,356406061385182,_PollPosition,,5223.88542,N,11440.45866,W,951.2,0.027,,"
                     "220716,153507.00,1")
    (p,) = decode(line).positions
    assert p.unique_id == "356406061385182"
    assert p.latitude == pytest.approx(52 + 23.88542 / 60)


def test_frpos_position() -> None:
    line = nmea_line("FRPOS,5544.5454,N,01234.1212,E,12.5,3.5,180.0,010224,101112.00,")
    (p,) = decode(line, Session(unique_id="user1")).positions
    assert p.unique_id is None
    assert p.fix_time == datetime(2024, 2, 1, 10, 11, 12, tzinfo=UTC)
    assert p.latitude == pytest.approx(55 + 44.5454 / 60)
    assert p.speed_kmh == pytest.approx(3.5 * 1.852) and p.altitude_m == 12.5


def test_rmc_needs_a_login_first() -> None:
    # As in Traccar (and the NMEA decoder): an anonymous RMC is not delivered.
    rmc = frame_bytes(BY_ID["gpsgate-011"])
    assert decode(rmc).positions == []
    session = Session()
    login = decode(frame_bytes(BY_ID["gpsgate-007"]), session)
    session.unique_id = login.unique_id  # what the gateway does for a known device
    (p,) = decode(rmc, session).positions
    assert p.unique_id is None
    assert p.fix_time == datetime(2014, 6, 16, 7, 45, 24, tzinfo=UTC)
    assert p.speed_kmh == pytest.approx(10.39 * 1.852) and p.course_deg == 226.5


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"hello",
        b"$FRCMD*00",
        nmea_line("FRCMD,,_Ping"),
        nmea_line("FRCMD,1,_SendMessage,,9530.0,N,01000.0,E,1,1,1,010124,101010,1"),  # latitude 95
        "$FRCMD,1,_Ping\xe9*00".encode("latin-1"),
        b"$FRLIN,,user1,8IVHF*7",
    ],
    ids=["empty", "no-dollar", "no-id", "empty-id", "latitude-95", "not-ascii", "short-checksum"],
)
def test_malformed_frames_raise_decode_error(frame: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        decode(frame)
    assert err.value.frame == frame


# --- framing --------------------------------------------------------------------------------------

LOGIN = frame_bytes(BY_ID["gpsgate-009"])
RMC = frame_bytes(BY_ID["gpsgate-010"])
PING = frame_bytes(BY_ID["gpsgate-004"])
SEND_MESSAGE = frame_bytes(BY_ID["gpsgate-005"])


def test_lines_end_at_crlf_lf_or_nul() -> None:
    # Traccar's delimiters for this protocol.
    stream = LOGIN + b"\r\n" + RMC + b"\n" + PING + b"\x00" + SEND_MESSAGE + b"\r\n"
    assert frames_of(PROTOCOL, stream) == [LOGIN, RMC, PING, SEND_MESSAGE]


def test_stream_split_at_every_byte() -> None:
    frames = [frame_bytes(v) for v in ALL]
    stream = b"".join(f + b"\r\n" for f in frames)
    assert frames_of(PROTOCOL, stream) == frames
    assert check_every_split(PROTOCOL, stream, frames) == len(stream) + 1


def test_a_line_waits_for_its_end() -> None:
    for cut in range(1, len(LOGIN) + 1):
        assert PROTOCOL.next_frame(LOGIN[:cut]) == (None, 0)


def test_garbage_is_discarded() -> None:
    assert frames_of(PROTOCOL, b"\x00\x01\xffnoise\r\n" + LOGIN + b"\r\n") == [LOGIN]
    # The NMEA framer keeps at most one byte: its marker that it is inside garbage.
    frames, left = drain(PROTOCOL, b"\x01\x02\x03 no line here\x00\xff" * 50)
    assert frames == [] and len(left) <= 1
    assert drain(PROTOCOL, b"not a sentence\r\n") == ([], b"")


def test_oversize_line_is_dropped() -> None:
    endless = b"$FRCMD,1," + b"9" * (PROTOCOL.max_frame + 10)
    assert drain(PROTOCOL, endless)[0] == []
    assert PROTOCOL.next_frame(endless)[1] > 0
    assert frames_of(PROTOCOL, endless + b"\r\n" + LOGIN + b"\r\n") == [LOGIN]


# --- fuzzing --------------------------------------------------------------------------------------

FUZZ = fuzz_settings(300)
TOKENS = [b",", b"*", b"$", b".", b"=", b"-", b"9", b"\r\n", b"\x00", b"\xff", b"S", b"W"]


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    drain(PROTOCOL, data)
    check_decoder(PROTOCOL, data)
    for prefix in (b"$FRLIN,", b"$FRCMD,1,_SendMessage,,", b"$FRRET,1,", b"$GPRMC,", b"$FRPOS,"):
        check_next_frame(PROTOCOL, prefix + data)
        check_decoder(PROTOCOL, prefix + data)
        check_decoder(PROTOCOL, prefix + data, Session(unique_id="x", config={"checksum": "lenient"}))


@FUZZ
@given(token_mutations(ALL_FRAMES, TOKENS))
def test_fuzz_mutated_real_frames(frame: bytes) -> None:
    drain(PROTOCOL, frame)
    check_decoder(PROTOCOL, frame)
    check_decoder(PROTOCOL, frame, Session(unique_id="x", config={"checksum": "lenient"}))
    decoded = check_decoder(PROTOCOL, frame, Session(unique_id="x"))
    if decoded is not None:
        assert all(all_finite(p.attributes) for p in decoded.positions)


@fuzz_settings(150)
@given(real_frame_streams([f + b"\r\n" for f in ALL_FRAMES]), st.integers(0, 10_000))
def test_fuzz_streams_split_anywhere(stream: bytes, split: int) -> None:
    whole, _left = drain(PROTOCOL, stream)
    assert frames_fed_in_chunks(PROTOCOL, stream, split % (len(stream) + 1)) == whole
    for frame in whole:
        check_decoder(PROTOCOL, frame)


def test_sentence_helper_matches_independent_checksum() -> None:
    assert gpsgate.sentence("$FRVER,1,0,GpsGate Server 1.0") == nmea_line("FRVER,1,0,GpsGate Server 1.0")


def test_impossible_motion_values_are_dropped_not_the_fix() -> None:
    line = nmea_line("FRCMD,1,_SendMessage,,5223.88542,N,11440.45866,W,99999,900,999,220716,153507.00,1")
    (p,) = decode(line).positions
    assert (p.speed_kmh, p.course_deg, p.altitude_m) == (None, None, None)
    assert p.latitude == pytest.approx(52 + 23.88542 / 60)
