"""Protocols whose transport delivers whole messages (HTTP bodies, MQTT payloads) frame with
``protocols.base.whole_message``: the buffer is the frame, an empty buffer waits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import fieldtrack_json, osmand, owntracks
from protocols.base import Protocol
from tests.protocols.fuzz import check_next_frame, fuzz_settings

WHOLE = [osmand.PROTOCOL, owntracks.PROTOCOL, fieldtrack_json.PROTOCOL]
EXAMPLES = [b"/?id=1&lat=52.1&lon=4.3", b'{"_type":"location","lat":1,"lon":2,"tst":3}',
            b'[{"time":1,"lat":1,"lon":2}]\n']


@pytest.mark.parametrize("protocol", WHOLE, ids=lambda p: p.name)
@pytest.mark.parametrize("payload", EXAMPLES)
def test_next_frame_returns_the_whole_message(protocol: Protocol, payload: bytes) -> None:
    assert protocol.next_frame(payload) == (payload, len(payload))


@pytest.mark.parametrize("protocol", WHOLE, ids=lambda p: p.name)
def test_next_frame_on_nothing_needs_more(protocol: Protocol) -> None:
    assert protocol.next_frame(b"") == (None, 0)


@pytest.mark.parametrize("protocol", WHOLE, ids=lambda p: p.name)
def test_fuzz_next_frame_is_total(protocol: Protocol) -> None:
    @fuzz_settings(300)
    @given(st.binary(max_size=4096))
    def run(data: bytes) -> None:
        frame, used = check_next_frame(protocol, data)
        assert (frame is None) == (used == 0) == (not data)
        if frame is not None:
            assert frame == data

    run()
