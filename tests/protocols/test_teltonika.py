"""Teltonika: Traccar's decoder and framing vectors, Teltonika's own wiki samples, exact acks,
packets built here from the spec, and fuzzing.

The builders below follow the Teltonika wiki ("Codec" and "Data Sending Protocols" pages) with
their own bit-by-bit CRC, so they check the module rather than repeat it.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import keys, teltonika
from protocols.base import Protocol
from protocols.model import Decoded, DecodeError, Position, Session
from tests.protocols.fuzz import (
    all_finite,
    check_decoder,
    check_every_split,
    drain,
    fuzz_settings,
    real_frame_streams,
    token_mutations,
)
from tests.protocols.vectors import (
    VECTORS as VECTORS_PATH,
)
from tests.protocols.vectors import (
    Vector,
    frame_bytes,
    frame_vectors_for,
    frames_fed_in_chunks,
    frames_of,
    replay_method,
    session_for,
    vectors_for,
)

P: Protocol = teltonika.PROTOCOL
VECTORS = vectors_for("teltonika")
ALL = [v for items in VECTORS.values() for v in items]
BY_ID = {v["id"]: v for v in ALL}
LENIENT_CONFIG = {"checksum": "lenient"}


def vectors_for_all(protocol: str) -> list[Vector]:
    """Also the vectors Traccar disabled (``vectors_for`` leaves them out)."""
    return [v for v in json.loads(VECTORS_PATH.read_text()) if v["protocol"] == protocol]


def crc_ibm(data: bytes) -> int:
    """CRC-16/IBM (ARC), bit by bit: reflected 0x8005 (0xA001), init 0, no final xor."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def tcp_packet(data: bytes) -> bytes:
    """Preamble, data length, codec data, CRC over the codec data in 4 bytes."""
    return bytes(4) + len(data).to_bytes(4, "big") + data + crc_ibm(data).to_bytes(4, "big")


def avl_packet(codec: int, records: list[bytes]) -> bytes:
    n = len(records)
    return tcp_packet(bytes([codec, n]) + b"".join(records) + bytes([n]))


# Field widths per codec (wiki): event id, IO id and IO count sizes; codec 16 adds a generation
# type byte after the event id and keeps 1-byte counts.
WIDTHS = {0x08: (1, 1, 1), 0x8E: (2, 2, 2), 0x10: (2, 2, 1)}


def record(
    codec: int,
    *,
    ms: int = 1_560_161_086_000,
    lat: float = 54.6872,
    lon: float = 25.2797,
    altitude: int = 112,
    angle: int = 90,
    sats: int = 9,
    speed: int = 57,
    event: int = 0,
    priority: int = 1,
    io: dict[int, int] | None = None,  # id -> value; the width comes from ``io_widths``
    io_widths: dict[int, int] | None = None,
    variable: dict[int, bytes] | None = None,
) -> bytes:
    event_w, id_w, count_w = WIDTHS[codec]
    out = struct.pack(">QBiihHBH", ms, priority, round(lon * 1e7), round(lat * 1e7), altitude, angle,
                      sats, speed)
    out += event.to_bytes(event_w, "big")
    if codec == 0x10:
        out += b"\x05"  # generation type: on change
    io = io or {}
    widths = io_widths or {}
    groups: dict[int, list[bytes]] = {1: [], 2: [], 4: [], 8: []}
    for io_id, value in io.items():
        width = widths.get(io_id, 1)
        groups[width].append(io_id.to_bytes(id_w, "big") + value.to_bytes(width, "big", signed=value < 0))
    total = len(io) + len(variable or {})
    out += total.to_bytes(count_w, "big")
    for width in (1, 2, 4, 8):
        out += len(groups[width]).to_bytes(count_w, "big") + b"".join(groups[width])
    if codec == 0x8E:
        items = (variable or {}).items()
        out += len(items).to_bytes(2, "big")
        out += b"".join(i.to_bytes(2, "big") + len(v).to_bytes(2, "big") + v for i, v in items)
    return out


def decode(frame: bytes, **config: object) -> Decoded:
    return P.decode(frame, Session(config=config))


def one(frame: bytes, **config: object) -> Position:
    decoded = decode(frame, **config)
    assert len(decoded.positions) == 1
    return decoded.positions[0]


# --- Traccar decoder vectors ---------------------------------------------------------------------


