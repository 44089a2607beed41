"""Simulated devices against misbehaving servers (made here from our own sans-I/O decoders): a wrong
ack is an error and the report is sent again, a connection dropped before the ack makes the device
reconnect and resend, a keep-alive's answer confirms what came before it, silence times out. And
every dialect's expected answer is exactly what our gateway's decoder answers."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from protocols import gps103, gt06, h02, nmea, teltonika, tk103
from protocols.base import Protocol
from protocols.model import Position, Session
from simulators.device import Counters, LinkSettings
from simulators.dialects import DIALECTS, UDP_DIALECTS, Gt06, Tk103
from simulators.movement import Fix
from simulators.tcp_device import TcpDevice
from tests.simulators.frames import decoded_frames

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
FAST = LinkSettings(ack_timeout_s=1.0, connect_timeout_s=2.0, heartbeat_s=30.0, backoff_base_s=0.05,
                    backoff_cap_s=0.1, drain_s=5.0)


def wrong(reply: bytes) -> bytes:
    """A near miss of a right answer: another serial, another device id, another count."""
    if reply[:2] == b"\x78\x78":
        return reply[:5] + bytes([reply[5] ^ 0x01]) + reply[6:]  # GT06: the serial's low byte
    if reply[:1] in (b"*", b"("):
        digit = reply.index(b"0") if b"0" in reply[:8] else 5  # H02/TK103: a digit of the device id
        return reply[:digit] + b"9" + reply[digit + 1:]
    if len(reply) in (1, 4):
        return (int.from_bytes(reply, "big") ^ 1).to_bytes(len(reply), "big")  # Teltonika
    return reply.lower()  # GPS103: "load" is not "LOAD"


def fixes(n: int) -> list[Fix]:
    return [Fix(T0 + timedelta(seconds=10 * i), 52.37 + i / 1000, 4.89, 30.0, 90.0, 5.0, 1.0, True)
            for i in range(n)]


def source(items: list[Fix], every_s: float = 0.02) -> list[tuple[float, Fix | None]]:
    return [(i * every_s, f) for i, f in enumerate(items)]


class FakeServer:
    """Answers with our decoder's reply, except for the n-th report frame received (counting resends),
    where ``plan`` says: "wrong" (a corrupted ack), "drop" (close without answering) or "silent"."""

    def __init__(self, protocol: Protocol, plan: dict[int, str], *, on_keepalive: str | None = None) -> None:
        self.protocol = protocol
        self.plan = plan
        self.on_keepalive = on_keepalive
        self.reports: list[Position] = []
        self.batches: list[int] = []  # positions per report frame
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            async for decoded in decoded_frames(reader, self.protocol, Session()):
                located = [p for p in decoded.positions if p.latitude is not None]
                action = "ok"
                if located:
                    self.reports.extend(located)
                    self.batches.append(len(located))
                    action = self.plan.pop(len(self.reports), "ok")
                elif decoded.reply is not None and not decoded.positions and self.on_keepalive \
                        and self.protocol.name == "tk103" and b"AP01" in decoded.reply:
                    action, self.on_keepalive = self.on_keepalive, None
                if action == "drop":
                    return
                reply = decoded.reply
                if action == "wrong" and reply is not None:
                    reply = wrong(reply)
                if action != "silent" and reply is not None:
                    writer.write(reply)
                    await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def run_device(dialect_name: str, unique_id: str, server: FakeServer, items: list[Fix],
                     link: LinkSettings = FAST) -> Counters:
    port = await server.start()
    counters = Counters()
    dialect = DIALECTS[dialect_name](unique_id)
    device = TcpDevice(dialect, "127.0.0.1", port, source(items), counters, link, "t")
    try:
        await asyncio.wait_for(device.run(), 30)
    finally:
        await server.stop()
    return counters


def received_times(server: FakeServer) -> list[datetime]:
    return [p.fix_time for p in server.reports]


async def test_a_wrong_ack_is_an_error_and_the_report_is_sent_again() -> None:
    server = FakeServer(gt06.PROTOCOL, {2: "wrong"})
    items = fixes(5)
    counters = await run_device("gt06", "868000000000017", server, items)
    assert counters == Counters(sent=5, acked=5, retried=1, errors=1, reconnects=1, unconfirmed=0)
    times = received_times(server)
    assert sorted(set(times)) == [f.time for f in items]
    assert times.count(items[1].time) == 2  # the report whose ack was wrong came again
    assert server.connections == 2


async def test_a_connection_dropped_before_the_ack_is_resent_after_reconnecting() -> None:
    server = FakeServer(teltonika.PROTOCOL, {3: "drop"})
    items = fixes(6)
    counters = await run_device("teltonika", "356307042441013", server, items)
    assert counters.acked == 6 and counters.unconfirmed == 0
    assert counters.errors == 1 and counters.reconnects == 1 and counters.retried >= 1
    times = received_times(server)
    assert sorted(set(times)) == [f.time for f in items]
    assert times.count(items[2].time) == 2


async def test_h02_wrong_answer_is_refused() -> None:
    server = FakeServer(h02.PROTOCOL, {1: "wrong"})
    counters = await run_device("h02", "4209917484", server, fixes(3))
    assert counters.errors == 1 and counters.retried == 1 and counters.acked == 3


async def test_silence_times_out_and_nothing_counts_as_acked() -> None:
    server = FakeServer(gt06.PROTOCOL, dict.fromkeys(range(1, 50), "silent"))
    link = LinkSettings(ack_timeout_s=0.2, backoff_base_s=0.05, backoff_cap_s=0.1, drain_s=1.0)
    counters = await run_device("gt06", "868000000000018", server, fixes(2), link)
    assert counters.acked == 0 and counters.unconfirmed == 2
    assert counters.errors >= 2 and counters.retried >= 1


async def test_keepalive_answer_confirms_unanswered_reports_and_a_lost_one_means_resending() -> None:
    # TK103 reports get no answer; the BP00 keep-alive does. The first keep-alive is never answered
    # (the connection drops), so the reports before it are unconfirmed and must come again.
    server = FakeServer(tk103.PROTOCOL, {}, on_keepalive="drop")
    items = fixes(4)
    counters = await run_device("tk103", "353000000001", server, items)
    assert counters.acked == 4 and counters.unconfirmed == 0
    assert counters.errors == 1 and counters.retried >= 1
    assert sorted(set(received_times(server))) == [f.time for f in items]
    assert len(server.reports) > len(set(received_times(server)))  # resent after the lost keep-alive


async def test_a_dead_zone_is_uploaded_as_a_buffer_when_the_network_is_back() -> None:
    items = fixes(8)
    # Fixes 2..5 are taken without mobile data; fix 6 is back in coverage.
    items = [replace(f, online=not 2 <= i <= 5) for i, f in enumerate(items)]
    server = FakeServer(teltonika.PROTOCOL, {})
    counters = await run_device("teltonika", "356307042441013", server, items)
    assert counters == Counters(sent=8, acked=8)
    assert server.batches == [1, 1, 5, 1]  # the buffer went in one codec 8 packet, oldest first
    assert received_times(server) == [f.time for f in items]


def replies_of(protocol: Protocol, frames: list[bytes]) -> list[bytes | None]:
    """What our gateway's decoder answers to each frame, in one conversation."""
    session = Session()
    out = []
    for frame in frames:
        cut, used = protocol.next_frame(frame)
        assert cut is not None and used == len(frame), frame
        decoded = protocol.decode(cut, session)
        session.unique_id = decoded.unique_id or session.unique_id
        out.append(decoded.reply)
    return out


