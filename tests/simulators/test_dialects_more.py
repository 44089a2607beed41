"""The Queclink (gl200), Meitrack, watch and GpsGate simulated devices against servers made here from
our own sans-I/O decoders: every answer they wait for is exactly what our gateway answers (and a near
miss is refused), their reports are confirmed by the keep-alive that follows them, and a keep-alive
answer that is lost or wrong makes them reconnect and send those reports again."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from protocols import gl200, gpsgate, meitrack, watch
from protocols.base import Protocol
from protocols.model import Position, Session
from protocols.registry import PROTOCOLS
from simulators.device import Counters, LinkSettings
from simulators.dialects import DIALECTS, Gl200
from simulators.movement import Fix
from simulators.runner import HTTP, SUPPORTED
from simulators.tcp_device import TcpDevice
from tests.simulators.frames import decoded_frames

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
FAST = LinkSettings(ack_timeout_s=1.0, connect_timeout_s=2.0, heartbeat_s=30.0, backoff_base_s=0.05,
                    backoff_cap_s=0.1, drain_s=5.0)
CASES = [("gl200", "357000000000007", gl200.PROTOCOL), ("meitrack", "358000000000008", meitrack.PROTOCOL),
         ("watch", "359000000000009", watch.PROTOCOL), ("gpsgate", "3510000000000010", gpsgate.PROTOCOL)]


def wrong(name: str, reply: bytes) -> bytes:
    """A near miss of a right answer, well formed but not the one asked for."""
    if name == "gl200":  # another count: "+SACK:GTHBD,270403,0002$" -> "...,0003$"
        return reply[:-5] + b"%04X" % (int(reply[-5:-1], 16) ^ 1) + b"$"
    if name == "meitrack":  # another flag, with a checksum right for it
        body = reply[:2] + bytes([reply[2] ^ 1]) + reply[3:-4]
        return body + b"%02X" % (sum(body) & 0xFF) + b"\r\n"
    if name == "watch":  # another watch's id
        return reply.replace(b"*359", b"*358", 1)
    return reply.replace(b"$FR", b"$FX", 1)  # gpsgate: another sentence (its checksum no longer fits)


def fixes(n: int) -> list[Fix]:
    return [Fix(T0 + timedelta(seconds=10 * i), 52.37 + i / 1000, 4.89, 30.0, 90.0, 5.0, 1.0, True)
            for i in range(n)]


def replies_of(protocol: Protocol, frames: list[bytes]) -> list[bytes | None]:
    """What our gateway's decoder answers to each frame, in one conversation."""
    session, out = Session(), []
    for data in frames:
        frame, used = protocol.next_frame(data)
        assert frame is not None and data[used:] in (b"", b"\n", b"\r\n"), data
        decoded = protocol.decode(frame, session)
        session.unique_id = decoded.unique_id or session.unique_id
        out.append(decoded.reply)
    return out


@pytest.mark.parametrize(("name", "unique_id", "protocol"), CASES)
def test_every_expected_answer_is_what_our_gateway_answers(name: str, unique_id: str,
                                                           protocol: Protocol) -> None:
    dialect = DIALECTS[name](unique_id)
    assert dialect.confirm == "heartbeat"  # reports unanswered: the keep-alive confirms them
    messages = [m for m in (dialect.hello(fixes(1)[0]), dialect.report(fixes(2)[:1]), dialect.heartbeat(),
                            dialect.report(fixes(3)[2:]), dialect.heartbeat()) if m is not None]
    replies = replies_of(protocol, [m.data for m in messages])
    assert len(messages) == 5
    for message, reply in zip(messages, replies, strict=True):
        if message.expect is None:
            assert reply is None
            continue
        assert reply is not None
        assert message.expect.framer(reply + b"[$+@") == (reply, len(reply))
        assert message.expect.check(reply), reply
        assert not message.expect.check(wrong(name, reply)), wrong(name, reply)
    # The two keep-alives are told apart (count, flag) where the protocol can.
    first, second = replies[2], replies[4]
    assert (first != second) is (name in ("gl200", "meitrack"))


class DecoderServer:
    """Answers with our decoder's replies; the first keep-alive answer after a report is, per
    ``spoil``, withheld with the connection closed ("drop") or replaced by a near miss ("wrong")."""

    def __init__(self, name: str, protocol: Protocol, spoil: str) -> None:
        self.name, self.protocol, self.spoil = name, protocol, spoil
        self.reports: list[Position] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        reported = False
        try:
            async for decoded in decoded_frames(reader, self.protocol, Session()):
                located = [p for p in decoded.positions if p.latitude is not None]
                self.reports.extend(located)
                reported = reported or bool(located)
                reply = decoded.reply
                if reply is not None and reported and self.spoil:
                    spoil, self.spoil = self.spoil, ""
                    if spoil == "drop":
                        return
                    reply = wrong(self.name, reply)
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@pytest.mark.parametrize("spoil", ["drop", "wrong"])
@pytest.mark.parametrize(("name", "unique_id", "protocol"), CASES)
async def test_a_lost_or_wrong_keep_alive_answer_means_resending_what_it_would_have_confirmed(
        name: str, unique_id: str, protocol: Protocol, spoil: str) -> None:
    server = DecoderServer(name, protocol, spoil)
    port = await server.start()
    items, counters = fixes(4), Counters()
    device = TcpDevice(DIALECTS[name](unique_id), "127.0.0.1", port,
                       [(i * 0.02, f) for i, f in enumerate(items)], counters, FAST, "t")
    try:
        await asyncio.wait_for(device.run(), 30)
    finally:
        assert server.server is not None
        server.server.close()
    assert counters.sent == 4 and counters.acked == 4 and counters.unconfirmed == 0, counters
    assert counters.errors == 1 and counters.reconnects == 1 and counters.retried >= 1, counters
    times = [p.fix_time for p in server.reports]
    assert sorted(set(times)) == [f.time for f in items]
    assert len(times) > len(set(times))  # what the spoiled answer would have confirmed came again
    assert all(p.unique_id in (None, unique_id) for p in server.reports)
    assert server.connections == 2


def test_gl200_dialect_refuses_ids_that_are_not_imeis() -> None:
    with pytest.raises(ValueError):
        Gl200("3570000000000070")


def test_every_protocol_the_gateway_speaks_has_a_simulated_device() -> None:
    # Issue 6: "and each protocol added later": a protocol registered without a simulated device
    # fails here, and so does one the gateway also takes over UDP (or HTTP) without one for that.
    assert sorted(PROTOCOLS) == sorted(p for p in SUPPORTED if ":" not in p)
    assert sorted(f"{name}:udp" for name, p in PROTOCOLS.items() if "udp" in p.transports) == \
        sorted(p for p in SUPPORTED if p.endswith(":udp"))
    over_http = {name for name, p in PROTOCOLS.items() if "http" in p.transports}
    assert over_http == {p.removesuffix(":http") for p in HTTP} == {"osmand", "owntracks"}
