"""Meitrack trackers (MVT, T1/T3, T3xx, TC68, P88L...), TCP and UDP, port 5020.

Every frame, ASCII or binary, has the same envelope (Meitrack "GPRS Protocol" documents)::

    $$<flag><length>,<IMEI>,<command>,<data>*<checksum>\\r\\n

``flag`` is one byte 0x41-0x7A the server echoes; ``length`` (decimal) counts the bytes after it,
from the comma through the CRLF; the checksum is the sum of every byte before it (``*``
included) modulo 256, in two hex digits. Server messages have the same shape with ``@@``.

Commands read here:

- ``AAA`` (event report, also ``AFF`` buffered reports with a sequence number, ``A10`` query
  answers): one position. The event code becomes ``event`` and, for alarms, ``alarm`` (in every
  format: Traccar names alarms for AAA only, but the event table is the same for CCC and CCE).
- ``CCC`` / ``CCE``: binary multi-record reports (:mod:`protocols.meitrack_binary`), acked with
  ``@@<flag><len>,<IMEI>,CCC|CCE,<records>*<cs>`` so the device deletes them from its cache
  (the documents' "quantity of deleted data"; Traccar acks CCC only).
- ``AAC``: answered ``AAC,1`` as Traccar does.
- ``D00`` photo chunks and ``D03`` photo notices: recognised and dropped (we keep no media and
  request no photos).
- Any other command (answers to commands we sent, ``D82,0``...): a status position carrying
  ``result``.

Framing uses the length field. Some firmwares get it wrong in ASCII frames (a Traccar sample is
four bytes off with a good checksum), so a text frame whose declared end is not its
``*hh\\r\\n`` tail is ended by that tail instead; binary frames can only be cut by length.

Per-device settings (``session.config``):

- ``checksum``: ``"strict"`` (default) refuses a frame whose checksum is wrong or missing (no
  ack: the device sends it again); ``"lenient"`` decodes it anyway, as Traccar does (several of
  its samples were edited by hand).
- ``model``: how the hex analog inputs of older models read as volts (MVT340, MT90, T1...).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from protocols import keys
from protocols.base import FrameResult, Protocol, need_more
from protocols.meitrack_binary import add_event, decode_ccc, decode_cce, located
from protocols.model import Decoded, DecodeError, Position, Session
from protocols.text_fields import blamed_on, cell_tower, check_on_earth, lenient_datetime, status_report

__all__ = ["PROTOCOL", "checksum", "decode", "device_message", "encode_aaa", "encode_aac", "next_frame",
           "server_message"]

MAX_FRAME = 8192  # the documents give 50-1046 bytes; photo chunks run a little over 1 kB
_MIN_DECLARED = len(",1,AAA*00\r\n")

_HEAD = re.compile(
    rb"\$\$(?P<flag>[\x41-\x7a])(?P<length>\d{1,5}),(?P<imei>\d{1,20}),(?P<cmd>[0-9A-Za-z]{3})"
)
# What a header looks like while it is still arriving.
_HEAD_PREFIX = re.compile(rb"\$(?:\$(?:[\x41-\x7a](?:\d{1,5}(?:,(?:\d{1,20}(?:,[0-9A-Za-z]{0,2})?)?)?)?)?)?")
_TAIL = re.compile(rb"\*[0-9A-Fa-f]{2}\r\n")
_BINARY = frozenset({b"CCC", b"CCE", b"D00"})  # payloads that may hold any byte, CRLF included
_REPORTS = frozenset({"AAA", "AFF"})


def _now() -> datetime:
    return datetime.now(UTC)


# --- framing -------------------------------------------------------------------------------------


def next_frame(buffer: bytes) -> FrameResult:
    start = buffer.find(b"$$")
    if start < 0:
        keep = 1 if buffer.endswith(b"$") else 0  # maybe the first half of the next "$$"
        return (None, len(buffer) - keep) if len(buffer) > keep else need_more()
    if start > 0:
        return (None, start)
    m = _HEAD.match(buffer)
    if m is None:
        return need_more() if _HEAD_PREFIX.fullmatch(buffer) else (None, 1)
    declared = int(m["length"])
    total = m.start("length") + len(m["length"]) + declared
    if declared >= _MIN_DECLARED and len(buffer) >= total and _TAIL.fullmatch(buffer, total - 5, total):
        return bytes(buffer[:total]), total
    if m["cmd"] in _BINARY:
        if declared < _MIN_DECLARED or total > MAX_FRAME:
            return (None, 1)
        return need_more() if len(buffer) < total else (None, 1)
    # Text: no CRLF inside, so the first checksum tail ends it, unless another frame starts first
    # (this one was cut off).
    following = buffer.find(b"$$", m.end())
    limit = len(buffer) if following < 0 else following
    tail = _TAIL.search(buffer, m.end(), limit)
    if tail is not None:
        return bytes(buffer[: tail.end()]), tail.end()
    if following >= 0:
        return (None, following)
    return (None, 1) if len(buffer) >= MAX_FRAME else need_more()


# --- envelope ------------------------------------------------------------------------------------


def checksum(data: bytes) -> bytes:
    """Meitrack's checksum of everything up to and including ``*``: two uppercase hex digits."""
    return b"%02X" % (sum(data) & 0xFF)