@pytest.mark.parametrize(("name", "unique_id", "protocol"), [
    ("gt06", "868000000000017", gt06.PROTOCOL), ("h02", "4209917484", h02.PROTOCOL),
    ("tk103", "353000000001", tk103.PROTOCOL), ("gps103", "356307042441013", gps103.PROTOCOL),
    ("teltonika", "356307042441013", teltonika.PROTOCOL),
])
def test_every_expected_answer_is_what_our_gateway_answers(name: str, unique_id: str,
                                                           protocol: Protocol) -> None:
    dialect = DIALECTS[name](unique_id)
    messages = [m for m in (dialect.hello(fixes(1)[0]), dialect.report(fixes(2)[:dialect.batch]),
                            dialect.heartbeat()) if m is not None]
    replies = replies_of(protocol, [m.data for m in messages])
    for message, reply in zip(messages, replies, strict=True):
        if message.expect is None:
            # Only reports of the keep-alive-confirmed protocols go unanswered.
            assert dialect.confirm == "heartbeat" and reply is None
            continue
        assert reply is not None
        assert message.expect.framer(reply + b"(") == (reply, len(reply))
        assert message.expect.check(reply)
        assert wrong(reply) != reply and not message.expect.check(wrong(reply))


def test_teltonika_over_udp_expects_the_answer_our_gateway_gives_to_the_datagram() -> None:
    dialect = UDP_DIALECTS["teltonika"]("356307042441013")
    assert dialect.hello(fixes(1)[0]) is None  # no handshake: the IMEI is in every datagram
    session = Session(transport="udp")
    for batch in (fixes(3), fixes(1)):
        message = dialect.report(batch)
        decoded = teltonika.decode(message.data, session)  # a whole datagram, as the gateway passes it
        assert decoded.unique_id == "356307042441013"
        assert [p.fix_time for p in decoded.positions] == [f.time for f in batch]
        reply = decoded.reply
        assert reply is not None and message.expect is not None and message.expect.check(reply)
        # Another packet id, another AVL packet id or another count is not this datagram's answer.
        for k in (3, 5, 6):
            assert not message.expect.check(reply[:k] + bytes([reply[k] ^ 1]) + reply[k + 1:])


def test_nmea_is_sent_unconfirmed_as_the_protocol_has_no_answers() -> None:
    dialect = DIALECTS["nmea"]("356307042441013")
    assert dialect.confirm == "none"
    hello, report = dialect.hello(fixes(1)[0]), dialect.report(fixes(1))
    assert hello is not None and hello.expect is None and report.expect is None
    frame, _ = nmea.next_frame(hello.data)
    assert frame == hello.data.rstrip()
    named = nmea.decode(frame, Session())
    assert named.unique_id == "356307042441013" and named.reply is None


def test_tk103_dialect_refuses_ids_the_protocol_cannot_carry() -> None:
    with pytest.raises(ValueError):
        Tk103("35300000000123")
    assert Gt06("868000000000017").next_serial() == 1
