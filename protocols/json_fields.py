"""Readers shared by the JSON protocols (``owntracks`` and our own ``json``).

Pure functions, no I/O. :func:`load` applies the limits every JSON payload gets (size, UTF-8, no
``NaN``/``Infinity``, no float that overflows to infinity) and refuses anything else as a
:class:`~protocols.model.DecodeError`; the other helpers read one JSON value without ever raising
anything but ``DecodeError``.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, TypeGuard

from protocols.model import DecodeError

MAX_PAYLOAD = 1 << 20  # 1 MiB: far above a phone's buffered upload, far below what hurts


def load(frame: bytes, *, protocol: str, max_bytes: int = MAX_PAYLOAD) -> Any:
    """Parse a UTF-8 JSON payload (a BOM is tolerated), refusing oversize and non-finite input."""
    if len(frame) > max_bytes:
        raise DecodeError(f"{protocol}: payload of {len(frame)} bytes is over {max_bytes}", frame)
    try:
        text = bytes(frame).decode("utf-8-sig")
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8, bad JSON and integers over Python's digit limit.
        raise DecodeError(f"{protocol}: invalid JSON ({str(exc)[:80]})", frame) from exc


def _finite_float(text: str) -> float:
    # jsonb (and every consumer) refuses non-finite numbers; 1e999 would parse to inf otherwise.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"non-finite number {text[:20]}")
    return value


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not JSON")


def finite_number(value: object) -> float | None:
    """A JSON number as a finite float; None for anything else (null, bool, string, a huge int)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer literal with hundreds of digits
        return None
    return number if math.isfinite(number) else None


def epoch(seconds: float, frame: bytes, *, what: str) -> datetime:
    """Unix seconds as an aware UTC datetime; a value off datetime's calendar is a DecodeError."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise DecodeError(f"{what} {seconds!r} is not a representable time", frame) from exc


def is_text(value: object) -> TypeGuard[str]:
    """A string with something in it (an empty SSID or tracker id is no value)."""
    return isinstance(value, str) and bool(value.strip())


def text_list(value: object) -> list[str] | None:
    """A JSON list of strings, or None when it is anything else."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return None
