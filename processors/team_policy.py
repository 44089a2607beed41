"""A team's field-sales policy, read from ``teams.settings`` (JSON) with defaults for what is unset.

The settings object is shared with other keys (``grades`` for customers), so unknown keys are left
alone; a known key with a bad value is a ValueError naming it, raised when the team is saved so a
bad policy never reaches the processors.

    {"store_off_hours": true,
     "mileage": {"rate": 0.30, "currency": "EUR"},
     "checkin": {"max_fix_age_s": 120, "max_accuracy_m": 100, ...},
     "visit_detection": {"min_stop_minutes": 5},
     "visit_cadence_days": {"A": 7, "B": 14, "C": 30}}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from processors.settings import params_from_mapping


@dataclass(frozen=True, slots=True)
class CheckinPolicy:
    # A phone's fix older than this (by its own fix time, against the server's clock) is stale.
    max_fix_age_s: float = 120.0
    # A fix whose reported accuracy is worse than this cannot prove presence within ~150 m.
    max_accuracy_m: float = 100.0
    # A fix claimed in the future by more than this (phone clock skew) is refused.
    max_future_s: float = 30.0
    # Faster than this from the rep's previous known position means a teleport (mock location).
    teleport_speed_kmh: float = 300.0
    # The rep's tracked positions within this many seconds of the check-in are the cross-check.
    track_window_s: float = 300.0
    # How far the track may lie outside the customer's radius and still agree with the check-in.
    track_tolerance_m: float = 100.0


@dataclass(frozen=True, slots=True)
class DetectionPolicy:
    # A stop at least this long within a customer's radius is a detected visit.
    min_stop_minutes: float = 5.0


@dataclass(frozen=True, slots=True)
class MileagePolicy:
    # Amount per km; 0 means no rate set (the report then shows km only, amount 0).
    rate: float = 0.0
    currency: str = "EUR"


DEFAULT_CADENCE_DAYS: dict[str, int] = {"A": 7, "B": 14, "C": 30}


@dataclass(frozen=True, slots=True)
class TeamPolicy:
    # False: positions outside working hours are not stored at all (they are still acknowledged).
    store_off_hours: bool = True
    checkin: CheckinPolicy = field(default_factory=CheckinPolicy)
    visit_detection: DetectionPolicy = field(default_factory=DetectionPolicy)
    mileage: MileagePolicy = field(default_factory=MileagePolicy)
    # Days between visits a customer of each grade should get; a grade not listed has no cadence.
    visit_cadence_days: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CADENCE_DAYS))

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> TeamPolicy:
        values = settings or {}
        store = values.get("store_off_hours", True)
        if not isinstance(store, bool):
            raise ValueError(f"settings.store_off_hours must be true or false, not {store!r}")
        return cls(
            store_off_hours=store,
            checkin=params_from_mapping(CheckinPolicy(), _section(values, "checkin"), "settings.checkin"),
            visit_detection=params_from_mapping(DetectionPolicy(), _section(values, "visit_detection"),
                                                "settings.visit_detection"),
            mileage=_mileage(_section(values, "mileage")),
            visit_cadence_days=_cadence(values.get("visit_cadence_days", DEFAULT_CADENCE_DAYS)),
        )


def _section(values: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    section = values.get(key, {})
    if not isinstance(section, Mapping):
        raise ValueError(f"settings.{key} must be an object")
    return section


def _mileage(values: Mapping[str, Any]) -> MileagePolicy:
    rate = values.get("rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate < 0:
        raise ValueError(f"settings.mileage.rate must be a number of at least 0, not {rate!r}")
    currency = values.get("currency", "EUR")
    if not isinstance(currency, str) or not 1 <= len(currency) <= 8:
        raise ValueError(f"settings.mileage.currency must be a short code like EUR, not {currency!r}")
    return MileagePolicy(rate=float(rate), currency=currency)


def _cadence(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise ValueError('settings.visit_cadence_days must be an object like {"A": 7, "B": 14}')
    out: dict[str, int] = {}
    for grade, days in value.items():
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3660:
            raise ValueError(f"settings.visit_cadence_days.{grade} must be a whole number of days "
                             f"from 1 to 3660, not {days!r}")
        out[str(grade)] = days
    return out