def _declared_ok(frame: bytes) -> bool:
    """A TCP AVL frame whose length field and CRC agree with its bytes."""
    length = int.from_bytes(frame[4:8], "big")
    return len(frame) == length + 12 and crc_ibm(frame[8:-4]) == int.from_bytes(frame[-4:], "big")


AVL = [v for v in ALL if v["transport"] == "tcp" and frame_bytes(v)[:4] == bytes(4)]
HAND_EDITED = [v["id"] for v in AVL if not _declared_ok(frame_bytes(v))]
GOOD = [v for v in ALL if v["id"] not in HAND_EDITED]


def test_vector_count() -> None:
    assert len(ALL) == 51  # the 52nd, Traccar's connectionless test, is disabled there
    assert sorted(VECTORS) == ["testDecode", "testDecodePhoto"]


def test_nine_traccar_frames_were_edited_by_hand() -> None:
    # Traccar never checks the CRC or the data length; these test frames had times, codecs or
    # counts edited (or were cut) without fixing either.
    assert HAND_EDITED == [
        "teltonika-015", "teltonika-021", "teltonika-023", "teltonika-029", "teltonika-034",
        "teltonika-037", "teltonika-041", "teltonika-050", "teltonika-051",
    ]


def _lenient(frame: bytes, session: Session) -> Decoded:
    session.config = {**session.config, **LENIENT_CONFIG}
    return teltonika.decode(frame, session)


LENIENT = dataclasses.replace(P, decode=_lenient)


@pytest.mark.parametrize("method", sorted(VECTORS))
def test_traccar_vectors_decoded_as_traccar_does(method: str) -> None:
    """Every vector passes the harness with the CRC check relaxed (``checksum: lenient``)."""
    assert len(replay_method(LENIENT, VECTORS[method])) == len(VECTORS[method])


@pytest.mark.parametrize("method", sorted(VECTORS))
def test_traccar_vectors_with_crc_verified(method: str) -> None:
    """Default settings: the hand-edited frames are refused (no ack: the device resends), every
    other one passes the harness."""
    items = VECTORS[method]
    replay_method(P, [v for v in items if v["id"] not in HAND_EDITED])
    for v in items:
        if v["id"] in HAND_EDITED:
            with pytest.raises(DecodeError):
                P.decode(frame_bytes(v), Session())


def test_traccar_connectionless_vector() -> None:
    """Traccar disabled its UDP test; we decode it, named by the IMEI it carries."""
    (v,) = [v for v in vectors_for_all("teltonika") if v["test_method"] == "testDecodeConnectionless"]
    f = frame_bytes(v)
    packet_id, avl_id = f[2:4], f[5]
    imei = f[8 : 8 + int.from_bytes(f[6:8], "big")].decode()
    decoded = P.decode(f, Session(transport="udp"))
    assert decoded.unique_id == imei == "357454072713975"
    assert decoded.reply == b"\x00\x05" + packet_id + b"\x01" + bytes([avl_id, 1])
    (p,) = decoded.positions
    assert p.unique_id == imei
    rec = 8 + len(imei) + 2  # past codec id and record count
    ms, _prio, lon, lat = struct.unpack(">QBii", f[rec : rec + 17])
    assert p.fix_time == datetime.fromtimestamp(ms / 1000, UTC)
    assert (p.latitude, p.longitude) == pytest.approx((lat / 1e7, lon / 1e7))


# --- framing ---------------------------------------------------------------------------------------

FRAME_VECTORS_T = frame_vectors_for("teltonika")


def test_frame_vectors_present() -> None:
    assert len(FRAME_VECTORS_T) == 2


@pytest.mark.parametrize("fv", FRAME_VECTORS_T, ids=[str(i) for i in range(len(FRAME_VECTORS_T))])
def test_frame_vectors(fv: Vector) -> None:
    frame, used = P.next_frame(bytes.fromhex(fv["input_hex"]))
    assert frame == bytes.fromhex(fv["expected_frame_hex"])
    assert used == len(frame)


