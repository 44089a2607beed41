"""Filters: every reason on a fix built from a real one, NMEA's three sentences per epoch, jumps
and the recovery from a real relocation, settings, state round trip; properties on any track."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from datetime import timedelta
from functools import cache
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors import filters
from processors.filters import FilterParams, FilterState
from processors.fix import Fix
from processors.geo import haversine_m
from tests.processors.tracks import RENO, Params, nmea_fixes, pipeline, random_tracks, results

DEFAULTS = FilterParams()


@cache
def reno_epochs() -> list[Fix]:
    return nmea_fixes(RENO, {"positions": "epoch"})


def primed(count: int = 10, params: FilterParams = DEFAULTS) -> tuple[FilterState, Fix]:
    """A state that has accepted the first ``count`` epochs of the Reno drive, and the last."""
    state = FilterState()
    for fix in reno_epochs()[:count]:
        state, reason = filters.step(state, fix, params)
        assert reason is None
    return state, reno_epochs()[count - 1]


def later(fix: Fix, seconds: float, **changes: Any) -> Fix:
    return dataclasses.replace(fix, time=fix.time + timedelta(seconds=seconds), key=fix.key + 1, **changes)


CASES: list[tuple[str, dict[str, Any], float, dict[str, Any]]] = [
    # reason, changes to the next real fix, seconds after the last accepted, settings switching it off
    ("invalid", {"valid": False}, 2, {"invalid": False}),
    ("invalid", {"latitude": 91.0}, 2, {"invalid": False, "max_speed_kmh": None}),
    ("invalid", {"longitude": math.nan}, 2, {"invalid": False, "max_speed_kmh": None}),
    ("zero", {"latitude": 0.0, "longitude": 0.0}, 2, {"zero": False, "max_speed_kmh": None}),
    ("duplicate", {"latitude": 39.5}, 0, {"duplicate": False, "max_speed_kmh": None}),
    ("order", {}, -2, None),
    ("future", {"server_time_s": -601}, 2, {"max_future_s": None}),
    ("accuracy", {"accuracy_m": 101.0}, 2, {"max_accuracy_m": None}),
    ("hdop", {"hdop": 20.5}, 2, {"max_hdop": ""}),
    ("period", {}, 2, {"min_period_s": None}),
    ("jump", {"latitude": 39.6}, 2, {"max_speed_kmh": None}),
]


@pytest.mark.parametrize(("reason", "changes", "after", "off"), CASES)
def test_each_reason(reason: str, changes: dict[str, Any], after: float, off: dict[str, Any] | None) -> None:
    on = {"min_period_s": 10} if reason == "period" else {}
    params = FilterParams.from_mapping(on)
    state, last = primed()
    before = state.to_json()
    changes = dict(changes)
    shift = changes.pop("server_time_s", None)
    fix = later(reno_epochs()[10], after - (reno_epochs()[10].time - last.time).total_seconds(), **changes)
    if shift is not None:
        fix = dataclasses.replace(fix, server_time=fix.time + timedelta(seconds=shift))
    state, got = filters.step(state, fix, params)
    assert got == reason
    if reason != "jump":  # a jump is remembered as a suspect, never as the reference
        assert state.to_json() == before
    assert state.last is not None and state.last.time == last.time
    if off is not None:
        fresh, _ = primed()
        assert filters.step(fresh, fix, FilterParams.from_mapping({**on, **off}))[1] is None


def test_limits_are_inclusive() -> None:
    state, _ = primed()
    fix = later(reno_epochs()[10], 0, accuracy_m=100.0, hdop=20.0,
                server_time=reno_epochs()[10].time - timedelta(seconds=600))
    assert filters.step(state, fix, DEFAULTS)[1] is None


def test_nmea_sentences_of_one_epoch_are_duplicates() -> None:
    """The decoder's default: RMC, GGA and GLL of each second are three positions. The first of
    each epoch is accepted, the other two are duplicates, and nothing else is filtered."""
    fixes = nmea_fixes(RENO)
    run = pipeline(fixes)
    per_time = Counter(f.time for f in fixes)
    assert set(per_time.values()) == {3}
    counts = Counter(run.reasons)
    assert counts == {None: len(per_time), "duplicate": len(fixes) - len(per_time)}
    first_of_epoch = {f.time: f.key for f in sorted(fixes, key=lambda f: f.order, reverse=True)}
    assert [f.key for f in run.accepted] == sorted(first_of_epoch.values())


def test_duplicates_disturb_nothing() -> None:
    fixes = nmea_fixes(RENO)
    firsts = {f.time: f for f in sorted(fixes, key=lambda f: f.order, reverse=True)}
    alone = pipeline(sorted(firsts.values(), key=lambda f: f.order))
    together = pipeline(fixes)
    assert together.trips == alone.trips and together.stops == alone.stops
    assert together.events == alone.events
    assert (together.open_trip, together.open_stop) == (alone.open_trip, alone.open_stop)
    accepted = [o for o, r in zip(together.odometer_m, together.reasons, strict=True) if r is None]
    assert accepted == alone.odometer_m


def test_one_teleport_is_filtered_and_forgotten() -> None:
    fixes = reno_epochs()
    k = 1500
    teleport = dataclasses.replace(fixes[k], latitude=fixes[k].latitude + 0.2, key=fixes[k].key)
    with_it = pipeline([*fixes[:k], teleport, *fixes[k + 1 :]])
    without = pipeline([*fixes[:k], *fixes[k + 1 :]])
    assert with_it.reasons[k] == "jump"
    assert with_it.reasons[:k] + with_it.reasons[k + 1 :] == without.reasons
    assert with_it.trips == without.trips and with_it.stops == without.stops
    assert with_it.odometer_m[-1] == without.odometer_m[-1]


@pytest.mark.parametrize("recovery", [2, 3, 5])
def test_a_real_relocation_is_accepted_after_consistent_fixes(recovery: int) -> None:
    """The device is flown 500 km in an hour (switched off) and reports again: too fast to believe
    from the last fix, but ``recovery`` consistent fixes in a row are the new truth."""
    fixes = reno_epochs()
    k = 1000
    moved = [dataclasses.replace(f, latitude=f.latitude + 4.5, time=f.time + timedelta(hours=1))
             for f in fixes[k:k + 20]]
    gap = moved[0].time - fixes[k - 1].time
    speed = haversine_m(fixes[k - 1].latitude, fixes[k - 1].longitude, moved[0].latitude,
                        moved[0].longitude) / gap.total_seconds() * 3.6
    assert speed > DEFAULTS.max_speed_kmh
    params = FilterParams(jump_recovery_fixes=recovery)
    state = FilterState()
    reasons = []
    for fix in [*fixes[:k], *moved]:
        state, reason = filters.step(state, fix, params)
        reasons.append(reason)
    assert reasons[k:] == ["jump"] * (recovery - 1) + [None] * (20 - recovery + 1)


def test_a_wrong_first_fix_costs_only_the_recovery() -> None:
    """A receiver's first fix after a cold start can be where it was last switched off. Nothing
    judges the very first fix, so it is accepted; the real fixes after it look like a jump until
    ``jump_recovery_fixes`` of them agree."""
    fixes = reno_epochs()[:50]
    stale = dataclasses.replace(fixes[0], latitude=fixes[0].latitude - 3,
                                time=fixes[0].time - timedelta(seconds=2), key=-1)
    run = pipeline([stale, *fixes])
    n = DEFAULTS.jump_recovery_fixes
    assert run.reasons == [None] + ["jump"] * (n - 1) + [None] * (len(fixes) - n + 1)


def test_garbage_that_disagrees_with_itself_never_becomes_the_truth() -> None:
    fixes = reno_epochs()
    k = 1000
    state = FilterState()
    for fix in fixes[:k]:
        state, _ = filters.step(state, fix, DEFAULTS)
    for i in range(30):  # two wrong places, 100 km apart, reported in turn every second
        where = fixes[k - 1].latitude + (0.5 if i % 2 else -0.5)
        state, reason = filters.step(state, later(fixes[k - 1], i + 1, latitude=where), DEFAULTS)
        assert reason == "jump"
    state, reason = filters.step(state, dataclasses.replace(fixes[k + 15], time=fixes[k - 1].time
                                                            + timedelta(seconds=31)), DEFAULTS)
    assert reason is None


def test_min_period() -> None:
    run = pipeline(reno_epochs(), Params(filters=FilterParams(min_period_s=10)))
    gaps = [(b.time - a.time).total_seconds() for a, b in pairwise(run.accepted)]
    assert min(gaps) >= 10
    last = None
    for fix, reason in zip(run.fixes, run.reasons, strict=True):
        if reason is None:
            last = fix
        elif reason == "period":
            assert last is not None and (fix.time - last.time).total_seconds() < 10
    # The Garmin reports every 2 s: four of every five fixes are too close.
    assert Counter(run.reasons)["period"] > 0.7 * len(run.fixes)
    assert set(run.reasons) == {None, "period", "hdop"}


def test_params_from_mapping() -> None:
    p = FilterParams.from_mapping({"max_speed_kmh": "250", "max_hdop": None, "duplicate": "false",
                                   "jump_recovery_fixes": 4, "unknown": "ignored"})
    assert (p.max_speed_kmh, p.max_hdop, p.duplicate, p.jump_recovery_fixes) == (250.0, None, False, 4)
    assert FilterParams.from_mapping({}) == FilterParams()
    for bad in ({"max_speed_kmh": "fast"}, {"max_speed_kmh": -1}, {"zero": "yes"},
                {"jump_recovery_fixes": 0}, {"jump_recovery_fixes": 2.5}, {"max_accuracy_m": math.inf}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            FilterParams.from_mapping(bad)


def test_state_round_trip_during_recovery() -> None:
    state, last = primed()
    state, reason = filters.step(state, later(last, 2, latitude=last.latitude + 1), DEFAULTS)
    assert reason == "jump" and state.suspect_count == 1
    copy = FilterState.from_json(state.to_json())
    assert copy == state
    assert FilterState.from_json(FilterState().to_json()) == FilterState.initial()


# --- any input ---------------------------------------------------------------------------------


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(random_tracks())
def test_accepted_fixes_pass_every_check(fixes: list[Fix]) -> None:
    run = pipeline(fixes)
    accepted = run.accepted
    assert all(a.time < b.time for a, b in pairwise(accepted))
    max_hdop, max_accuracy = DEFAULTS.max_hdop or math.inf, DEFAULTS.max_accuracy_m or math.inf
    for fix in accepted:
        assert fix.valid and (fix.latitude, fix.longitude) != (0.0, 0.0)
        assert fix.hdop is None or fix.hdop <= max_hdop
        assert fix.accuracy_m is None or fix.accuracy_m <= max_accuracy


@PROPERTY
@given(random_tracks(), st.data())
def test_repeated_fixes_change_nothing(fixes: list[Fix], data: st.DataObject) -> None:
    """The same fix sent again (a tracker resending what it was not sure got through)."""
    if not fixes:
        return
    picks = data.draw(st.sets(st.integers(0, len(fixes) - 1), min_size=1, max_size=5))
    top = max(f.key for f in fixes)
    again = [dataclasses.replace(fixes[i], key=top + 1 + n) for n, i in enumerate(sorted(picks))]
    base = pipeline(fixes)
    both = pipeline([*fixes, *again])
    assert (both.trips, both.stops, both.events, both.open_trip, both.open_stop) == \
        (base.trips, base.stops, base.events, base.open_trip, base.open_stop)
    assert both.odometer_m[-1] == base.odometer_m[-1]
    assert results(pipeline(fixes)) == results(base)
