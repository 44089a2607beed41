"""The options of ``fieldtrack simulate``: rates, durations, ports, cheats, target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulators.console import (
    parse_cheats,
    parse_duration,
    parse_ports,
    parse_rate,
    parse_target,
    summary_line,
)
from simulators.device import Counters
from simulators.runner import Fleet, FleetSpec, Target, unique_id


def test_durations_and_rates() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "10m", "1.5h", "1h30m", "2d")] == [
        90, 90, 600, 5400, 5400, 172800]
    assert [parse_rate(t) for t in ("1/10s", "6/min", "2/s", "10s", "1/0.5s")] == [10, 10, 0.5, 10, 0.5]
    for bad in ("", "often", "10 parsecs", "0s", "-1m"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    with pytest.raises(ValueError):
        parse_rate("0/10s")


def test_ports_cheats_and_target() -> None:
    assert parse_ports(["gt06=6023,osmand=8055", "h02=6013"]) == {"gt06": 6023, "osmand": 8055, "h02": 6013}
    for bad in (["gt06"], ["pigeon=1"], ["gt06=99999"]):
        with pytest.raises(ValueError):
            parse_ports(bad)
    assert parse_cheats("mock=2,teleport") == {"mock": 2, "teleport": 1}
    assert parse_target("10.0.0.5", ("gt06", "osmand"), {}) == ("10.0.0.5", {})
    assert parse_target("10.0.0.5:7000", ("gt06",), {}) == ("10.0.0.5", {"gt06": 7000})
    with pytest.raises(ValueError, match="exactly one"):
        parse_target("10.0.0.5:7000", ("gt06", "osmand"), {})
    # Without overrides each protocol goes to Traccar's port, as a device pointed at Traccar does.
    target = Target("h")
    assert [target.port(p) for p in ("gt06", "h02", "tk103", "gps103", "teltonika", "nmea", "osmand")] == [
        5023, 5013, 5002, 5001, 5027, 5005, 5055]


def test_fleet_ids_protocols_cheaters_and_a_clock_that_never_runs_ahead() -> None:
    spec = FleetSpec(devices=5, protocols=("gt06", "owntracks"), every_s=10, duration_s=600, speed=60,
                     cheats={"mock": 1, "teleport": 1})
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    fleet = Fleet(spec, Target(), now=now)
    assert [(m.protocol, m.unique_id, m.cheat) for m in fleet.members] == [
        ("gt06", "351000000000000", "mock"), ("owntracks", "sim/rep00001", "teleport"),
        ("gt06", "351000000000002", None), ("owntracks", "sim/rep00003", None),
        ("gt06", "351000000000004", None)]
    assert len(unique_id("tk103", 7)) == 12
    # 60 fixes, the last due 590 wall seconds in, at 590 * 60 simulated seconds after the start.
    last = fleet.start + timedelta(seconds=590 * 60)
    assert last <= now + timedelta(seconds=590)
    with pytest.raises(ValueError):
        FleetSpec(devices=1, protocols=("gt06",), every_s=1, duration_s=1, cheats={"mock": 2})


def test_summary_line() -> None:
    c = Counters(sent=1200, acked=1190, retried=3, errors=1, reconnects=1, unconfirmed=10)
    assert summary_line(c) == "1,200 sent, 1,190 acked, 3 retried, 1 errors, 1 reconnects, 10 unconfirmed"
    assert summary_line(Counters(sent=2), acks=False).startswith("2 sent, acks n/a")
