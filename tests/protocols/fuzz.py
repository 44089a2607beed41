"""Robustness machinery shared by the protocol tests.

Every codec owes the gateway the same guarantees on any input: only DecodeError escapes
``decode``, and ``next_frame`` consumes 0..len(buffer) and never loops. So the checks, and the
hypothesis strategies that feed them real frames damaged a little, live here once; what a protocol
adds (its own frame shape, the syntax characters worth inserting) is passed in or checked by it.

This is not a test module, so pytest does not rewrite its asserts: each carries its own message.
"""

from __future__ import annotations

import math
from collections.abc import Container, Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from protocols.base import FrameResult, Protocol
from protocols.model import Decoded, DecodeError, Session
from tests.protocols.vectors import Vector, frame_bytes, frames_fed_in_chunks


def fuzz_settings(max_examples: int) -> settings:
    # No deadline: a decoder's first call warms regex caches and CI machines stall at random.
    return settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def real_frames(vectors: dict[str, list[Vector]]) -> list[bytes]:
    """Every frame of a protocol's Traccar vectors, the seeds of the mutation strategies."""
    return [frame_bytes(v) for items in vectors.values() for v in items]


# --- strategies ------------------------------------------------------------------------------


@st.composite
def token_mutations(draw: st.DrawFn, frames: Sequence[bytes], tokens: Sequence[bytes]) -> bytes:
    """A real frame after up to four edits: a byte replaced, the tail cut, one of the protocol's
    syntax ``tokens`` inserted, or a byte deleted. Small edits keep it close to the real layouts,
    so the decoder's deeper branches are reached."""
    frame = bytearray(draw(st.sampled_from(frames)))
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(frame) - 1, 0)))
        if action == "flip" and frame:
            frame[pos] = draw(st.integers(0, 255))
        elif action == "cut":
            del frame[pos:]
        elif action == "insert":
            frame[pos:pos] = draw(st.sampled_from(tokens))
        elif frame:
            del frame[pos]
    return bytes(frame)


@st.composite
def chunk_mutations(draw: st.DrawFn, frames: Sequence[bytes], alphabet: bytes) -> bytes:
    """A real frame after one to six edits: up to 8 random bytes inserted, up to 8 deleted, or one
    byte replaced by any byte or by one of ``alphabet`` (the protocol's digits and separators)."""
    frame = bytearray(draw(st.sampled_from(frames)))
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "syntax"]))
        at = draw(st.integers(0, len(frame)))
        if action == "insert":
            frame[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif frame and at < len(frame):
            if action == "delete":
                del frame[at : at + draw(st.integers(1, 8))]
            elif action == "syntax":
                frame[at] = draw(st.sampled_from(alphabet))
            else:
                frame[at] = draw(st.integers(0, 255))
    return bytes(frame)


def real_frame_streams(frames: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """One to six real frames back to back behind up to 8 bytes of line noise."""
    return st.builds(
        lambda picked, noise: noise + b"".join(picked),
        st.lists(st.sampled_from(frames), min_size=1, max_size=6),
        st.binary(max_size=8),
    )


# --- checks ----------------------------------------------------------------------------------


def check_next_frame(protocol: Protocol, buffer: bytes) -> FrameResult:
    """One ``next_frame`` call keeps the contract: it consumes 0..len(buffer), and a frame it cuts
    comes out of the bytes it consumed."""
    frame, used = protocol.next_frame(buffer)
    assert 0 <= used <= len(buffer), f"consumed {used} of {len(buffer)} bytes"
    if frame is not None:
        assert used > 0, "a frame cut without consuming: the gateway would loop"
        assert len(frame) <= used, f"{len(frame)}-byte frame out of {used} consumed bytes"
    return frame, used


def drain(protocol: Protocol, buffer: bytes) -> tuple[list[bytes], bytes]:
    """Cut frames from ``buffer`` until ``next_frame`` needs more (an empty buffer included), as
    the gateway does, checking every call. Returns the frames and the bytes left waiting."""
    frames: list[bytes] = []
    # Each call that does not wait consumes a byte at least: one call per byte, plus the last.
    for _ in range(len(buffer) + 1):
        frame, used = check_next_frame(protocol, buffer)
        if used == 0:
            return frames, buffer
        buffer = buffer[used:]
        if frame is not None:
            frames.append(frame)
    raise AssertionError("next_frame did not make progress")


def check_decoder(protocol: Protocol, frame: bytes, session: Session | None = None) -> Decoded | None:
    """Decode anything: DecodeError is the one allowed refusal (None). What decodes is a Decoded
    whose positions have an aware time and either no location or a whole one on Earth."""
    try:
        decoded = protocol.decode(frame, session if session is not None else Session())
    except DecodeError:
        return None
    assert isinstance(decoded, Decoded), f"decode returned {type(decoded).__name__}"
    for p in decoded.positions:
        assert p.fix_time.tzinfo is not None, f"naive fix_time from {frame!r}"
        assert (p.latitude is None) == (p.longitude is None), f"half a location from {frame!r}"
        if p.latitude is not None and p.longitude is not None:
            assert -90 <= p.latitude <= 90 and -180 <= p.longitude <= 180, (
                f"({p.latitude}, {p.longitude}) from {frame!r}"
            )
    return decoded


def all_finite(value: object) -> bool:
    """Attributes end up in jsonb, which refuses inf and NaN."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(all_finite(v) for v in value)
    return True


def check_every_split(
    protocol: Protocol, stream: bytes, expected: list[bytes], skip: Container[int] = ()
) -> int:
    """The stream arriving as two TCP segments, split at every byte but ``skip``, is cut into
    ``expected`` every time. Returns how many splits were checked."""
    checked = 0
    for split in range(len(stream) + 1):
        if split in skip:
            continue
        got = frames_fed_in_chunks(protocol, stream, split)
        assert got == expected, f"split at {split}: {got!r} != {expected!r}"
        checked += 1
    return checked
