"""Per-device processor settings from JSON: one reading for every processor's ``*Params``.

Values arrive from the API as JSON, so a setting is read as the type of its default: true/false
for flags, a whole number of at least 1 for counts, a non-negative finite number otherwise; an
optional limit (a field typed ``... | None``) is switched off by null or "".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar

P = TypeVar("P")


def params_from_mapping(defaults: P, values: Mapping[str, Any], section: str) -> P:
    """``defaults`` with the settings named in ``values`` applied; unknown keys are ignored
    (the mapping is shared with other versions); a bad value raises ValueError naming it."""
    changes: dict[str, Any] = {}
    for f in fields(defaults):  # type: ignore[arg-type]
        if f.name not in values:
            continue
        value = values[f.name]
        try:
            changes[f.name] = _coerce(value, getattr(defaults, f.name), "None" in str(f.type))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{section} setting {f.name}: {value!r} is not valid ({exc})") from exc
    return replace(defaults, **changes)  # type: ignore[type-var]


def _coerce(value: Any, default: Any, optional: bool) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError("expected true or false")
    if optional and value in (None, ""):
        return None
    if isinstance(value, bool):
        raise ValueError("expected a number")
    if isinstance(default, int):
        whole = int(value)
        if whole != float(value) or whole < 1:
            raise ValueError("expected a whole number of at least 1")
        return whole
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError("expected a number of at least 0")
    return number
