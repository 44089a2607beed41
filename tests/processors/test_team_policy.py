"""Team policy from settings JSON: defaults for what is unset, every bad value refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from processors.team_policy import CheckinPolicy, TeamPolicy


def test_empty_settings_give_the_documented_defaults() -> None:
    policy = TeamPolicy.from_settings({})
    assert policy.store_off_hours is True
    assert policy.checkin == CheckinPolicy()
    assert policy.checkin.max_fix_age_s == 120  # the "≤ 2 min old by default"
    assert policy.visit_detection.min_stop_minutes == 5
    assert policy.visit_cadence_days == {"A": 7, "B": 14, "C": 30}
    assert policy.mileage.rate == 0 and policy.mileage.currency == "EUR"
    assert TeamPolicy.from_settings(None) == policy


def test_values_are_read_and_other_keys_left_alone() -> None:
    policy = TeamPolicy.from_settings({
        "grades": ["Gold"], "store_off_hours": False, "checkin": {"max_fix_age_s": 60, "unknown": 1},
        "visit_detection": {"min_stop_minutes": 8}, "mileage": {"rate": 0.21, "currency": "CNY"},
        "visit_cadence_days": {"Gold": 3}})
    assert policy.store_off_hours is False
    assert policy.checkin.max_fix_age_s == 60 and policy.checkin.max_accuracy_m == 100
    assert policy.visit_detection.min_stop_minutes == 8
    assert (policy.mileage.rate, policy.mileage.currency) == (0.21, "CNY")
    assert policy.visit_cadence_days == {"Gold": 3}  # replaces the default grades' cadence


@pytest.mark.parametrize(("settings", "named"), [
    ({"store_off_hours": "no"}, "store_off_hours"),
    ({"checkin": []}, "settings.checkin"),
    ({"checkin": {"max_fix_age_s": -1}}, "max_fix_age_s"),
    ({"checkin": {"max_accuracy_m": "far"}}, "max_accuracy_m"),
    ({"visit_detection": {"min_stop_minutes": float("nan")}}, "min_stop_minutes"),
    ({"mileage": {"rate": -0.1}}, "mileage.rate"),
    ({"mileage": {"rate": True}}, "mileage.rate"),
    ({"mileage": {"currency": ""}}, "mileage.currency"),
    ({"visit_cadence_days": {"A": 0}}, "visit_cadence_days.A"),
    ({"visit_cadence_days": {"A": 7.5}}, "visit_cadence_days.A"),
    ({"visit_cadence_days": [7]}, "visit_cadence_days"),
])
def test_bad_values_name_the_setting(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        TeamPolicy.from_settings(settings)
