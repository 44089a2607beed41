"""How each TCP tracker protocol converses, built on the project's encoders: the login, a report,
the keep-alive, and the exact answer each one must get.

``confirm`` says how a device learns that its fixes are stored:

- ``each``: every report is acknowledged (GT06, H02 ``V1``, Teltonika): send, wait, check;
- ``heartbeat``: reports get no answer (TK103 ``BR00``, GPS103 ``tracker``), but the keep-alive
  does, and the gateway reads a connection's frames in order, answering each only once what came
  before is durable; so the keep-alive's answer confirms every report sent before it;
- ``none``: a raw NMEA stream has no answers at all: fixes are sent and cannot be confirmed.

Queclink (``gl200``), Meitrack, watches and GpsGate are ``heartbeat`` protocols in our gateway:
their reports get no answer (a Queclink ``+SACK`` per report only with the per-device "ack"
setting, which the simulator does not assume), so each confirms with the one message the gateway
always answers and that stores nothing: ``+ACK:GTHBD`` -> ``+SACK:GTHBD``, ``AAC`` -> ``AAC,1``,
``LK`` -> ``LK``, ``$FRVER`` -> the server's ``$FRVER``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce

from protocols import gl200, gps103, gpsgate, gt06, h02, meitrack, nmea, teltonika, tk103, watch
from protocols.base import FrameResult, need_more, split_on
from protocols.gt06_fields import build_reply
from protocols.registry import PROTOCOLS
from simulators.movement import Fix

Framer = Callable[[bytes], FrameResult]


@dataclass(frozen=True, slots=True)
class Expect:
    """The answer a message waits for: how to cut it from the stream and whether it is right."""

    framer: Framer
    check: Callable[[bytes], bool]
    what: str  # for error messages


@dataclass(frozen=True, slots=True)
class Message:
    data: bytes
    expect: Expect | None = None


def _exact(answer: bytes, framer: Framer | None = None) -> Expect:
    def fixed(buffer: bytes) -> FrameResult:
        return (bytes(buffer[: len(answer)]), len(answer)) if len(buffer) >= len(answer) else need_more()

    return Expect(framer or fixed, lambda got: got == answer, repr(answer))


class Dialect:
    name = ""
    confirm = "each"
    batch = 1  # fixes per report message

    def __init__(self, unique_id: str) -> None:
        self.unique_id = unique_id
        self.serial = 0

    def next_serial(self) -> int:
        self.serial = self.serial % 0xFFFF + 1
        return self.serial

    def hello(self, last: Fix) -> Message | None:
        return None

    def report(self, fixes: list[Fix]) -> Message:
        raise NotImplementedError

    def heartbeat(self) -> Message | None:
        return None


class Gt06(Dialect):
    """Login 0x01, location 0x22 (with ACC), status 0x13: each answered by a 7878 packet echoing the
    protocol number and the serial (Concox GT06 protocol, 5.1.x)."""

    name = "gt06"

    def _acked(self, packet: bytes, serial: int) -> Message:
        return Message(packet, _exact(build_reply(packet[3], serial, b""), gt06.next_frame))

    def hello(self, last: Fix) -> Message:
        serial = self.next_serial()
        return self._acked(gt06.encode_login(self.unique_id, serial), serial)

    def report(self, fixes: list[Fix]) -> Message:
        f, serial = fixes[0], self.next_serial()
        packet = gt06.encode_gps(f.time, f.lat, f.lon, f.speed_kmh, f.course_deg, serial, kind=0x22,
                                 ignition=f.ignition)
        return self._acked(packet, serial)

    def heartbeat(self) -> Message:
        serial = self.next_serial()
        return self._acked(gt06.encode_heartbeat(serial), serial)


_H02_V1 = re.compile(rb"\*HQ,(\d+),V4,V1,\d{14}#")


class H02(Dialect):
    """``V1`` reports answered ``*HQ,<id>,V4,V1,<server time>#``; ``V0`` keep-alive echoed."""

    name = "h02"

    def _framer(self, buffer: bytes) -> FrameResult:
        return split_on(buffer, b"#", keep=True)

    def report(self, fixes: list[Fix]) -> Message:
        f = fixes[0]
        packet = h02.encode_report(self.unique_id, f.time, f.lat, f.lon, f.speed_kmh, f.course_deg,
                                   ignition=f.ignition)

        def right(got: bytes) -> bool:
            m = _H02_V1.fullmatch(got)
            return m is not None and m[1].decode() == self.unique_id

        return Message(packet, Expect(self._framer, right, f"*HQ,{self.unique_id},V4,V1,<time>#"))

    def heartbeat(self) -> Message:
        packet = h02.encode_heartbeat(self.unique_id)
        return Message(packet, _exact(packet, self._framer))