def server_message(flag: bytes, imei: str, content: str) -> bytes:
    """``@@<flag><length>,<imei>,<content>*<checksum>\\r\\n``, the length counting from the comma."""
    rest = f",{imei},{content}*".encode("ascii")
    head = b"@@" + flag + str(len(rest) + 4).encode("ascii")  # + checksum digits and CRLF
    return head + rest + checksum(head + rest) + b"\r\n"


def _payload(frame: bytes, m: re.Match[bytes], strict: bool) -> bytes:
    """The data after ``<command>,``, its checksum verified (strict) or trusted (lenient)."""
    body = frame[:-2] if frame.endswith(b"\r\n") else frame  # Traccar's samples lack the CRLF
    end = len(body)
    digits = body[-2:]
    if end - 3 >= m.end() and body[-3:-2] == b"*" and re.fullmatch(rb"[0-9A-Fa-f]{2}", digits):
        end -= 3
        if strict and checksum(body[:-2]) != digits.upper():
            raise DecodeError(f"meitrack: checksum {digits!r} != {checksum(body[:-2])!r}", frame)
    elif strict:
        raise DecodeError("meitrack: no checksum", frame)
    data = body[m.end() : end]
    return data[1:] if data.startswith(b",") else data


# --- ASCII position reports ----------------------------------------------------------------------