HANDSHAKE = frame_bytes(BY_ID["teltonika-001"])
STREAM_FRAMES = [
    b"\xff",
    HANDSHAKE,
    frame_bytes(BY_ID["teltonika-002"]),  # 8E, two records
    b"\xff",
    frame_bytes(BY_ID["teltonika-009"]),  # codec 16
    frame_bytes(BY_ID["teltonika-017"]),  # codec 12 answer
    frame_bytes(BY_ID["teltonika-006"]),  # codec 13
    frame_bytes(BY_ID["teltonika-038"]),  # codec 7
    frame_bytes(BY_ID["teltonika-019"]),  # codec 8
]
STREAM = b"".join(STREAM_FRAMES)


def test_stream_whole_cuts_each_frame() -> None:
    assert frames_of(P, STREAM) == STREAM_FRAMES


def test_stream_split_anywhere_cuts_the_same() -> None:
    assert check_every_split(P, STREAM, STREAM_FRAMES) == len(STREAM) + 1


@pytest.mark.parametrize("vid", [v["id"] for v in GOOD if v["transport"] == "tcp"])
def test_each_vector_frames_as_itself(vid: str) -> None:
    f = frame_bytes(BY_ID[vid])
    assert frames_of(P, f + HANDSHAKE) == [f, HANDSHAKE]


def test_waits_for_the_declared_length() -> None:
    f = frame_bytes(BY_ID["teltonika-027"])  # a 1037-byte packet
    for cut in (1, 2, 4, 7, 8, 12, 500, len(f) - 1):
        assert P.next_frame(f[:cut]) == (None, 0)
    assert P.next_frame(f + b"\x00") == (f, len(f))


def test_garbage_without_frame_start_is_discarded() -> None:
    junk = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    frames, left = drain(P, junk)
    assert frames == [] and left == b""
    assert frames_of(P, junk + HANDSHAKE) == [HANDSHAKE]


def test_resyncs_after_garbage_with_zero_bytes() -> None:
    f = frame_bytes(BY_ID["teltonika-019"])
    noise = b"\x00\x07ab\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02zz\x00"
    assert frames_of(P, noise + f + HANDSHAKE) == [f, HANDSHAKE]


@pytest.mark.parametrize("length", [0, 1, 2, teltonika.MAX_DATA + 1, 0x7FFFFFFF, 0xFFFFFFFF])
def test_absurd_data_length_is_not_buffered(length: int) -> None:
    header = bytes(4) + length.to_bytes(4, "big")
    frame, used = P.next_frame(header + b"\x08\x01")
    assert frame is None and used > 0


def test_largest_packet_fits_max_frame() -> None:
    header = bytes(4) + teltonika.MAX_DATA.to_bytes(4, "big")
    assert P.next_frame(header) == (None, 0)
    assert P.max_frame >= teltonika.MAX_DATA + 12
    assert P.max_frame <= 70_000  # the gateway buffers up to this per connection


def test_handshake_with_non_digits_or_absurd_length_is_discarded() -> None:
    assert P.next_frame(b"\x00\x0f12345abc") == (None, 1)
    assert P.next_frame(b"\x00\xf0" + b"1" * 240) == (None, 1)
    assert P.next_frame(b"\x00\x0f1234") == (None, 0)  # digits so far: wait


def test_udp_datagrams_are_decoded_whole() -> None:
    assert P.udp_whole_datagram and P.transports == ("tcp", "udp") and P.default_port == 5027
    assert P.name == "teltonika"


# --- replies -------------------------------------------------------------------------------------


def test_handshake_accept_and_refuse_bytes() -> None:
    decoded = decode(HANDSHAKE)
    assert decoded.unique_id == "123456789012345"
    assert decoded.reply == b"\x01" and decoded.reject_reply == b"\x00"
    assert decoded.positions == []