class Tk103(Dialect):
    """``BP05`` login with a fix answered ``AP05``; ``BR00`` reports unanswered; ``BP00`` keep-alive
    answered ``AP01HSO``. The device is known by its 12-character id (what every frame carries); the
    login also names the IMEI, here the id padded to 15 digits."""

    name = "tk103"
    confirm = "heartbeat"

    def __init__(self, unique_id: str) -> None:
        if len(unique_id) != 12 or not unique_id.isdigit():
            raise ValueError(f"TK103 ids are 12 digits, got {unique_id!r}")
        super().__init__(unique_id)
        self.device_id = unique_id

    def hello(self, last: Fix) -> Message:
        imei = self.unique_id.rjust(15, "0")
        packet = tk103.encode_login(self.device_id, imei, last.time, last.lat, last.lon, last.speed_kmh,
                                    last.course_deg, ignition=last.ignition)
        return Message(packet, _exact(f"({self.device_id}AP05)".encode(), tk103.next_frame))

    def report(self, fixes: list[Fix]) -> Message:
        f = fixes[0]
        return Message(tk103.encode_report(self.device_id, f.time, f.lat, f.lon, f.speed_kmh, f.course_deg,
                                           ignition=f.ignition))

    def heartbeat(self) -> Message:
        return Message(tk103.encode_heartbeat(self.device_id),
                       _exact(f"({self.device_id}AP01HSO)".encode(), tk103.next_frame))


class Gps103(Dialect):
    """``##,imei:..,A;`` login answered ``LOAD``; reports unanswered; the bare IMEI answered ``ON``."""

    name = "gps103"
    confirm = "heartbeat"

    def hello(self, last: Fix) -> Message:
        return Message(gps103.encode_login(self.unique_id), _exact(b"LOAD"))

    def report(self, fixes: list[Fix]) -> Message:
        f = fixes[0]
        return Message(gps103.encode_report(self.unique_id, f.time, f.lat, f.lon, f.speed_kmh, f.course_deg,
                                            f.altitude_m))

    def heartbeat(self) -> Message:
        return Message(gps103.encode_heartbeat(self.unique_id), _exact(b"ON"))


class Teltonika(Dialect):
    """IMEI handshake answered 01; codec 8 packets of up to ``batch`` records answered with the
    record count (4 bytes), as FMB devices upload their buffer after a dead zone."""

    name = "teltonika"
    batch = 25

    def hello(self, last: Fix) -> Message:
        return Message(teltonika.encode_imei(self.unique_id), _exact(b"\x01"))

    def report(self, fixes: list[Fix]) -> Message:
        records = _avl_records(fixes)
        return Message(teltonika.encode_avl(records), _exact(len(records).to_bytes(4, "big")))


def _avl_records(fixes: list[Fix]) -> list[teltonika.AvlRecord]:
    return [teltonika.AvlRecord(f.time, f.lat, f.lon, f.altitude_m, f.course_deg, f.speed_kmh,
                                io1=((239, int(f.ignition)),)) for f in fixes]


class TeltonikaUdp(Dialect):
    """Over UDP: no handshake (every datagram names the IMEI); each datagram carries a packet id
    and an AVL packet id, and the answer echoes both with the record count."""

    name = "teltonika"
    batch = Teltonika.batch

    def report(self, fixes: list[Fix]) -> Message:
        records = _avl_records(fixes)
        packet_id, avl_id = self.next_serial(), self.serial % 0x100
        return Message(teltonika.encode_udp(self.unique_id, records, packet_id, avl_id),
                       _exact(teltonika.udp_ack(packet_id, avl_id, len(records))))


class Nmea(Dialect):
    """``IMEI <id>`` then RMC + GGA per fix, no answers (Traccar's t55 without ``ack``)."""

    name = "nmea"
    confirm = "none"

    def hello(self, last: Fix) -> Message:
        return Message(nmea.encode_identity(self.unique_id))

    def report(self, fixes: list[Fix]) -> Message:
        f = fixes[0]
        return Message(nmea.encode_rmc(f.time, f.lat, f.lon, f.speed_kmh, f.course_deg)
                       + nmea.encode_gga(f.time, f.lat, f.lon, f.altitude_m, hdop=max(f.accuracy_m / 5, 0.5)))


def _lines(buffer: bytes) -> FrameResult:
    return split_on(buffer, b"\r\n", keep=True)


class Gl200(Dialect):
    """Queclink @Track ASCII: ``+RESP:GTFRI`` reports (unanswered by default), ``+ACK:GTHBD``
    heartbeat answered ``+SACK:GTHBD,<version>,<count>$`` with the version and count echoed. The
    device has no login (every sentence names its IMEI); the heartbeat sent on connecting tells at
    once whether the server accepts it. One count numbers every sentence, as on the device."""

    name = "gl200"
    confirm = "heartbeat"

    def __init__(self, unique_id: str) -> None:
        if len(unique_id) != 15 or not unique_id.isdigit():
            raise ValueError(f"Queclink ids are 15-digit IMEIs, got {unique_id!r}")
        super().__init__(unique_id)

    def _framer(self, buffer: bytes) -> FrameResult:
        return split_on(buffer, b"$", keep=True)

    def hello(self, last: Fix) -> Message:
        return self.heartbeat()

    def report(self, fixes: list[Fix]) -> Message:
        f = fixes[0]
        return Message(gl200.encode_fri(self.unique_id, self.next_serial(), f.time, f.lat, f.lon, f.speed_kmh,
                                        f.course_deg, f.altitude_m, ignition=f.ignition))

    def heartbeat(self) -> Message:
        count = self.next_serial()
        packet = gl200.encode_heartbeat(self.unique_id, count, datetime.now(UTC))
        answer = f"+SACK:GTHBD,{gl200.VERSION},{count:04X}$".encode()
        return Message(packet, _exact(answer, self._framer))