HEX = "[0-9A-Fa-f]"
_REPORT = re.compile(
    rf"""
    (?:\d{{1,10}},)?                                  # AFF: the buffered report's number
    (?P<event>\d{{1,5}}),
    (?P<lat>-?\d{{1,3}}\.\d{{1,10}}),(?P<lon>-?\d{{1,3}}\.\d{{1,10}}),
    (?P<yy>\d\d)(?P<mo>\d\d)(?P<dd>\d\d)(?P<hh>\d\d)(?P<mi>\d\d)(?P<ss>\d\d),
    (?P<fix>[AV]),
    (?P<sats>\d{{1,3}}),(?P<gsm>\d{{1,3}}),
    (?P<speed>\d{{1,5}}(?:\.\d{{0,6}})?),(?P<course>\d{{1,5}}),(?P<hdop>\d{{1,3}}(?:\.\d{{0,6}})?),
    (?P<alt>-?\d{{1,6}}),(?P<odometer>\d{{1,12}}),(?P<runtime>\d{{1,12}}),
    (?P<mcc>\d{{1,4}})\|(?P<mnc>\d{{1,4}})\|(?P<lac>{HEX}{{1,8}})?\|(?P<cid>{HEX}{{1,8}})?,
    (?P<inputs>{HEX}{{2}})(?P<outputs>{HEX}{{2}}),
    (?:                                               # analog inputs: volts (newer models)...
        (?P<battery_v>\d{{1,4}}\.\d{{1,4}})\|(?P<power_v>\d{{1,4}}\.\d{{1,4}})
        (?:\|\d{{1,4}}\.\d{{1,4}}){{3}}               # RTC, MCU and GPS supply voltages
    |                                                 # ...or raw hex readings
        (?P<adc1>{HEX}{{1,8}})?\|(?P<adc2>{HEX}{{1,8}})?\|(?P<adc3>{HEX}{{1,8}})?
        \|(?P<battery>{HEX}{{1,8}})\|(?P<power>{HEX}{{1,8}})?
    ),
    (?P<tail>.*)
    """,
    re.X | re.S | re.ASCII,
)
# The optional fields after the analog inputs; a tail of another shape is ignored, as Traccar does.
_EXTRA = re.compile(
    rf"""
    (?:(?P<event_data>[^,]+)?,)?                      # event-specific (driver id for event 37)
    [^,]*,                                            # reserved
    (?P<protocol>\d{{1,5}})?,
    (?P<fuel>{HEX}{{4}})?                             # fuel %: integer byte, hundredths byte
    (?:,(?P<temps>{HEX}{{6}}(?:\|{HEX}{{6}})*)?       # sensor index + value, per sensor
       (?:,(?P<count>\d{{1,5}}),(?P<data>.*))?
    )?
    """,
    re.X | re.S | re.ASCII,
)

# Model families whose hex battery / power readings are ADC counts (Meitrack's per-model
# documents): volts = count * numerator / denominator. Newer models send hundredths of a volt.
Scale = tuple[int | float, int]
_ADC_SCALES: dict[str, tuple[Scale, Scale]] = {
    **dict.fromkeys(("MVT340", "MVT380"), ((6, 1024), (48, 1024))),
    "MT90": ((6.6, 4096), (1, 1)),
    "MT90G": ((6, 4096), (1, 1)),
    **dict.fromkeys(("T1", "T3", "MVT100", "MVT600", "MVT800", "TC68", "TC68S"), ((6.6, 4096), (52.8, 4096))),
}
_CENTIVOLTS: tuple[Scale, Scale] = ((1, 100), (1, 100))
_DRIVER_EVENT = 37  # RFID card swiped: the event data is the card number


def _hex(text: str | None) -> int | None:
    return int(text, 16) if text else None


def _temperature(item: str, protocol: int) -> tuple[str, float]:
    index, raw = int(item[:2], 16), int(item[2:], 16)
    if protocol >= 3:  # signed hundredths of a degree
        return f"temp{index}_c", (raw - 0x10000 if raw >= 0x8000 else raw) / 100
    # Older firmwares: a signed whole-degree byte, then hundredths that share its sign.
    whole = raw >> 8
    whole = whole - 0x100 if whole >= 0x80 else whole
    return f"temp{index}_c", whole + (-0.01 if whole < 0 else 0.01) * (raw & 0xFF)


def _data_fields(a: dict[str, Any], data: str) -> None:
    values = data.split(",")
    if len(values) > 1 and values[1]:
        a["temp_data"] = values[1]
    if len(values) > 5 and values[5]:
        # Taximeter: state (second digit 0 = running), start, then end, distance, fare, trip, wait.
        meter = values[5].split("|")
        if len(meter[0]) > 1:
            a["taximeter_on"] = meter[0][1] == "0"
        if len(meter) > 1:
            a["taximeter_start"] = meter[1]
        if len(meter) >= 7 and meter[3].isdigit() and meter[4].isdigit():
            a["taximeter_end"] = meter[2]
            a["taximeter_distance"] = int(meter[3])
            a["taximeter_fare"] = int(meter[4])
            a["taximeter_trip"] = meter[5]
            a["taximeter_wait"] = meter[6]