@pytest.mark.parametrize("bad", [b"\x00\x0f1234", b"\x00\x0312345", b"\x00\x03a1b", b"\x00\x01"])
def test_bad_handshakes_raise(bad: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(bad)


def test_ping_byte_is_ignored() -> None:
    assert decode(b"\xff") == Decoded()


@pytest.mark.parametrize("vid", [v["id"] for v in AVL if v["id"] not in HAND_EDITED])
def test_tcp_ack_is_the_record_count(vid: str) -> None:
    f = frame_bytes(BY_ID[vid])
    decoded = P.decode(f, session_for(BY_ID[vid]))
    if f[8] in (0x0C, 0x0D, 0x0E):  # GPRS messages: answers to our commands, not acked
        assert decoded.reply is None
    else:
        assert decoded.reply == bytes(3) + f[9:10]


def test_wiki_codec8_example() -> None:
    # Teltonika wiki, Codec 8, first example: one record, no fix, IO 21/1/66/241/78.
    f = bytes.fromhex(
        "000000000000003608010000016B40D8EA30010000000000000000000000000000000105021503010101425E0F"
        "01F10000601A014E0000000000000000010000C7CF"
    )
    decoded = decode(f)
    assert decoded.reply == bytes.fromhex("00000001")
    (p,) = decoded.positions
    assert p.fix_time == datetime(2019, 6, 10, 10, 4, 46, tzinfo=UTC)
    assert p.latitude is None and p.valid is False  # 0/0, no satellites
    assert p.attributes[keys.RSSI] == 3
    assert p.attributes["in1"] is True
    assert p.attributes[keys.POWER_V] == pytest.approx(24.079)
    assert p.attributes["operator"] == 24602
    assert keys.DRIVER_UNIQUE_ID not in p.attributes  # iButton 0: no card
    assert p.attributes[keys.EVENT] == 1 and p.attributes["priority"] == 1


def test_wiki_codec8e_example() -> None:
    f = bytes.fromhex(
        "000000000000004A8E010000016B412CEE000100000000000000000000000000000000010005000100010100"
        "010011001D00010010015E2C880002000B000000003544C87A000E000000001DD7E06A00000100002994"
    )
    decoded = decode(f)
    assert decoded.reply == bytes.fromhex("00000001")
    (p,) = decoded.positions
    assert p.fix_time == datetime(2019, 6, 10, 11, 36, 32, tzinfo=UTC)
    assert p.attributes["in1"] is True
    assert p.attributes["axis_x"] == 29  # IO 0x11
    assert p.attributes[keys.ODOMETER_M] == 22949000
    assert p.attributes[keys.ICCID] == str(0x3544C87A)
    assert p.attributes["io14"] == 0x1DD7E06A


def test_wiki_udp_example_ack() -> None:
    f = bytes.fromhex(
        "003DCAFE0105000F33353230393330383634303336353508010000016B4F815B3001000000000000000000000000"
        "0000000103021503010101425DBC000001"
    )
    decoded = P.decode(f, Session(transport="udp"))
    assert decoded.reply == bytes.fromhex("0005CAFE010501")
    assert decoded.unique_id == "352093086403655"
    assert [p.unique_id for p in decoded.positions] == ["352093086403655"]


def udp_datagram(packet_id: int, avl_id: int, imei: bytes, codec_data: bytes) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"\x01" + bytes([avl_id]) + len(imei).to_bytes(2, "big")
    body += imei + codec_data
    return len(body).to_bytes(2, "big") + body


@given(st.integers(0, 0xFFFF), st.integers(0, 255), st.integers(1, 5))
def test_udp_ack_echoes_packet_ids_and_count(packet_id: int, avl_id: int, n: int) -> None:
    data = bytes([0x08, n]) + record(0x08) * n + bytes([n])
    decoded = P.decode(udp_datagram(packet_id, avl_id, b"356307042441013", data), Session(transport="udp"))
    assert decoded.reply == struct.pack(">HHBBB", 5, packet_id, 1, avl_id, n)
    assert len(decoded.positions) == n


def test_udp_length_mismatch_is_refused_unless_lenient() -> None:
    data = bytes([0x08, 1]) + record(0x08) + b"\x01"
    f = udp_datagram(1, 2, b"356307042441013", data)
    bad = b"\x00\x10" + f[2:]
    with pytest.raises(DecodeError):
        P.decode(bad, Session(transport="udp"))
    assert len(P.decode(bad, Session(transport="udp", config=LENIENT_CONFIG)).positions) == 1
    with pytest.raises(DecodeError):
        P.decode(udp_datagram(1, 2, b"", data), Session(transport="udp"))


def test_crc_check_value_and_wiki_command() -> None:
    assert teltonika.crc16_ibm(b"123456789") == 0xBB3D  # CRC-16/ARC check value
    # Teltonika wiki, Codec 12: the "getinfo" command sent to the device.
    assert teltonika.encode_command("getinfo") == bytes.fromhex(
        "000000000000000F0C010500000007676574696E666F0100004312"
    )


@given(st.binary(max_size=300))
def test_crc_matches_the_bitwise_one(data: bytes) -> None:
    assert teltonika.crc16_ibm(data) == crc_ibm(data)


def test_ack_helpers() -> None:
    assert teltonika.tcp_ack(14) == b"\x00\x00\x00\x0e"
    assert teltonika.udp_ack(0xCAFE, 5, 1) == bytes.fromhex("0005CAFE010501")


# --- integrity ---------------------------------------------------------------------------------


def test_bad_crc_is_refused_unless_lenient() -> None:
    f = bytearray(avl_packet(0x08, [record(0x08)]))
    f[-1] ^= 0x01
    with pytest.raises(DecodeError, match="CRC"):
        decode(bytes(f))
    assert decode(bytes(f), **LENIENT_CONFIG).reply == tcp_ack_bytes(1)


def tcp_ack_bytes(n: int) -> bytes:
    return struct.pack(">I", n)


def test_count_mismatch_and_trailing_bytes_are_refused() -> None:
    rec = record(0x08)
    with pytest.raises(DecodeError, match="counts"):
        decode(tcp_packet(b"\x08\x01" + rec + b"\x02"))
    with pytest.raises(DecodeError, match="after the records"):
        decode(tcp_packet(b"\x08\x01" + rec + b"\x01\x00"))
    with pytest.raises(DecodeError, match="truncated"):
        decode(tcp_packet(b"\x08\x02" + rec + b"\x02"))


def test_unknown_codec_is_refused() -> None:
    with pytest.raises(DecodeError, match="codec"):
        decode(tcp_packet(b"\x42\x00\x00"))


# --- record fields ---------------------------------------------------------------------------------


@given(
    st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)),
    st.floats(-89.9, 89.9),
    st.floats(-179.9, 179.9),
    st.integers(0, 400),
    st.integers(0, 359),
    st.integers(-400, 9000),
    st.integers(1, 30),
    st.sampled_from([0x08, 0x8E, 0x10]),
)
@fuzz_settings(150)
def test_record_fields(t: datetime, lat: float, lon: float, speed: int, angle: int, alt: int,
                       sats: int, codec: int) -> None:
    ms = int(t.timestamp() * 1000)
    p = one(avl_packet(codec, [record(codec, ms=ms, lat=lat, lon=lon, speed=speed, angle=angle,
                                      altitude=alt, sats=sats, event=240)]))
    assert p.fix_time == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    assert p.device_time == p.fix_time
    located = bool(round(lat * 1e7) or round(lon * 1e7))
    if located:
        assert p.latitude == pytest.approx(round(lat * 1e7) / 1e7, abs=1e-9)
        assert p.longitude == pytest.approx(round(lon * 1e7) / 1e7, abs=1e-9)
    assert p.speed_kmh == speed  # the wire is km/h already
    assert p.course_deg == angle and p.altitude_m == alt
    assert p.valid is located
    assert p.attributes[keys.SATELLITES] == sats and p.attributes[keys.EVENT] == 240