class Meitrack(Dialect):
    """``$$`` frames: ``AAA`` event 35 (timed) reports, unanswered; ``AAC`` answered
    ``@@<flag><len>,<imei>,AAC,1*<checksum>`` with the frame's flag echoed, sent on connecting and
    as the keep-alive. The flag letter steps through A..z with each frame, so an answer that
    echoes a stale flag is caught."""

    name = "meitrack"
    confirm = "heartbeat"

    def _flag(self) -> bytes:
        return bytes([0x41 + self.next_serial() % (0x7A - 0x41 + 1)])

    def hello(self, last: Fix) -> Message:
        return self.heartbeat()

    def report(self, fixes: list[Fix]) -> Message:
        f = fixes[0]
        return Message(meitrack.encode_aaa(self._flag(), self.unique_id, f.time, f.lat, f.lon, f.speed_kmh,
                                           f.course_deg, f.altitude_m, ignition=f.ignition))

    def heartbeat(self) -> Message:
        flag = self._flag()
        rest = f",{self.unique_id},AAC,1*".encode()
        head = b"@@" + flag + str(len(rest) + 4).encode()
        answer = head + rest + b"%02X" % (sum(head + rest) & 0xFF) + b"\r\n"
        return Message(meitrack.encode_aac(flag, self.unique_id), _exact(answer, _lines))


class Watch(Dialect):
    """SeTracker-style watch: ``[3G*<id>*<len>*LK]`` on connecting and as the keep-alive, answered
    ``[3G*<id>*0002*LK]``; ``UD`` location reports, unanswered."""

    name = "watch"
    confirm = "heartbeat"

    def _framer(self, buffer: bytes) -> FrameResult:
        return split_on(buffer, b"]", keep=True)

    def hello(self, last: Fix) -> Message:
        return self.heartbeat()

    def report(self, fixes: list[Fix]) -> Message:
        f = fixes[0]
        return Message(watch.encode_report(self.unique_id, f.time, f.lat, f.lon, f.speed_kmh, f.course_deg,
                                           f.altitude_m))

    def heartbeat(self) -> Message:
        return Message(watch.encode_keep_alive(self.unique_id),
                       _exact(f"[3G*{self.unique_id}*0002*LK]".encode(), self._framer))


_FRSES = re.compile(rb"\$(FRSES,[^*\r\n]+)\*([0-9A-F]{2})\r\n")
_FRVER = re.compile(rb"\$(FRVER,[^*\r\n]*)\*([0-9A-F]{2})\r\n")


def _nmea_sentence(pattern: re.Pattern[bytes]) -> Callable[[bytes], bool]:
    """Whether a line matches ``pattern`` and its NMEA checksum (XOR between ``$`` and ``*``) is right."""
    def right(got: bytes) -> bool:
        m = pattern.fullmatch(got)
        return m is not None and reduce(lambda a, b: a ^ b, m[1], 0) == int(m[2], 16)

    return right


class GpsGate(Dialect):
    """``$FRLIN,IMEI,<id>,`` login answered ``$FRSES,<session>`` (``$FRERR`` when refused);
    ``$FRCMD,<id>,_SendMessage,...`` positions, unanswered; ``$FRVER`` as the keep-alive, answered
    with the server's ``$FRVER``. The session id is the server's to choose: any well-formed one is
    right."""

    name = "gpsgate"
    confirm = "heartbeat"

    def hello(self, last: Fix) -> Message:
        return Message(gpsgate.encode_login(self.unique_id),
                       Expect(_lines, _nmea_sentence(_FRSES), "$FRSES,<session>*hh"))

    def report(self, fixes: list[Fix]) -> Message:
        f = fixes[0]
        return Message(gpsgate.encode_send_message(self.unique_id, f.time, f.lat, f.lon, f.speed_kmh,
                                                   f.course_deg, f.altitude_m))

    def heartbeat(self) -> Message:
        return Message(gpsgate.encode_version(), Expect(_lines, _nmea_sentence(_FRVER), "$FRVER,...*hh"))


DIALECTS: dict[str, type[Dialect]] = {
    d.name: d for d in (Gt06, H02, Tk103, Gps103, Teltonika, Nmea, Gl200, Meitrack, Watch, GpsGate)
}
# The same conversations as datagrams, for the protocols whose devices also use UDP; only
# Teltonika's framing differs.
UDP_DIALECTS: dict[str, type[Dialect]] = {
    name: TeltonikaUdp if name == "teltonika" else d for name, d in DIALECTS.items()
    if "udp" in PROTOCOLS[name].transports
}
