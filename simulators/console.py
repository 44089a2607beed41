"""The terminal side of ``fieldtrack simulate`` and ``fieldtrack replay``: reading the options'
values, the progress line and the summary."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TextIO, TypeVar

import httpx

from simulators.device import Counters, LinkSettings
from simulators.replay import (
    format_of,
    read_bytes,
    read_hex,
    read_positions,
    send_captures,
    timeline,
    to_fixes,
)
from simulators.runner import SUPPORTED, Fleet, FleetSpec, Target, device_for, unique_id

T = TypeVar("T")
_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1.5h``, ``2d``, or a sum such as ``1h30m``: seconds."""
    text = text.strip().lower()
    total, pos = 0.0, 0
    for m in _DURATION.finditer(text):
        if m.start() != pos or m[2] not in _UNITS:
            raise ValueError(f"not a duration: {text!r} (examples: 30s, 10m, 1h30m)")
        total += float(m[1]) * _UNITS[m[2]]
        pos = m.end()
    if pos != len(text) or total <= 0:
        raise ValueError(f"not a duration: {text!r} (examples: 30s, 10m, 1h30m)")
    return total


def parse_rate(text: str) -> float:
    """``1/10s`` (one fix per 10 s), ``6/min``, ``2/s``, or an interval (``10s``): seconds between fixes."""
    count, slash, per = text.strip().partition("/")
    if not slash:
        return parse_duration(count)
    per = per.strip()
    period = parse_duration(per if per[:1].isdigit() else f"1{per}")
    n = float(count)
    if n <= 0:
        raise ValueError(f"not a rate: {text!r}")
    return period / n


def parse_ports(items: list[str]) -> dict[str, int]:
    """``gt06=6023`` items (also comma-separated in one item) -> {protocol: port}."""
    ports: dict[str, int] = {}
    for item in items:
        for pair in filter(None, (p.strip() for p in item.split(","))):
            name, eq, port = pair.partition("=")
            if not eq or name not in SUPPORTED or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"not a port override: {pair!r}"
                                 f" (e.g. gt06=6023; protocols: {', '.join(SUPPORTED)})")
            ports[name] = int(port)
    return ports


def parse_cheats(text: str | None) -> dict[str, int]:
    """``mock=2,teleport=1`` (a bare name means one device) -> {cheat: devices}."""
    cheats: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in (text or "").split(","))):
        name, eq, count = item.partition("=")
        if eq and not count.isdigit():
            raise ValueError(f"not a cheat count: {item!r} (e.g. mock=2)")
        cheats[name] = int(count) if eq else 1
    return cheats


def parse_target(text: str, protocols: tuple[str, ...],
                 overrides: dict[str, int]) -> tuple[str, dict[str, int]]:
    """``host`` or ``host:port``; a port is allowed only with one protocol (others need --port)."""
    host, colon, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if not colon:
        return text, overrides
    if not port.isdigit():
        raise ValueError(f"not a target: {text!r} (host or host:port)")
    if len(protocols) != 1:
        raise ValueError("host:port needs exactly one --protocol; give ports with --port gt06=6023,...")
    return host, {protocols[0]: int(port), **overrides}


def summary_line(c: Counters, *, acks: bool = True) -> str:
    acked = f"{c.acked:,} acked" if acks else "acks n/a"
    line = (f"{c.sent:,} sent, {acked}, {c.retried:,} retried, {c.errors:,} errors,"
            f" {c.reconnects:,} reconnects")
    return line + (f", {c.unconfirmed:,} unconfirmed" if c.unconfirmed else "")