def test_no_satellites_is_an_invalid_fix_that_keeps_its_location() -> None:
    p = one(avl_packet(0x08, [record(0x08, sats=0)]))
    assert p.valid is False and p.latitude == pytest.approx(54.6872)


def test_zero_location_is_a_report_without_location() -> None:
    p = one(avl_packet(0x08, [record(0x08, lat=0, lon=0, sats=5)]))
    assert p.valid is False and p.latitude is None and p.longitude is None


def test_well_known_io_elements() -> None:
    io = {239: 1, 240: 0, 66: 12_345, 67: 4_012, 113: 87, 16: 1_234_567, 21: 4, 181: 12, 182: 9,
          78: 0x0100000A2B3C4D01, 199: 250, 1: 1, 179: 0, 17: -15, 9999: 7}
    widths = {66: 2, 67: 2, 16: 4, 181: 2, 182: 2, 78: 8, 199: 4, 17: 2, 9999: 2}
    p = one(avl_packet(0x8E, [record(0x8E, io=io, io_widths=widths)]))
    a = p.attributes
    assert a[keys.IGNITION] is True and a[keys.MOTION] is False
    assert a[keys.POWER_V] == pytest.approx(12.345) and a[keys.BATTERY_V] == pytest.approx(4.012)
    assert a[keys.BATTERY_PCT] == 87 and a[keys.ODOMETER_M] == 1_234_567
    assert a[keys.RSSI] == 4 and a[keys.PDOP] == pytest.approx(1.2) and p.hdop == pytest.approx(0.9)
    # iButton: sent least significant byte first, shown as a reader prints it.
    assert a[keys.DRIVER_UNIQUE_ID] == "014D3C2B0A000001"
    assert a[keys.TRIP_ODOMETER_M] == 250 and a["in1"] is True and a["out1"] is False
    assert a["axis_x"] == -15
    assert a["io9999"] == 7


