from __future__ import annotations

from datetime import UTC, datetime

from processors.working_hours import on_duty

WEEK = {"mon": [["08:00", "12:00"], ["13:00", "17:30"]], "sat": [["09:00", "24:00"]]}


def test_periods_in_the_local_zone() -> None:
    # Monday 2026-11-30: 07:30 UTC is 08:30 in Amsterdam (CET, UTC+1).
    assert on_duty(WEEK, "Europe/Amsterdam", datetime(2026, 11, 30, 7, 30, tzinfo=UTC))
    assert not on_duty(WEEK, "UTC", datetime(2026, 11, 30, 7, 30, tzinfo=UTC))
    assert not on_duty(WEEK, "Europe/Amsterdam", datetime(2026, 11, 30, 11, 30, tzinfo=UTC))  # lunch
    assert on_duty(WEEK, "Europe/Amsterdam", datetime(2026, 11, 30, 16, 29, tzinfo=UTC))
    assert not on_duty(WEEK, "Europe/Amsterdam", datetime(2026, 11, 30, 16, 30, tzinfo=UTC))  # 17:30 ends


def test_days_off_and_to_midnight() -> None:
    assert not on_duty(WEEK, "UTC", datetime(2026, 12, 1, 10, 0, tzinfo=UTC))  # Tuesday not listed
    assert on_duty(WEEK, "UTC", datetime(2026, 12, 5, 23, 59, tzinfo=UTC))  # Saturday until 24:00


def test_no_calendar_is_always_on_duty() -> None:
    assert on_duty({}, "UTC", datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    assert on_duty(None, "UTC", datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
