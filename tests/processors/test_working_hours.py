from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.working_hours import DAYS, on_duty, working_intervals

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


# --- working_intervals agrees with on_duty (property) -------------------------------------------

# Zones with DST of an hour (both hemispheres), of half an hour (Lord Howe), a zone that skipped a
# whole day (Apia, 2011-12-30) and ones without DST.
ZONES = ["Europe/Amsterdam", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe",
         "America/Sao_Paulo", "Pacific/Apia", "Asia/Kolkata", "UTC"]
# Instants are drawn near these local DST days, where a naive reading goes wrong.
DST_DAYS = [datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 10, 25, tzinfo=UTC),
            datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC),
            datetime(2026, 4, 5, tzinfo=UTC), datetime(2026, 10, 4, tzinfo=UTC),
            datetime(2011, 12, 29, tzinfo=UTC), datetime(2018, 11, 4, tzinfo=UTC)]


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def calendars(draw: st.DrawFn) -> dict[str, list[list[str]]]:
    """Valid calendars (as storage.calendars accepts them): per day, ordered periods that do not
    overlap (they may touch); quarter hours so period edges often fall into DST gaps and folds."""
    out: dict[str, list[list[str]]] = {}
    for day in draw(st.sets(st.sampled_from(DAYS), max_size=7)):
        edges = sorted(draw(st.sets(st.integers(0, 96), min_size=2, max_size=8)))
        edges = edges[: len(edges) // 2 * 2]
        out[day] = [[_hhmm(edges[i] * 15), _hhmm(edges[i + 1] * 15)] for i in range(0, len(edges), 2)]
    return out


instants = st.one_of(
    st.builds(lambda day, s: day + timedelta(seconds=s), st.sampled_from(DST_DAYS),
              st.integers(-2 * 86400, 2 * 86400)),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
)


@settings(max_examples=600, deadline=None)
@given(calendar=calendars(), zone=st.sampled_from(ZONES), at=instants,
       before=st.integers(1, 4 * 86400), after=st.integers(1, 4 * 86400))
def test_working_intervals_agree_with_on_duty(calendar: dict[str, list[list[str]]], zone: str, at: datetime,
                                              before: int, after: int) -> None:
    start, end = at - timedelta(seconds=before), at + timedelta(seconds=after)
    found = working_intervals(calendar, zone, start, end)
    for a, b in found:
        assert start <= a < b <= end and a.utcoffset() == timedelta(0)
    for (_, b), (c, _) in pairwise(found):
        assert b < c  # ordered, disjoint and not touching (touching periods are one interval)
    inside = any(a <= at < b for a, b in found)
    assert inside == on_duty(calendar, zone, at), (found, at.astimezone(ZoneInfo(zone)))


def test_period_edges_in_dst_gaps_and_folds() -> None:
    # Amsterdam, Sunday 2026-03-29: clocks jump 02:00 CET -> 03:00 CEST at 01:00 UTC, so a period
    # from 02:30 begins at the jump; Sunday 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00 UTC, so
    # 02:30 is shown twice and a period from 02:30 runs from its first showing (00:30 UTC) on.
    spring = {"sun": [["02:30", "05:00"]]}
    ams = "Europe/Amsterdam"
    day = datetime(2026, 3, 29, tzinfo=UTC)
    assert working_intervals(spring, ams, day, day + timedelta(days=1)) == [
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 3, 29, 3, 0, tzinfo=UTC))]
    assert on_duty(spring, ams, datetime(2026, 3, 29, 1, 0, tzinfo=UTC))
    assert not on_duty(spring, ams, datetime(2026, 3, 29, 0, 59, tzinfo=UTC))
    day = datetime(2026, 10, 25, tzinfo=UTC)
    assert working_intervals(spring, ams, day, day + timedelta(days=1)) == [
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 4, 0, tzinfo=UTC))]
    assert on_duty(spring, ams, datetime(2026, 10, 25, 1, 15, tzinfo=UTC))  # 02:15 CET, second pass