def test_alarms_join() -> None:
    io = {236: 1, 253: 2, 247: 1, 252: 0}
    a = one(avl_packet(0x8E, [record(0x8E, io=io)])).attributes
    assert a[keys.ALARM].split(",") == ["general", "hardBraking", "accident"]


def test_element_of_an_unexpected_width_stays_raw() -> None:
    # 113 is a 1-byte battery level on FMB devices; a 4-byte 113 is something else.
    a = one(avl_packet(0x08, [record(0x08, io={113: 70_000}, io_widths={113: 4})])).attributes
    assert keys.BATTERY_PCT not in a and a["io113"] == 70_000


def test_model_families() -> None:
    rec = record(0x8E, io={113: 55, 84: 1234, 389: 17, 701: -250},
                 io_widths={84: 2, 389: 4, 701: 2})
    f = avl_packet(0x8E, [rec])
    fmb = one(f).attributes  # no model configured: the FMB table
    assert fmb[keys.BATTERY_PCT] == 55 and fmb[keys.FUEL] == pytest.approx(123.4)
    assert fmb["io389"] == 17 and fmb["io701"] == -250 & 0xFFFF
    assert one(f, model="FMB003").attributes["obd_odometer"] == 17_000
    fm6 = one(f, model="fmb640").attributes
    assert fm6["io84"] == 1234 and fm6["ble_temp1"] == pytest.approx(-2.5)
    other = one(f, model="GH5200").attributes
    assert other["io113"] == 55 and other["io84"] == 1234


def test_fm6_tachograph_driver_card() -> None:
    card = b"DRV0000012345678"
    io = {195: int.from_bytes(card[:8], "big"), 196: int.from_bytes(card[8:], "big")}
    rec = record(0x10, io=io, io_widths={195: 8, 196: 8})
    assert one(avl_packet(0x10, [rec]), model="FMB640").attributes[keys.DRIVER_UNIQUE_ID] == card.decode()


def test_cell_tower_from_lac_and_cid() -> None:
    rec = record(0x08, io={205: 3021, 206: 220, 241: 24601}, io_widths={205: 2, 206: 2, 241: 4})
    a = one(avl_packet(0x08, [rec])).attributes
    assert a[keys.CELL_TOWERS] == [{"mcc": 246, "mnc": 1, "lac": 220, "cid": 3021, "rssi": None}]
    assert "lac" not in a and "cid2g" not in a


def test_codec8e_variable_elements() -> None:
    # A BLE sensor list (IO 10829): header, then per tag: length, (param id, length, value)...
    tag = bytes([0x01, 0x06]) + bytes.fromhex("7cd9f4110c40") + bytes([0x00, 0x01, 0xC6])
    tag += bytes([0x05, 0x0A]) + b"Fridge\x00\x00\x00\x00" + bytes([0x02, 0x02, 0x80, 0x6D])
    variable = {256: b"WVWZZZ1JZXW000001", 281: b"P0100,P0200", 10829: b"\x01" + bytes([len(tag)]) + tag,
                999: b"\xde\xad"}
    a = one(avl_packet(0x8E, [record(0x8E, variable=variable)])).attributes
    assert a[keys.VIN] == "WVWZZZ1JZXW000001" and a["dtcs"] == "P0100 P0200"
    assert a["tag1_id"] == "7cd9f4110c40" and a["tag1_rssi"] == -58 and a["tag1_name"] == "Fridge"
    assert a["tag1_voltage"] == 0x6D * 10 + 2000
    assert a["io999"] == "dead"


def test_codec16_generation_type_is_skipped() -> None:
    decoded = decode(avl_packet(0x10, [record(0x10, event=385, io={1: 1}), record(0x10)]))
    assert decoded.reply == tcp_ack_bytes(2)
    assert decoded.positions[0].attributes[keys.EVENT] == 385
    assert decoded.positions[0].attributes["in1"] is True