def short_duration(seconds: float) -> str:
    """``45s``, ``4m12s``, ``10m``, ``1h05m``, ``2h``: how long, at a glance (whole seconds)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s % 60 else f"{s // 60}m"
    h, m = divmod(s // 60, 60)
    return f"{h}h{m:02d}m" if m else f"{h}h"


def progress_text(c: Counters, elapsed_s: float, duration_s: float | None, done: int, devices: int,
                  *, width: int = 20) -> str:
    """The progress line. With a duration, a bar of the run's wall time:
    ``[########............] 42%  4m12s/10m  sent 12,400 acked 12,380 retried 3 errors 0  3/1,000 devices
    done``. Past the duration the devices are still delivering their buffers: the bar holds at 99 %
    until the last device is done, so 100 % means finished, not merely late."""
    counts = f"sent {c.sent:,} acked {c.acked:,} retried {c.retried:,} errors {c.errors:,}"
    devices_done = f"{done:,}/{devices:,} devices done"
    if not duration_s or duration_s <= 0:
        return f"[{short_duration(elapsed_s):>6}] {devices_done} | {counts}"
    finished = devices > 0 and done >= devices
    fraction = 1.0 if finished else min(max(elapsed_s, 0.0) / duration_s, 0.99)
    filled = int(fraction * width)
    bar = "#" * filled + "." * (width - filled)
    clock = f"{short_duration(elapsed_s)}/{short_duration(duration_s)}"
    return f"[{bar}] {int(fraction * 100):3d}%  {clock}  {counts}  {devices_done}"


class Progress:
    """A bar redrawn in place on a terminal (``\\r``); the same text as a plain line every
    ``every_s`` otherwise (logs, CI). ``duration_s`` is the run's wall length, None when unknown."""

    def __init__(self, out: TextIO, every_s: float = 10.0, duration_s: float | None = None) -> None:
        self.out = out
        self.tty = out.isatty()
        self.every_s = every_s
        self.duration_s = duration_s
        self.last = 0.0

    def __call__(self, fleet: Fleet) -> None:
        now = time.monotonic()
        if not self.tty and now - self.last < self.every_s:
            return
        self.last = now
        text = progress_text(fleet.total(), now - fleet.started, self.duration_s, fleet.done,
                             len(fleet.members))
        if self.tty:
            self.out.write("\r" + text[:200] + "\x1b[K")
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def end(self) -> None:
        if self.tty:
            self.out.write("\n")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def raise_fd_limit() -> None:
    """A thousand devices need a thousand sockets: lift the soft limit to the hard one."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def simulate(spec: FleetSpec, target: Target, *, out: TextIO = sys.stdout, list_ids: bool = False,
             progress_every_s: float = 10.0) -> int:
    fleet = Fleet(spec, target)
    if list_ids:
        for m in fleet.members:
            print(f"{m.protocol}\t{m.unique_id}" + (f"\t{m.cheat}" if m.cheat else ""), file=out)
        return 0
    cheaters = [f"{m.unique_id} ({m.cheat})" for m in fleet.members if m.cheat]
    print(f"simulating {spec.devices:,} devices ({', '.join(spec.protocols)}) -> {target.host}, one fix every"
          f" {spec.every_s:g}s for {spec.duration_s:g}s, clock x{spec.speed:g}, seed {spec.seed!r}", file=out)
    if cheaters:
        print(f"cheating: {', '.join(cheaters[:10])}{' ...' if len(cheaters) > 10 else ''}", file=out)
    progress = Progress(out, progress_every_s, spec.duration_s)
    try:
        raise_fd_limit()
        total = _run(fleet.run(progress, every_s=1.0 if progress.tty else min(progress_every_s, 5.0)))
    except KeyboardInterrupt:
        progress.end()
        print("interrupted", file=out)
        return 130
    progress.end()
    for name, c in fleet.counters.items():
        print(f"  {name:<13} {summary_line(c, acks=not name.startswith('nmea'))}", file=out)
    print(f"total: {summary_line(total)}", file=out)
    for error in fleet.last_errors():
        print(f"  last error: {error}", file=out)
    # Success: something was sent and every fix of a protocol with acks was acknowledged.
    lost = sum(c.unconfirmed for name, c in fleet.counters.items() if not name.startswith("nmea"))
    return 0 if total.sent and not lost else 1


async def _replay_positions(path: Path, fmt: str, protocol: str, device_id: str, target: Target,
                            speed: float, keep_times: bool, link: LinkSettings) -> Counters:
    fixes = to_fixes(read_positions(path, fmt))
    if not fixes:
        raise ValueError(f"{path}: no positions found")
    counters = Counters()
    async with httpx.AsyncClient() as client:
        source = timeline(fixes, speed, keep_times=keep_times)
        seed = f"replay/{device_id}"
        device = device_for(protocol, device_id, target, source, counters, link, seed, client)
        await device.run()
    return counters


def replay(path: Path, protocol: str, target: Target, *, device_id: str | None, speed: float,
           keep_times: bool, fmt: str | None, link: LinkSettings, out: TextIO = sys.stdout) -> int:
    fmt = fmt or format_of(path)
    if fmt == "hex":
        if protocol.endswith(":udp"):
            raise ValueError("hex captures are written to the TCP port; give the protocol without :udp")
        captures = read_hex(read_bytes(path))
        port = target.port(protocol)
        print(f"replaying {len(captures):,} frames from {path} to {target.host}:{port} ({protocol}),"
              f" x{speed:g}", file=out)
        sent, answered = _run(send_captures(target.host, port, captures, speed))
        print(f"{sent:,} frames sent, {answered:,} bytes answered", file=out)
        return 0
    device_id = device_id or unique_id(protocol, 0)
    print(f"replaying {path} ({fmt}) as {protocol} device {device_id} to {target.host}, x{speed:g}", file=out)
    counters = _run(_replay_positions(path, fmt, protocol, device_id, target, speed, keep_times, link))
    print(f"total: {summary_line(counters, acks=not protocol.startswith('nmea'))}", file=out)
    return 0 if counters.sent else 1
