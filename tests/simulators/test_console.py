"""The options of ``fieldtrack simulate``: rates, durations, ports, cheats, target."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

import pytest

from simulators.console import (
    Progress,
    parse_cheats,
    parse_duration,
    parse_ports,
    parse_rate,
    parse_target,
    progress_text,
    short_duration,
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


def test_short_durations() -> None:
    assert [short_duration(s) for s in (0, 45, 60, 252, 600, 3599, 3600, 3900, 7200, -3)] == [
        "0s", "45s", "1m", "4m12s", "10m", "59m59s", "1h", "1h05m", "2h", "0s"]


def test_progress_bar_fills_with_the_wall_clock_and_reaches_100_only_when_every_device_is_done() -> None:
    c = Counters(sent=12400, acked=12380, retried=3, errors=0)
    # 252 s of 600: 42 %, 8.4 of 20 cells -> 8 filled.
    assert progress_text(c, 252, 600, 3, 1000) == (
        "[########............]  42%  4m12s/10m  sent 12,400 acked 12,380 retried 3 errors 0"
        "  3/1,000 devices done")
    start = progress_text(Counters(), 0, 600, 0, 10)
    assert start.startswith("[....................]   0%  0s/10m  sent 0 acked 0")
    # Past the duration, still draining buffers: held at 99 %, never a full bar.
    late = progress_text(c, 700, 600, 999, 1000)
    assert late.startswith("[" + "#" * 19 + ".]  99%  11m40s/10m")
    done = progress_text(c, 610, 600, 1000, 1000)
    assert done.startswith("[" + "#" * 20 + "] 100%  10m10s/10m") and "1,000/1,000 devices done" in done
    # Without a duration there is nothing to fill: elapsed time and devices done.
    assert progress_text(c, 75, None, 2, 5) == (
        "[ 1m15s] 2/5 devices done | sent 12,400 acked 12,380 retried 3 errors 0")


class _Fleet:
    """What Progress reads of a fleet."""

    def __init__(self, started: float) -> None:
        self.started, self.done, self.members = started, 1, [object(), object()]

    def total(self) -> Counters:
        return Counters(sent=5, acked=4)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_in_place_on_a_terminal_and_writes_lines_otherwise() -> None:
    # 30.5 s ago: "30s" and 50 % for the next half second, however slow the machine.
    fleet = _Fleet(time.monotonic() - 30.5)
    tty = _Tty()
    bar = Progress(tty, every_s=10, duration_s=60)
    bar(fleet)  # type: ignore[arg-type]
    bar(fleet)  # type: ignore[arg-type]  # a terminal is redrawn every time
    bar.end()
    drawn = tty.getvalue()
    assert drawn.count("\r") == 2 and drawn.count("\x1b[K") == 2 and drawn.endswith("\n")
    assert "[##########..........]  50%  30s/1m  sent 5 acked 4 retried 0 errors 0  1/2 devices done" in drawn
    log = io.StringIO()
    lines = Progress(log, every_s=10, duration_s=60)
    lines(fleet)  # type: ignore[arg-type]
    lines(fleet)  # type: ignore[arg-type]  # within every_s of the last line: nothing
    assert log.getvalue().count("\n") == 1 and "\r" not in log.getvalue()
    assert log.getvalue().startswith("[##########..........]  50%  30s/1m  sent 5 acked 4")