def test_extended_sixteen_byte_group() -> None:
    rec = record(0x08)
    extended = rec + b"\x01\xcb" + bytes(range(16))
    p = one(avl_packet(0x08, [extended]), extended=True)
    assert p.attributes["io203"] == bytes(range(16)).hex()
    assert one(avl_packet(0x08, [extended]), extended="true").attributes == p.attributes
    with pytest.raises(DecodeError):
        decode(avl_packet(0x08, [extended]))  # without the setting the bytes do not add up


def test_gh3000_record() -> None:
    seconds = int((datetime(2013, 7, 31, 22, 30, 35, tzinfo=UTC) - datetime(2007, 1, 1, tzinfo=UTC))
                  .total_seconds())
    rec = (seconds | 0x40000000).to_bytes(4, "big") + bytes([0x03])  # priority bits set; GPS + 1-byte IO
    rec += bytes([0x1F]) + struct.pack(">ffHBBB", 44.44, 26.09, 61, 64, 30, 7)
    rec += bytes([2, 1, 77, 222, 1])  # battery 77 %, SOS
    p = one(avl_packet(0x07, [rec]))
    assert p.fix_time == datetime(2013, 7, 31, 22, 30, 35, tzinfo=UTC)
    assert (p.latitude, p.longitude) == pytest.approx((44.44, 26.09), abs=1e-5)
    assert p.altitude_m == 61 and p.course_deg == 90 and p.speed_kmh == 30
    assert p.attributes[keys.SATELLITES] == 7 and p.attributes[keys.BATTERY_PCT] == 77
    assert p.attributes[keys.ALARM] == "sos"
    # No GPS and nothing else: nothing to store; still acked.
    empty = (seconds).to_bytes(4, "big") + b"\x00"
    assert decode(avl_packet(0x07, [empty])) == Decoded(reply=tcp_ack_bytes(1))


# --- GPRS messages (codec 12, 13, 14) --------------------------------------------------------------


def message(codec: int, kind: int, payload: bytes) -> bytes:
    return tcp_packet(bytes([codec, 1, kind]) + len(payload).to_bytes(4, "big") + payload + b"\x01")


def test_wiki_codec12_response() -> None:
    f = bytes.fromhex(
        "00000000000000900C010600000088494E493A323031392F372F323220373A3232205254433A323031392F372F3232"
        "20373A3533205253543A32204552523A312053523A302042523A302043463A302046473A3020464C3A302054553A30"
        "2F302055543A3020534D533A30204E4F4750533A303A3330204750533A31205341543A302052533A332052463A3635"
        "2053463A31204D443A30010000C78F"
    )
    decoded = decode(f)
    assert decoded.reply is None
    (p,) = decoded.positions
    assert p.latitude is None and p.attributes["type"] == 6
    assert p.attributes[keys.RESULT] == bytes.fromhex(f.hex()[30:-10]).decode()
    assert p.attributes[keys.RESULT].startswith("INI:2019/7/22 7:22 RTC:")


def test_codec12_binary_answer_is_hex() -> None:
    p = one(message(0x0C, 0x06, b"\x01\x03\x00\x01"))
    assert p.attributes[keys.RESULT] == "01030001"


def test_codec13_timestamp_and_text() -> None:
    at = datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)
    p = one(message(0x0D, 0x06, int(at.timestamp()).to_bytes(4, "big") + b" Battery:4.1V\r\n"))
    assert p.fix_time == at and p.attributes == {keys.RESULT: "Battery:4.1V"}
    # A device without a clock: the server's time stands in for 1970.
    before = datetime.now(UTC)
    p = one(message(0x0D, 0x06, (364).to_bytes(4, "big") + b"ok"))
    assert p.fix_time >= before


def test_codec13_driver_card_reader() -> None:
    p = one(message(0x0D, 0x06, bytes(4) + b"GTSL|6|1|0|12749884|1|\r\n"))
    assert p.attributes == {keys.DRIVER_UNIQUE_ID: "12749884"}


def test_codec14_answer_and_nack() -> None:
    imei = bytes.fromhex("0352093081452251")
    p = one(message(0x0E, 0x06, imei + b"Ver:03.18.14"))
    assert p.attributes == {"type": 6, keys.RESULT: "Ver:03.18.14"}
    assert one(message(0x0E, 0x11, imei)).attributes == {"type": 0x11}