def _extra(a: dict[str, Any], event: int, tail: str) -> None:
    m = _EXTRA.fullmatch(tail)
    if m is None:
        return
    if m["event_data"]:
        a[keys.DRIVER_UNIQUE_ID if event == _DRIVER_EVENT else "event_data"] = m["event_data"]
    protocol = int(m["protocol"] or 0)
    if m["fuel"]:
        a[keys.FUEL_PCT] = int(m["fuel"][:2], 16) + int(m["fuel"][2:], 16) / 100
    for item in (m["temps"] or "").split("|") if m["temps"] else ():
        key, value = _temperature(item, protocol)
        a[key] = value
    if m["count"] is not None:
        _data_fields(a, m["data"])


def _report(m: re.Match[str], imei: str, model: str, frame: bytes) -> Position:
    lat, lon = float(m["lat"]), float(m["lon"])
    check_on_earth(lat, lon, frame, protocol="meitrack")
    with blamed_on(frame):
        at = lenient_datetime(int(m["yy"]), int(m["mo"]), int(m["dd"]), int(m["hh"]), int(m["mi"]),
                              int(m["ss"]), protocol="meitrack")
    course = int(m["course"])
    p = Position(fix_time=at, device_time=at, latitude=None, longitude=None, valid=m["fix"] == "A",
                 speed_kmh=float(m["speed"]), course_deg=float(course) if course <= 360 else None,
                 altitude_m=float(m["alt"]), hdop=float(m["hdop"]), unique_id=imei)
    located(p, lat, lon)
    event = int(m["event"])
    add_event(p, event)
    a = p.attributes
    a[keys.SATELLITES] = int(m["sats"])
    a[keys.ODOMETER_M] = int(m["odometer"])
    a["runtime"] = int(m["runtime"])
    mcc, mnc = int(m["mcc"]), int(m["mnc"])
    if mcc and mnc:  # 0|0 (or 000|00) is "no network"
        a[keys.CELL_TOWERS] = [cell_tower(mcc, mnc, _hex(m["lac"]) or 0, _hex(m["cid"]) or 0, int(m["gsm"]))]
    a[keys.INPUT] = int(m["inputs"], 16)
    a[keys.OUTPUT] = int(m["outputs"], 16)
    if m["battery_v"] is not None:
        a[keys.BATTERY_V] = float(m["battery_v"])
        a[keys.POWER_V] = float(m["power_v"])
    else:
        for n in (1, 2, 3):
            if m[f"adc{n}"]:
                a[f"adc{n}"] = int(m[f"adc{n}"], 16)
        (b_num, b_den), (p_num, p_den) = _ADC_SCALES.get(model, _CENTIVOLTS)
        a[keys.BATTERY_V] = int(m["battery"], 16) * b_num / b_den
        a[keys.POWER_V] = (_hex(m["power"]) or 0) * p_num / p_den
    _extra(a, event, m["tail"])
    return p


# --- decoding ------------------------------------------------------------------------------------


def _result(cmd: str, data: bytes, imei: str) -> Position:
    """An answer to a command: its text, or hex when the device answered in bytes."""
    text = data.decode("latin-1")
    if not (text.isascii() and text.isprintable()):
        text = data.hex()
    return status_report(_now(), imei, {keys.RESULT: f"{cmd},{text}" if data else cmd})


