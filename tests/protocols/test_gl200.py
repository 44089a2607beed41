"""Queclink gl200: Traccar's vectors and framing, vendor sample frames, replies, robustness.

Independent fixtures: the HEX examples of Queclink's GV300CAN @Track Air Interface Protocol
V12.00 §4, the Protocol Pro CRC-8 test vector, worked example and heartbeat of the GL601 @Track
Protocol Pro V10 ("frames/report.html", "frames/heartbeat.html"), and GV500CNA captures from the
Traccar forum; expected values are read off the bytes by hand below. CRCs are computed bit by bit
here, replies are built from the frame's own fields.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import gl200_fields, keys
from protocols.gl200 import MAX_FRAME, PROTOCOL
from protocols.gl200_binary import crc8
from protocols.model import Decoded, DecodeError, Position, Session
from tests.protocols.fuzz import (
    all_finite,
    check_decoder,
    check_every_split,
    check_next_frame,
    chunk_mutations,
    drain,
    fuzz_settings,
    real_frame_streams,
    real_frames,
    token_mutations,
)
from tests.protocols.vectors import (
    frame_bytes,
    frame_vectors_for,
    frames_of,
    replay_method,
    vectors_for,
)

VECTORS = vectors_for("gl200")
FRAME_VECTORS = frame_vectors_for("gl200")
ALL = [v for items in VECTORS.values() for v in items]
BY_ID = {v["id"]: v for v in ALL}
ALL_FRAMES = real_frames(VECTORS)
FIXED_NOW = datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC)
CELL_550B_B969 = {"mcc": 460, "mnc": 0, "lac": 0x550B, "cid": 0xB969, "rssi": None}


def decode(frame: bytes | str, **config: object) -> Decoded:
    raw = frame.encode("latin-1") if isinstance(frame, str) else frame
    return PROTOCOL.decode(raw, Session(config=config))


def one(frame: bytes | str, **config: object) -> Position:
    decoded = decode(frame, **config)
    assert len(decoded.positions) == 1, decoded
    return decoded.positions[0]


def crc16_ccitt_false(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        for bit in range(7, -1, -1):
            top = (crc >> 15) ^ ((byte >> bit) & 1)
            crc = ((crc << 1) & 0xFFFF) ^ (0x1021 if top else 0)
    return crc


def crc8_pro(data: bytes) -> int:
    crc = 0xFF
    for byte in data:
        for bit in range(7, -1, -1):
            top = (crc >> 7) ^ ((byte >> bit) & 1)
            crc = ((crc << 1) & 0xFF) ^ (0x31 if top else 0)
    return crc


def luhn_ok(digits: str) -> bool:
    total = 0
    for k, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if k % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


# --- Traccar's decoder vectors ------------------------------------------------------------------


def test_vector_count() -> None:
    assert sorted(VECTORS) == ["testDecode"]
    assert len(ALL) == 199
    assert sum(v["encoding"] == "hex" for v in ALL) == 8


@pytest.mark.parametrize("method", sorted(VECTORS))
def test_traccar_vectors(method: str) -> None:
    results = replay_method(PROTOCOL, VECTORS[method])
    assert len(results) == len(VECTORS[method])


def test_text_frames_name_the_device_on_decoded_and_positions() -> None:
    checked = 0
    for v in ALL:
        if v["encoding"] != "ascii":
            continue
        fields = v["frame"].rstrip("$").split(",")
        wire_id = fields[1] if len(fields[1]) > 10 else fields[2]  # GT300 dialect: no version
        decoded = decode(frame_bytes(v))
        assert decoded.unique_id == wire_id, v["id"]
        for p in decoded.positions:
            assert p.unique_id == wire_id, v["id"]
            checked += 1
    assert checked > 190


def test_hex_ids_are_imei_digit_pairs() -> None:
    # GV300CAN §2.6: "each 2 digits are encoded into one byte as an integer".
    f = frame_bytes(BY_ID["gl200binary-005"])
    raw = f[16:24]
    imei = "".join(str(b).zfill(2) for b in raw[:7]) + str(raw[7])
    assert imei == "865084030003675" and luhn_ok(imei)
    decoded = decode(f)
    assert decoded.unique_id == imei
    assert {p.unique_id for p in decoded.positions} == {imei}


def test_hex_frame_with_a_device_name_names_no_device() -> None:
    # Report mask bit 6 set: the 8 bytes are "gb100-Do", not an IMEI.
    decoded = decode(frame_bytes(BY_ID["gl200binary-004"]))
    assert decoded.unique_id is None and decoded.positions


def test_buffered_reports_are_archived() -> None:
    for v in ALL:
        f = frame_bytes(v)
        archived = f.startswith((b"+BUFF:", b"+BSP", b"+BVT", b"+BNF", b"-\x00"))
        for p in decode(f).positions:
            assert p.attributes.get(keys.ARCHIVE, False) is archived, v["id"]


# --- framing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(FRAME_VECTORS)))
def test_traccar_frame_vectors(index: int) -> None:
    v = FRAME_VECTORS[index]
    frames = frames_of(PROTOCOL, bytes.fromhex(v["input_hex"]))
    assert frames, v["source"]
    assert frames[0].hex() == v["expected_frame_hex"], v["source"]


def test_frame_vectors_present() -> None:
    assert len(FRAME_VECTORS) == 4


TEXT_FRI = (
    b"+RESP:GTFRI,060100,135790246811220,,,00,1,1,4.3,92,70.0,121.354335,31.222073,20090214013254,"
    b"0460,0000,18d8,6141,00,2000.0,12345:12:34,,,80,210100,,,,20090214093254,11F0"
)
HEARTBEAT = b"+ACK:GTHBD,1A0401,135790246811220,,20100214093254,11F0"
GT300_TRI = (  # GT300 V4.02 §4.3: no version, IMEI first, NUL-terminated
    b"+RESP:GTTRI,135790246811220,1,0,0,1,4.3,92,70.0,121.354335,31.222073,20090101000000,0460,0000,"
    b"18d8,6141,00,11F0,0102070202"
)
HEX_EVT = frame_bytes(BY_ID["gl200binary-007"])
HEX_INF = frame_bytes(BY_ID["gl200binary-006"])
HEX_ACK = frame_bytes(BY_ID["gl200binary-008"])
HEX_COMPRESSED = frame_bytes(BY_ID["gl200binary-003"])
PRO = frame_bytes(BY_ID["gl200binary-001"])
HEX_LOGIN = bytes.fromhex(FRAME_VECTORS[1]["input_hex"])


def _wire(frame: bytes, end: bytes = b"$") -> bytes:
    """A frame as the device sends it: ASCII sentences end in '$' (NUL on GT300)."""
    return frame + end if frame.startswith((b"+RESP", b"+BUFF", b"+ACK:")) else frame


def test_every_frame_kind_is_cut_whole_from_a_stream() -> None:
    frames = [TEXT_FRI, HEX_EVT, HEARTBEAT, PRO, HEX_INF, GT300_TRI, HEX_ACK, HEX_LOGIN, HEX_COMPRESSED,
              TEXT_FRI]
    stream = b"".join(_wire(f, b"\x00" if f is GT300_TRI else b"$") for f in frames)
    assert frames_of(PROTOCOL, stream) == frames


def test_stream_split_at_every_byte() -> None:
    frames = [TEXT_FRI, HEX_EVT, HEARTBEAT, PRO, HEX_INF, GT300_TRI, HEX_ACK, HEX_LOGIN, TEXT_FRI]
    stream = b"".join(_wire(f, b"\x00" if f is GT300_TRI else b"$") for f in frames)
    assert check_every_split(PROTOCOL, stream, frames) == len(stream) + 1


def test_text_frame_drops_its_dollar_and_waits_for_it() -> None:
    assert PROTOCOL.next_frame(TEXT_FRI + b"$\r\n") == (TEXT_FRI, len(TEXT_FRI) + 1)
    assert PROTOCOL.next_frame(b"\r\n") == (None, 2)  # the line end some firmwares add: garbage
    for cut in range(len(TEXT_FRI)):
        assert PROTOCOL.next_frame(TEXT_FRI[:cut]) == (None, 0), cut


def test_partial_binary_frames_wait() -> None:
    for frame in (HEX_EVT, HEX_INF, HEX_ACK, PRO, HEX_LOGIN):
        for cut in range(1, len(frame)):
            assert PROTOCOL.next_frame(frame[:cut]) == (None, 0), (frame[:4], cut)


def test_garbage_without_a_frame_start_is_discarded() -> None:
    garbage = b"hello world 1234567890 \x00\xff\r\n"
    assert PROTOCOL.next_frame(garbage) == (None, len(garbage))
    assert frames_of(PROTOCOL, garbage + TEXT_FRI + b"$") == [TEXT_FRI]


def test_markers_that_start_no_frame_are_skipped() -> None:
    noise = b"+hello,-12.5,+\x01\x02, +RSPxx\r\n"
    assert frames_of(PROTOCOL, noise + _wire(TEXT_FRI) + HEX_EVT) == [TEXT_FRI, HEX_EVT]


def test_binary_frame_with_a_wrong_tail_is_resynced() -> None:
    broken = HEX_EVT[:-2] + b"XX"
    frame, used = PROTOCOL.next_frame(broken + _wire(TEXT_FRI))
    assert frame is None and used > 0
    assert frames_of(PROTOCOL, broken + _wire(TEXT_FRI)) == [TEXT_FRI]


def test_oversize_inputs_are_dropped_not_buffered() -> None:
    endless = b"+RESP:GTFRI," + b"1" * (MAX_FRAME + 10)
    frame, used = PROTOCOL.next_frame(endless)
    assert frame is None and used > 0
    assert frames_of(PROTOCOL, endless) == []
    # A binary header announcing more than MAX_FRAME bytes is not waited for.
    huge = b"+RSP\x07\x00\xfc\x1f\xbf" + (MAX_FRAME + 1).to_bytes(2, "big") + bytes(20)
    frame, used = PROTOCOL.next_frame(huge)
    assert frame is None and used > 0
    pro = b"+\x00" + (MAX_FRAME + 1).to_bytes(2, "big") + bytes(20)
    assert PROTOCOL.next_frame(pro)[1] > 0


def test_inf_length_offset_settled_by_crc() -> None:
    # GB100 has the length at offset 7; models with an INF expansion mask at 9 (GV300CAN §4.4).
    body = HEX_INF[4:7] + b"\xaa\xbb" + (len(HEX_INF) + 2).to_bytes(2, "big") + HEX_INF[9:-4]
    moved = HEX_INF[:4] + body + crc16_ccitt_false(body).to_bytes(2, "big") + b"\r\n"
    assert frames_of(PROTOCOL, moved + HEX_INF) == [moved, HEX_INF]


# --- replies --------------------------------------------------------------------------------------


def test_heartbeat_is_answered_with_its_version_and_count() -> None:
    fields = HEARTBEAT.decode().split(",")
    expected = f"+SACK:GTHBD,{fields[1]},{fields[-1]}$".encode()
    assert expected == b"+SACK:GTHBD,1A0401,11F0$"
    decoded = decode(HEARTBEAT)
    assert decoded.reply == expected and decoded.positions == []
    assert decoded.unique_id == "135790246811220"
    # One reply only, even with acknowledgements on (Traccar sends two).
    assert decode(HEARTBEAT, ack=True).reply == expected
    # Echoed byte for byte: a 10-digit version, a lowercase count.
    long = b"+ACK:GTHBD,8020090302,860201067200000,,20240101000000,00ff$"
    assert decode(long).reply == b"+SACK:GTHBD,8020090302,00ff$"


def test_heartbeat_without_a_count_is_not_answered() -> None:
    assert decode(b"+ACK:GTHBD,1A0401,135790246811220,,20100214093254,").reply is None


def test_reports_are_acknowledged_only_when_enabled() -> None:
    for v in ALL:
        if v["encoding"] != "ascii" or v["frame"].startswith("+ACK:GTHBD"):
            continue
        count = v["frame"].rstrip("$").split(",")[-1]
        assert decode(frame_bytes(v)).reply is None, v["id"]
        want = f"+SACK:{count}$".encode() if len(count) == 4 else None
        assert decode(frame_bytes(v), ack=True).reply == want, v["id"]


def test_truncated_sentence_without_count_gets_no_ack() -> None:
    v = BY_ID["gl200text-045"]  # cut short: "...,110000,,,,202306161834$", no count number
    assert v["frame"].endswith(",,,,202306161834$")
    decoded = decode(frame_bytes(v), ack=True)
    assert decoded.reply is None and decoded.positions
    no_count = b"+RESP:GTSOS,020102,135790246811220,,0,0,1,0,,,,,,,,,,,00,,20090214093254,$"
    assert decode(no_count, ack=True).reply is None


def test_protocol_pro_ack_echoes_the_count() -> None:
    count = int.from_bytes(PRO[-4:-2], "big")
    assert decode(PRO, ack=True).reply == f"+SACK:{count:04X}$".encode() == b"+SACK:010F$"
    assert decode(PRO).reply is None


def test_command_answers_become_results_and_rejections_are_ignored() -> None:
    p = one(frame_bytes(BY_ID["gl200text-183"]))  # +ACK:GTRTO,...,VER,FFFF,...
    assert p.attributes[keys.RESULT] == "+ACK:GTRTO" and p.latitude is None
    # Protocol Pro command rejection (GL601 V10 "frames/configuration.html"): no position, no ack.
    nack = b"+NACK:APN,123456789012345,C031,10,0,,0,012F,20210407101530,1234$"
    decoded = decode(nack, ack=True)
    assert decoded == Decoded(unique_id="123456789012345")


def test_hex_frames_get_no_reply() -> None:
    for frame in (HEX_EVT, HEX_INF, HEX_ACK, HEX_LOGIN):
        assert decode(frame, ack=True).reply is None


# --- checksums ------------------------------------------------------------------------------------


@pytest.mark.parametrize("vid", [v["id"] for v in ALL if v["encoding"] == "hex" and v["frame"][2:4] != "00"])
def test_hex_vectors_carry_a_valid_crc16(vid: str) -> None:
    f = frame_bytes(BY_ID[vid])
    assert crc16_ccitt_false(f[4:-4]) == int.from_bytes(f[-4:-2], "big")
    assert len(f) == int.from_bytes(f[9:11], "big") or f[:4] in (b"+INF", b"+ACK")


def test_hex_crc_mismatch_is_refused_unless_lenient() -> None:
    bad = HEX_EVT[:-4] + bytes([HEX_EVT[-4] ^ 0x01]) + HEX_EVT[-3:]
    with pytest.raises(DecodeError) as err:
        decode(bad)
    assert err.value.frame == bad
    assert decode(bad, checksum="lenient").positions == decode(HEX_EVT).positions


def test_pro_crc8_matches_the_vendor_test_vector() -> None:
    # GL601 Protocol Pro V10 "frames/report.html": CRC-8 of these bytes is FE.
    data = bytes.fromhex("2B 01 23 45 67 89 01 23 45 FE 01 06 01 02 01 FF 5D B3 8C 80")
    assert crc8_pro(data) == 0xFE
    assert crc8(data) == 0xFE
    f = PRO
    assert crc8_pro(f[:-2]) == f[-2]
    with pytest.raises(DecodeError):
        decode(f[:-2] + bytes([f[-2] ^ 0xFF]) + b"$")


# --- vendor sample frames -----------------------------------------------------------------------

# GV300CAN V12.00 §4.3: +RSP GTFRI, report mask 00FE0FBF (no external power, no analog input).
VENDOR_RSP = bytes.fromhex(
    "2B525350 07 00FE0FBF 005D 4B 0305 0318 564F5F0300520A04"
    " 00 01 00 21 18 10 01 01 000000 00AF 0043 06FB3FDE 01E5D3C8"
    " 07E3 04 18 02 09 39 0460 0000 550B B969 00"
    " 000000 0000000000 000000 000000000000 07E3 04 18 02 09 3A BBCD 1D7C 0D0A"
)
# GV300CAN V12.00 §4.5: +EVT GTIGN (type 13): four bytes of ignition-off duration before the count.
VENDOR_IGN = bytes.fromhex(
    "2B4556540D00FE5FBF00644B03050318564F5F0300520A0455000000000100221900001CC7010000000000F800"
    "6906FB404901E5D43B07E3041805103A04600000550BB96900000000000000000000000000000000000007E304"
    "18051102BE1D62A20D0A"
)


def test_vendor_hex_location_report() -> None:
    assert crc16_ccitt_false(VENDOR_RSP[4:-4]) == 0x1D7C and len(VENDOR_RSP) == 0x5D
    decoded = decode(VENDOR_RSP)
    assert decoded.unique_id == "867995030082104" and luhn_ok("867995030082104")
    (p,) = decoded.positions
    assert (p.longitude, p.latitude) == pytest.approx((117.129182, 31.839176))
    assert p.fix_time == datetime(2019, 4, 24, 2, 9, 57, tzinfo=UTC)
    assert p.device_time == datetime(2019, 4, 24, 2, 9, 58, tzinfo=UTC)
    assert (p.course_deg, p.altitude_m, p.speed_kmh, p.valid) == (175, 67, 0, True)
    assert p.attributes[keys.SATELLITES] == 8
    assert p.attributes[keys.IGNITION] is True and p.attributes[keys.MOTION] is False  # 0x21
    assert p.attributes[keys.CELL_TOWERS] == [CELL_550B_B969]


def test_vendor_hex_ignition_event_skips_its_duration() -> None:
    p = one(VENDOR_IGN)
    assert (p.longitude, p.latitude) == pytest.approx((117.129289, 31.839291))
    assert p.fix_time == datetime(2019, 4, 24, 5, 16, 58, tzinfo=UTC)
    assert (p.course_deg, p.altitude_m) == (248, 105)
    assert p.attributes[keys.BATTERY_PCT] == 0x55 and p.attributes[keys.SATELLITES] == 9


def test_hex_compressed_batch_is_one_second_per_point() -> None:
    positions = decode(HEX_COMPRESSED).positions
    assert len(positions) > 100
    steps = [(b.fix_time - a.fix_time).total_seconds() for a, b in itertools.pairwise(positions)]
    # A skipped "invalid or unchanged" point still takes its second.
    assert all(step >= 1 and step.is_integer() for step in steps)
    assert steps.count(1) > 0.9 * len(steps)
    # The first point is absolute: bits 2+1, speed 12, heading 9; then lon and lat, then time.
    f = HEX_COMPRESSED
    start = 29 + 2  # header fields of mask 00FC1FBF, then the u16 point count
    bits = int.from_bytes(f[start : start + 3], "big")
    lon = int.from_bytes(f[start + 3 : start + 7], "big", signed=True) / 1e6
    lat = int.from_bytes(f[start + 7 : start + 11], "big", signed=True) / 1e6
    when = int.from_bytes(f[start + 11 : start + 15], "big")
    assert bits >> 22 == 1
    first = positions[0]
    assert (first.longitude, first.latitude) == pytest.approx((lon, lat))
    assert first.speed_kmh == pytest.approx(((bits >> 9) & 0xFFF) / 10)
    assert first.fix_time == datetime.fromtimestamp(when, UTC)
    # A smooth track: no jump above 50 m between consecutive seconds.
    for a, b in itertools.pairwise(positions):
        assert abs(a.latitude - b.latitude) < 5e-4 and abs(a.longitude - b.longitude) < 5e-4  # type: ignore[operator]


# GL601 Protocol Pro V10 worked example: one record with data ids 2 (name), 81 (location), 85.
PRO_EXAMPLE = bytes.fromhex(
    "2B 00 00 4E 00 01 23 45 67 89 01 23 45 00 00 00 1B 00 00 37 64 F9 AA F6 00 00 03 00"
    " 02 0B 4D 79 49 6F 54 64 65 76 69 63 65 51 0F 09 07 3C 46 FF 01 DB 88 57 5F 17 9D A0"
    " 01 7D 55 0E 06 04 BC 8A 00 10 00 02 10 00 10 0C 13 03 01 23 4F 24"
)
PRO_HEARTBEAT = bytes.fromhex("2B 10 18 01 23 45 67 89 01 23 45 80 01 00 07 00 5E 36 2F 5A 10 F2 14 24")
# GV500CNA captures (Traccar forum, "gv500cna gl200 binary data id 82").
PRO_CAPTURE = bytes.fromhex(
    "2b000038000865134050947226820300030000216a908d67247f5000521619fa8b85e702ab64326a908d67"
    "0000050082000aa51da13d0424"
)


def test_pro_worked_example() -> None:
    assert len(PRO_EXAMPLE) == 0x4E and crc8_pro(PRO_EXAMPLE[:-2]) == 0x4F
    decoded = decode(PRO_EXAMPLE)
    assert decoded.unique_id == "123456789012345"  # 0123456789012345, leading nibble dropped
    (p,) = decoded.positions
    assert (p.longitude, p.latitude) == pytest.approx((0x073C46FF / 1e6, 0x01DB8857 / 1e6))
    assert p.fix_time == datetime.fromtimestamp(0x5F179DA0, UTC)
    assert p.speed_kmh == pytest.approx(38.1) and p.valid  # fix byte 09: state 0b10
    assert p.device_time == datetime.fromtimestamp(0x64F9AAF6, UTC)
    assert p.attributes["record_id"] == 3


def test_pro_heartbeat_names_the_device() -> None:
    assert crc8_pro(PRO_HEARTBEAT[:-2]) == 0x14
    assert frames_of(PROTOCOL, PRO_HEARTBEAT) == [PRO_HEARTBEAT]
    decoded = decode(PRO_HEARTBEAT)
    assert decoded.unique_id == "123456789012345" and decoded.positions == []
    assert decode(PRO_HEARTBEAT, ack=True).reply == b"+SACK:10F2$"


def test_pro_full_location_capture() -> None:
    assert crc8_pro(PRO_CAPTURE[:-2]) == PRO_CAPTURE[-2]
    p = one(PRO_CAPTURE)
    assert p.unique_id == "865134050947226" and luhn_ok(p.unique_id)
    assert (p.longitude, p.latitude) == pytest.approx((-91.519513, 44.786738))
    assert p.fix_time == datetime(2026, 8, 27, 19, 17, 59, tzinfo=UTC)
    assert (p.speed_kmh, p.hdop, p.course_deg, p.altitude_m) == pytest.approx((0.0, 0.5, 130, 272.5))
    assert p.attributes[keys.SATELLITES] == 29


def test_pro_buffered_records_are_archived() -> None:
    body = b"-" + PRO_CAPTURE[1:-2]
    buffered = body + bytes([crc8_pro(body)]) + b"$"
    (p,) = decode(buffered).positions
    assert p.attributes[keys.ARCHIVE] is True


# --- ASCII field decoding -------------------------------------------------------------------------


def test_vendor_fixed_report() -> None:
    # GV300CAN V12.00 §3.3.1 example.
    p = one("+RESP:GTFRI,4B0303,867995030082104,,,10,1,1,0.0,0,47.3,117.129238,31.838810,20190416081145,"
            "0460,0000,550B,B969,00,0.0,,,,0,210100,,,,20190416081146,0856$")
    assert (p.latitude, p.longitude, p.altitude_m) == pytest.approx((31.838810, 117.129238, 47.3))
    assert p.fix_time == datetime(2019, 4, 16, 8, 11, 45, tzinfo=UTC)
    assert p.attributes[keys.ODOMETER_M] == 0 and p.attributes[keys.BATTERY_PCT] == 0
    assert p.attributes[keys.IGNITION] is True and p.attributes[keys.MOTION] is False  # status 21...
    assert p.attributes[keys.CELL_TOWERS] == [CELL_550B_B969]
    assert p.attributes["type"] == "FRI"


def test_multi_position_report_with_the_cell_after_the_last_fix() -> None:
    # GL30MEU firmware 970208 sends fixes back to back and the cell once (traccar issue #5939).
    frame = ("+BUFF:GTFRI,970208,867963069900001,GL30MEU,0,0,3,1,27.4,75,475.0,16.372215,48.208327,"
             "20260702130741,1,30.2,49,476.7,16.372300,48.208482,20260702130742,1,33.3,32,476.9,16.372357,"
             "48.208598,20260702130743,0232,0001,A1B2,0001A2B4,13,0,4063,95,1,1,,20260702130743,0084$")
    positions = decode(frame).positions
    assert [p.fix_time.second for p in positions] == [41, 42, 43]
    assert [p.speed_kmh for p in positions] == [27.4, 30.2, 33.3]
    assert positions[-1].attributes[keys.BATTERY_PCT] == 95


def test_gtfri_battery_and_status_per_layout() -> None:
    # GV58LAU added a reserved field before the battery in 2026; the status anchors the tail.
    assert one(frame_bytes(BY_ID["gl200text-036"])).attributes[keys.BATTERY_PCT] == 100
    p = one(TEXT_FRI)
    assert p.attributes[keys.ENGINE_HOURS_S] == 12345 * 3600 + 12 * 60 + 34
    assert p.attributes[keys.ODOMETER_M] == 2_000_000 and p.attributes[keys.BATTERY_PCT] == 80


@pytest.mark.parametrize(("mask", "extra"), [("00", []), ("01", ["11"]), ("03", ["11", "2"]),
                                             ("0A", ["2"]), ("13", ["11", "2", "0"])])
def test_position_append_mask_is_hex(mask: str, extra: list[str]) -> None:
    # Bit 0 satellites, bit 1 GNSS trigger type, bit 4 jamming state (GV500CG V3.02 p.126).
    fields = ["+RESP:GTIGF", "6E0202", "868589060169789", "ra79", "145", "1", "0.0", "83", "532.2",
              "-70.616413", "-33.393457", "20240610201937", "0730", "0001", "333A", "00CFA301", mask,
              *extra, "00001:02:03", "12.5", "20240610201938", "3AE9"]
    p = one(",".join(fields) + "$")
    assert p.attributes.get(keys.SATELLITES) == (11 if int(mask, 16) & 1 else None)
    assert p.attributes[keys.ODOMETER_M] == 12500
    assert p.attributes[keys.ENGINE_HOURS_S] == 3723
    assert p.attributes[keys.IGNITION] is False


IGL = ("+RESP:GTIGL,{version},868446036599153,,,{report},1,2,0.0,0,151.0,114.015284,22.537202,"
       "20190823065816,0460,0001,253D,AEC3,,0.0,20190823145817,12C8$")


@pytest.mark.parametrize(("version", "report", "ignition"), [
    ("F1030A", "00", True), ("F1030A", "01", False),  # GV350M: 0 = ignition on
    ("BD0221", "00", False), ("BD0221", "01", True),  # CV200 says the opposite
    ("990101", "00", None),  # unknown model: no guess
])
def test_gtigl_ignition_polarity_depends_on_the_model(
    version: str, report: str, ignition: bool | None
) -> None:
    p = one(IGL.format(version=version, report=report))
    assert p.attributes.get(keys.IGNITION) is ignition


def test_model_setting_overrides_the_version_prefix() -> None:
    p = one(IGL.format(version="990101", report="00"), model="gv350m")
    assert p.attributes[keys.IGNITION] is True


def test_gtsos_and_harsh_driving_alarms() -> None:
    assert one(frame_bytes(BY_ID["gl200text-180"])).attributes[keys.ALARM] == "sos"
    for report, alarm in (("10", "hardBraking"), ("11", "hardAcceleration"), ("12", "hardCornering")):
        frame = f"+RESP:GTHBM,0F0100,135790246811220,,,{report},1,1,4.3,92,70.0,121.354335,31.222073," \
                "20090214013254,0460,0000,18d8,6141,00,2000.0,20090214093254,11F0$"
        assert one(frame).attributes[keys.ALARM] == alarm


def test_accuracy_zero_is_the_last_known_fix() -> None:
    p = one(frame_bytes(BY_ID["gl200text-079"]))  # GTIGF, accuracy 0
    assert p.latitude is not None and p.valid is False and p.hdop == 0


def test_status_reports_have_no_location_and_use_send_time() -> None:
    p = one(frame_bytes(BY_ID["gl200text-019"]))  # GTINF
    assert p.latitude is None and p.longitude is None and p.valid is False
    assert p.fix_time == datetime(2024, 11, 4, 16, 20, 9, tzinfo=UTC)
    assert p.attributes[keys.POWER_V] == pytest.approx(12.295)
    assert p.attributes["power2"] == pytest.approx(13.985)


def test_report_without_any_time_is_stamped_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gl200_fields, "now", lambda: FIXED_NOW)
    p = one("+RESP:GTSOS,020102,135790246811220,,0,0,1,1,,,,,,,0460,0000,18d8,6141,00,,,11F0$")
    assert p.fix_time == FIXED_NOW and p.latitude is None
    assert p.attributes[keys.ALARM] == "sos"


def test_one_wire_temperature_is_signed_sixteenths() -> None:
    p = one(frame_bytes(BY_ID["gl200text-054"]))
    assert p.attributes["temp1_c"] == pytest.approx(-30 * 0.0625)  # FFE2
    assert p.attributes["temp2_c"] == pytest.approx(-56 * 0.0625)  # FFC8


def test_can_fuel_level_keeps_its_unit() -> None:
    p = one(frame_bytes(BY_ID["gl200text-018"]))
    assert p.attributes[keys.FUEL_PCT] == pytest.approx(94.8)  # "P94.80"
    assert p.attributes["ad_blue_level"] == pytest.approx(100.0)
    assert p.latitude == pytest.approx(40.481997)  # the GNSS block read from the end


def test_can_rpm_comes_before_speed() -> None:
    # GV300CAN V12.00 §3.3.8 example: mask bit 5 (RPM 1705) is sent before bit 4 (speed 40 km/h).
    p = one("+RESP:GTCAN,4B0305,867995030082104,gv300can,00,1,C03FFFFF,,2,I6782,50.56,1705,40,55,,"
            "L87.40,3960,32,860.64,755.43,105.21,7436.00,4365,BF,FFFF,3F,3F,6.38,21.61,0,0.0,0,1.4,"
            "117.1299493,31.839403,20190418055225,0460,0000,550B,B969,00,20190418055227,0DC0$")
    assert p.attributes[keys.RPM] == 1705 and p.attributes[keys.OBD_SPEED_KMH] == 40
    assert p.attributes["coolant_temp"] == 55 and p.attributes["throttle"] == 32
    assert p.attributes[keys.FUEL] == pytest.approx(87.4)  # "L": litres
    assert p.attributes["range"] == 396_000  # hectometres
    assert p.attributes[keys.ENGINE_HOURS_S] == pytest.approx(860.64 * 3600)
    assert "obd_odometer" not in p.attributes  # "I6782" counts impulses, not distance
    assert (p.latitude, p.longitude) == pytest.approx((31.839403, 117.1299493))
    assert p.attributes[keys.CELL_TOWERS] == [CELL_550B_B969]


def test_device_status_with_eio100_bytes() -> None:
    # 10 digits: EIO100 input and output bytes come first; motion, inputs, outputs stay rightmost.
    frame = TEXT_FRI.replace(b",210100,", b",FF00220403,")
    p = one(frame)
    assert p.attributes[keys.IGNITION] is True and p.attributes[keys.MOTION] is True
    assert p.attributes[keys.INPUT] == 0x04 and p.attributes["in2"] is True
    assert p.attributes[keys.OUTPUT] == 0x03 and p.attributes["out1"] is p.attributes["out2"] is True


def test_obd_report_follows_its_mask() -> None:
    p = one(frame_bytes(BY_ID["gl200text-132"]))  # mask 19FFFF: OBD protocol and odometer, no cell
    assert p.attributes[keys.RPM] == 799 and p.attributes[keys.OBD_SPEED_KMH] == 36
    assert p.attributes["obd_odometer"] == 53_557_000
    assert p.latitude == pytest.approx(39.832588)


def test_nan_fuel_consumption_is_left_out() -> None:
    for vid in ("gl200text-091", "gl200text-131"):
        for p in decode(frame_bytes(BY_ID[vid])).positions:
            assert all_finite(p.attributes) and "fuel_consumption" not in p.attributes


def test_dollar_is_optional_on_decode_and_udp_decodes_like_tcp() -> None:
    with_dollar = decode(TEXT_FRI + b"$").positions
    assert decode(TEXT_FRI).positions == with_dollar
    assert PROTOCOL.decode(TEXT_FRI, Session(transport="udp")).positions == with_dollar


@pytest.mark.parametrize("frame", [
    b"",
    b"hello",
    b"+RESP:GTFRI",
    b"+RESP:GTFRI,060100,not-an-imei,,",
    b"+RESP:GTFRI,060100,135790246811220,,,00,1,1,4.3,92,70.0,121.354335,95.5,20090214013254,0460,0000,"
    b"18d8,6141,00,,,,,,,,,,20090214093254,11F0",  # latitude 95.5
    HEX_EVT[:40],
    PRO[:30],
])
def test_malformed_frames_raise_decode_error(frame: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        PROTOCOL.decode(frame, Session())
    assert err.value.frame == frame


# --- fuzzing --------------------------------------------------------------------------------------

FUZZ = fuzz_settings(400)
TOKENS = [b",", b"$", b"+", b".", b"-", b"9", b"F", b"\x00", b"\r\n", b",,", b":GT", b"\xff"]


def _check_framer(buffer: bytes) -> None:
    _, used = check_next_frame(PROTOCOL, buffer)
    if buffer and buffer[0] not in b"+-":
        assert used > 0  # garbage is never kept
    drain(PROTOCOL, buffer)


def _check_decode(frame: bytes) -> None:
    for config in ({}, {"ack": True, "checksum": "lenient"}):
        decoded = check_decoder(PROTOCOL, frame, Session(config=config))
        if decoded is not None:
            for p in decoded.positions:
                assert all_finite(p.attributes), frame


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _check_framer(data)
    _check_decode(data)
    for marker in (b"+RESP:GTFRI,", b"+RSP\x07", b"+EVT", b"+INF", b"+ACK", b"+\x00", b"-\x00", b"+\x10"):
        _check_framer(marker + data)
        _check_decode(marker + data)


@FUZZ
@given(token_mutations(ALL_FRAMES, TOKENS))
def test_fuzz_mutated_real_frames(frame: bytes) -> None:
    _check_framer(frame)
    _check_decode(frame)


@FUZZ
@given(chunk_mutations(ALL_FRAMES, b"0123456789,.-$+ABCDEF"))
def test_fuzz_chunk_mutated_frames(frame: bytes) -> None:
    _check_framer(frame)
    _check_decode(frame)


@FUZZ
@given(real_frame_streams([_wire(f) for f in ALL_FRAMES]))
def test_fuzz_streams_of_real_frames(stream: bytes) -> None:
    frames, _ = drain(PROTOCOL, stream)
    for frame in frames:
        _check_decode(frame)