def test_camera_packets_are_skipped() -> None:
    decoded = decode(message(0x0C, 0x0D, b"\x01" + bytes.fromhex("598493ed") + (4096).to_bytes(4, "big")))
    assert decoded == Decoded()


def test_axle_scale_answer() -> None:
    text = b"UUUUww06.4;04.2;00.0;00.0;00.0;00.0;00.0;00.0;01.3;00.0;10.7;00.0;SSS\r\n"
    a = one(message(0x0C, 0x06, text)).attributes
    assert a["axle1"] == 6.4 and a["axle2"] == 4.2 and a["total_truck"] == 10.7
    broken = one(message(0x0C, 0x06, b"UUUUww1;2;SSS")).attributes
    assert broken[keys.RESULT] == "UUUUww1;2;SSS"


# --- fuzzing ---------------------------------------------------------------------------------------

MODELS = [None, "FMB130", "FMB003", "FMB640", "TAT100", "GH5200"]
SEEDS = [frame_bytes(v) for v in ALL] + [frame_bytes(v) for v in vectors_for_all("teltonika")
                                         if v["transport"] == "udp"]
TCP_SEEDS = [frame_bytes(v) for v in ALL]
TOKENS = [b"\x00\x00\x00\x00", b"\xff", b"\x00", b"\x01", b"\x8e", b"\x10", b"\x0c", b"\xff\xff"]


def sessions(draw_model: str | None, lenient: bool, extended: bool, transport: str) -> Session:
    config: dict[str, object] = {"extended": extended}
    if draw_model:
        config["model"] = draw_model
    if lenient:
        config.update(LENIENT_CONFIG)
    return Session(transport=transport, config=config)


def check(frame: bytes, model: str | None, lenient: bool, extended: bool, transport: str) -> None:
    decoded = check_decoder(P, frame, sessions(model, lenient, extended, transport))
    if decoded is not None:
        for p in decoded.positions:
            assert all_finite(p.attributes)
            assert p.speed_kmh is None or 0 <= p.speed_kmh <= 1609


flags = st.tuples(st.sampled_from(MODELS), st.booleans(), st.booleans(), st.sampled_from(["tcp", "udp"]))


@given(st.binary(max_size=600))
@fuzz_settings(300)
def test_fuzz_next_frame(data: bytes) -> None:
    drain(P, data)
    drain(P, bytes(4) + data)
    drain(P, b"\x00\x0f" + data)


@given(st.binary(max_size=400), flags)
@fuzz_settings(300)
def test_fuzz_decode_arbitrary(data: bytes, f: tuple[str | None, bool, bool, str]) -> None:
    check(data, *f)
    check(bytes(4) + len(data).to_bytes(4, "big") + data, *f)


@given(token_mutations(SEEDS, TOKENS), flags)
@fuzz_settings(500)
def test_fuzz_decode_mutated_frames(frame: bytes, f: tuple[str | None, bool, bool, str]) -> None:
    check(frame, *f)


@given(token_mutations(TCP_SEEDS, TOKENS), flags)
@fuzz_settings(500)
def test_fuzz_mutated_frames_with_crc_fixed(frame: bytes, f: tuple[str | None, bool, bool, str]) -> None:
    # Recomputing length and CRC gets the mutation past the integrity checks, into the records.
    if frame[:4] == bytes(4) and len(frame) >= 12:
        data = frame[8:-4]
        frame = tcp_packet(data)
    check(frame, f[0], f[1], f[2], "tcp")


@given(real_frame_streams(TCP_SEEDS), st.integers(0, 10_000))
@fuzz_settings(200)
def test_fuzz_streams_split_anywhere(stream: bytes, split: int) -> None:
    whole, _left = drain(P, stream)
    assert frames_fed_in_chunks(P, stream, split % (len(stream) + 1)) == whole


@given(st.sampled_from(TCP_SEEDS), st.integers(0, 0xFFFFFFFF))
@fuzz_settings(200)
def test_fuzz_length_field(frame: bytes, length: int) -> None:
    f = bytearray(frame)
    if f[:4] == bytes(4) and len(f) >= 8:
        f[4:8] = length.to_bytes(4, "big")
    check(bytes(f), None, True, False, "tcp")
    drain(P, bytes(f) * 2)