def decode(frame: bytes, session: Session) -> Decoded:
    frame = bytes(frame)
    m = _HEAD.match(frame)
    if m is None or (len(frame) > m.end() and frame[m.end()] not in b",*"):
        raise DecodeError("meitrack: not a $$<flag><length>,<IMEI>,<command> frame", frame)
    strict = session.config.get("checksum", "strict") != "lenient"
    data = _payload(frame, m, strict)
    imei, cmd, flag = m["imei"].decode("ascii"), m["cmd"].decode("ascii"), m["flag"]

    if cmd == "CCC":
        positions = decode_ccc(data, frame, imei, strict=strict)
        return Decoded(positions, server_message(flag, imei, f"CCC,{len(positions)}"), imei)
    if cmd == "CCE":
        count, positions = decode_cce(data, frame, imei, _now(), strict=strict)
        return Decoded(positions, server_message(flag, imei, f"CCE,{count}"), imei)
    if cmd in ("D00", "D03"):
        return Decoded(unique_id=imei)  # photo chunk / photo taken: we keep no media
    if cmd == "AAC":
        return Decoded(reply=server_message(flag, imei, "AAC,1"), unique_id=imei)

    report = _REPORT.fullmatch(data.decode("latin-1"))
    if report is not None:
        model = str(session.config.get("model") or "").strip().upper()
        return Decoded([_report(report, imei, model, frame)], unique_id=imei)
    if cmd in _REPORTS:
        raise DecodeError(f"meitrack: malformed {cmd} report", frame)
    return Decoded([_result(cmd, data, imei)], unique_id=imei)


PROTOCOL = Protocol(
    name="meitrack",
    transports=("tcp", "udp"),
    default_port=5020,
    next_frame=next_frame,
    decode=decode,
    max_frame=MAX_FRAME,
)


# --- encoders (simulators, tests): what a Meitrack tracker sends ---------------------------------

EVENT_TIMED = 35  # "track by time interval": the periodic report


def device_message(flag: bytes, imei: str, content: str) -> bytes:
    """``$$<flag><length>,<imei>,<content>*<checksum>\\r\\n``: the device's envelope."""
    if len(flag) != 1 or not 0x41 <= flag[0] <= 0x7A:
        raise ValueError(f"the flag is one byte A..z, got {flag!r}")
    if not imei.isdigit() or len(imei) > 20:
        raise ValueError(f"Meitrack ids are IMEI digits, got {imei!r}")
    rest = f",{imei},{content}*".encode("ascii")
    head = b"$$" + flag + str(len(rest) + 4).encode("ascii")  # + checksum digits and CRLF
    return head + rest + checksum(head + rest) + b"\r\n"


def encode_aaa(
    flag: bytes,
    imei: str,
    fix_time: datetime,
    lat: float,
    lon: float,
    speed_kmh: float = 0.0,
    course_deg: float = 0.0,
    altitude_m: float = 0.0,
    *,
    event: int = EVENT_TIMED,
    valid: bool = True,
    satellites: int = 9,
    hdop: float = 1.0,
    odometer_m: int = 0,
    runtime_s: int = 0,
    ignition: bool = False,
) -> bytes:
    """An ``AAA`` event report; the protocol does not answer it.

    Input bit 1 is wired to the ignition on vehicle installs (a convention, not the protocol's);
    battery and external power as hundredths of a volt (4.00 V, 12.50 V).
    Resolution on the wire: 1 s, 1e-6 degree, 0.1 km/h, 1 degree of course, 1 m.
    """
    t = fix_time.astimezone(UTC)
    data = ",".join([
        str(event), f"{lat:.6f}", f"{lon:.6f}", f"{t:%y%m%d%H%M%S}", "A" if valid else "V",
        str(satellites), "24", f"{max(speed_kmh, 0.0):.1f}", str(round(course_deg) % 360), f"{hdop:.1f}",
        str(round(altitude_m)), str(max(odometer_m, 0)), str(max(runtime_s, 0)),
        "0|0|0|0",  # MCC|MNC|LAC|CI: no network named
        f"{int(ignition):02X}00",  # inputs, outputs
        "|||0190|04E2",  # three analog inputs, battery and external power (hex)
        "",
    ])
    return device_message(flag, imei, f"AAA,{data}")


def encode_aac(flag: bytes, imei: str) -> bytes:
    """``AAC``, answered ``@@<flag><length>,<imei>,AAC,1*<checksum>``; nothing is stored, which
    makes it the simulated device's keep-alive."""
    return device_message(flag, imei, "AAC")
