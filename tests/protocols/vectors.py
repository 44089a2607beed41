"""Replay of Traccar's decoder test frames (tests/data/traccar_vectors.json) against our codecs.

The rules are the foundation issue's: replay each Traccar test method in order on one session;
``position`` = exactly one position, ``positions`` = a non-empty list, ``attributes`` = one
position (location unchecked) carrying the pinned attribute, ``notnull`` = at least one
position, ``none`` = no position; pinned values match (lat/lon within 1e-5, time exact, speed
from knots); every decoded position passes Traccar's sanity bounds.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from protocols.base import Protocol
from protocols.keys import from_traccar
from protocols.model import KNOT_KMH, Decoded, Position, Session

DATA = Path(__file__).resolve().parent.parent / "data"
VECTORS = DATA / "traccar_vectors.json"
FRAME_VECTORS = DATA / "traccar_frame_vectors.json"

Vector = dict[str, Any]


def vectors_for(protocol: str) -> dict[str, list[Vector]]:
    """Vectors of one protocol grouped by Traccar test method, in replay order."""
    by_method: dict[str, list[Vector]] = defaultdict(list)
    for v in json.loads(VECTORS.read_text()):
        if v["protocol"] == protocol and not v.get("disabled_in_traccar"):
            by_method[v["test_method"]].append(v)
    for items in by_method.values():
        items.sort(key=lambda v: v["seq_in_test"])
    return dict(by_method)


def frame_vectors_for(protocol: str) -> list[Vector]:
    return [v for v in json.loads(FRAME_VECTORS.read_text()) if v["protocol"] == protocol]


def frame_bytes(v: Vector) -> bytes:
    if v["encoding"] == "hex":
        return bytes.fromhex(v["frame"])
    return str(v["frame"]).encode("latin-1")


def session_for(v: Vector) -> Session:
    context = v.get("context") or {}
    config: dict[str, Any] = {}
    if "modelOverride" in context:
        config["model"] = context["modelOverride"]
    if "extended" in context:
        config["extended"] = context["extended"]
    transport = v["transport"]
    if context.get("connectionless") is True:
        transport = "udp"
    elif context.get("connectionless") is False:
        transport = "tcp"
    return Session(transport=transport, config=config)


def apply_context(session: Session, v: Vector) -> None:
    """Traccar tests change decoder settings mid-method; mirror that on the live session."""
    fresh = session_for(v)
    session.config = fresh.config
    session.transport = fresh.transport


def check_sanity(p: Position, where: str) -> None:
    now = datetime.now(UTC)
    assert p.fix_time.tzinfo is not None, f"{where}: naive fix_time"
    assert datetime(1999, 1, 1, tzinfo=UTC) < p.fix_time < now + timedelta(hours=25), (
        f"{where}: fix_time {p.fix_time} out of bounds"
    )
    if p.latitude is not None:
        assert -90 <= p.latitude <= 90, f"{where}: latitude {p.latitude}"
    if p.longitude is not None:
        assert -180 <= p.longitude <= 180, f"{where}: longitude {p.longitude}"
    assert (p.latitude is None) == (p.longitude is None), f"{where}: half a location"
    if p.altitude_m is not None:
        assert -12262 <= p.altitude_m <= 18000, f"{where}: altitude {p.altitude_m}"
    if p.speed_kmh is not None:
        assert 0 <= p.speed_kmh <= 869 * KNOT_KMH, f"{where}: speed {p.speed_kmh}"
    if p.course_deg is not None:
        assert 0 <= p.course_deg <= 360, f"{where}: course {p.course_deg}"
    for key in p.attributes:
        assert isinstance(key, str) and key == key.strip(), f"{where}: bad attribute key {key!r}"


def _close(a: float, b: float, tol: float) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def check_expect(p: Position, expect: dict[str, Any], where: str) -> None:
    for key, want in expect.items():
        if key == "time":
            got_time = p.fix_time.astimezone(UTC)
            want_time = datetime.fromisoformat(want.replace("Z", "+00:00"))
            assert got_time == want_time, f"{where}: time {got_time} != {want_time}"
        elif key == "valid":
            assert p.valid is want, f"{where}: valid {p.valid} != {want}"
        elif key in ("latitude", "longitude"):
            got = getattr(p, key)
            assert got is not None and abs(got - want) <= 1e-5, f"{where}: {key} {got} != {want}"
        elif key == "speed":
            assert p.speed_kmh is not None and _close(p.speed_kmh, want * KNOT_KMH, 1e-3), (
                f"{where}: speed_kmh {p.speed_kmh} != {want} kn"
            )
        elif key == "course":
            assert p.course_deg is not None and _close(p.course_deg, want, 1e-6), f"{where}: course"
        elif key == "altitude":
            assert p.altitude_m is not None and _close(p.altitude_m, want, 1e-6), f"{where}: altitude"
        else:
            ours, factor = from_traccar(key)
            got = p.attributes.get(ours)
            if want is None:
                assert ours not in p.attributes, f"{where}: {ours} should be absent, is {got!r}"
            elif isinstance(want, (bool, str)):
                assert got == want, f"{where}: attribute {ours} {got!r} != {want!r}"
            else:
                assert isinstance(got, int | float) and not isinstance(got, bool), (
                    f"{where}: attribute {ours} {got!r} is not a number (want {want})"
                )
                assert _close(float(got), want * factor, 1e-6), f"{where}: {ours} {got} != {want * factor}"


def check_kind(v: Vector, decoded: Decoded, where: str) -> None:
    n = len(decoded.positions)
    kind = v["kind"]
    if kind == "position":
        assert n == 1, f"{where}: expected one position, got {n}"
        assert decoded.positions[0].latitude is not None, f"{where}: position without location"
    elif kind == "positions":
        assert n >= 1, f"{where}: expected positions, got none"
    elif kind == "attributes":
        assert n == 1, f"{where}: expected one position with attributes, got {n}"
    elif kind == "notnull":
        assert n >= 1, f"{where}: expected something decoded, got nothing"
    elif kind == "none":
        assert n == 0, f"{where}: expected no position, got {n}"
    else:
        raise AssertionError(f"{where}: unknown kind {kind}")


def replay_method(protocol: Protocol, items: list[Vector]) -> list[Decoded]:
    """Replay one Traccar test method on one session, checking every frame."""
    session = session_for(items[0])
    results = []
    for v in items:
        where = f"{v['id']} ({v['source']})"
        apply_context(session, v)
        decoded = protocol.decode(frame_bytes(v), session)
        if decoded.unique_id:
            session.unique_id = decoded.unique_id
        check_kind(v, decoded, where)
        for p in decoded.positions:
            check_sanity(p, where)
        if v.get("expect") and decoded.positions:
            check_expect(decoded.positions[-1] if v["kind"] == "positions" else decoded.positions[0],
                         v["expect"], where)
        results.append(decoded)
    return results


def frames_of(protocol: Protocol, stream: bytes) -> list[bytes]:
    """Every frame ``next_frame`` cuts from a whole stream."""
    frames = []
    buf = bytes(stream)
    while buf:
        frame, used = protocol.next_frame(buf)
        if used == 0:
            break
        buf = buf[used:]
        if frame is not None:
            frames.append(frame)
    return frames


def frames_fed_in_chunks(protocol: Protocol, stream: bytes, split: int) -> list[bytes]:
    """The same stream arriving as two TCP segments split at ``split``: frames must not change."""
    frames: list[bytes] = []
    buf = b""
    for chunk in (stream[:split], stream[split:]):
        buf += chunk
        while buf:
            frame, used = protocol.next_frame(buf)
            if used == 0:
                break
            buf = buf[used:]
            if frame is not None:
                frames.append(frame)
    return frames
