"""``fieldtrack serve | demo | token | user add | simulate | replay | version``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fieldtrack import __version__, settings

if TYPE_CHECKING:
    from simulators.device import LinkSettings
    from simulators.runner import Target


def _settings(args: argparse.Namespace) -> settings.Settings:
    return settings.load(config_file=Path(args.config) if args.config else None)


def _serve(args: argparse.Namespace) -> int:
    if args.demo:
        return _demo(args)
    from fieldtrack.server import run

    run(_settings(args))
    return 0


DEMO_HELP = """\
The server (as `fieldtrack serve`, same settings) plus a seeded sales team in Amsterdam: a manager,
4 reps each with a phone (osmand) and a van tracker (gt06), 32 customers, 3 geofences and a week of
visit plans; simulated reps drive their rounds through the real listeners. The clock replays the
last --backlog at --speed, then runs live: trips, stops, visits and mileage show within a minute.
Seeded once (a second start adds nothing); API tokens go to <data folder>/demo-tokens.env.
Ctrl-C stops it.

examples:
  fieldtrack demo
  FIELDTRACK_API_PORT=8080 fieldtrack demo --speed 60
"""


def _demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from fieldtrack.demo import DemoOptions, run
    from simulators.console import parse_duration

    try:
        config = _settings(args)
        # `serve --demo` has none of the demo's options: the defaults then.
        if getattr(args, "api_port", None) is not None:
            config = replace(config, api_port=args.api_port)
        options = DemoOptions(speed=getattr(args, "speed", 30.0),
                              backlog_s=parse_duration(getattr(args, "backlog", "2h")))
        if options.speed <= 1 or options.backlog_s < 600:
            raise ValueError("--speed must be above 1 and --backlog at least 10m")
    except ValueError as exc:
        print(f"fieldtrack demo: {exc}", file=sys.stderr)
        return 2
    run(config, options)
    return 0


def _token(args: argparse.Namespace) -> int:
    from fieldtrack.tokens import create_token

    token = asyncio.run(create_token(_settings(args), args.name, args.role))
    print(token)
    return 0


def _user_add(args: argparse.Namespace) -> int:
    from fieldtrack.tokens import create_user
    from storage.errors import NotFound, StorageError

    try:
        user, token = asyncio.run(create_user(_settings(args), args.name, args.role, team=args.team,
                                              email=args.email))
    except NotFound as exc:
        print(f"fieldtrack user add: {exc} not found", file=sys.stderr)
        return 1
    except (StorageError, ValueError) as exc:
        print(f"fieldtrack user add: {exc}", file=sys.stderr)
        return 1
    team = f", team {user.team_id}" if user.team_id is not None else ""
    print(f"user {user.id} ({user.role}{team}); their API token (shown only now):", file=sys.stderr)
    print(token)
    return 0


SIMULATE_HELP = """\
Simulated devices that speak the real protocols (through Fieldtrack's own encoders) to a server:
they log in, report positions on a schedule, send keep-alives, check every acknowledgement,
reconnect with backoff and resend what was not acknowledged. Reps drive a street grid between
customers, visit them, stop at lights, park at night; the same --seed gives the same tracks.

The server refuses devices it does not know: register them first (--list-ids prints the ids) or
run it with FIELDTRACK_REGISTER_UNKNOWN=true.

examples:
  fieldtrack simulate --devices 1000 --protocol gt06,osmand --rate 1/10s --duration 10m --target 10.0.0.5
  fieldtrack simulate --devices 20 --protocol owntracks,json --mqtt mqtt://broker:1883 --duration 5m
  fieldtrack simulate --devices 50 --speed 60 --cheats mock=2,teleport=1 --target localhost
  fieldtrack simulate --devices 100 --protocol h02:udp,teltonika:udp --duration 5m --target localhost
"""

REPLAY_HELP = """\
Send a recorded track or capture to a server. NMEA logs (.nmea/.log/.txt, gzip allowed), GPX and
CSV tracks (columns lat, lon, time; speed in km/h optional) are turned into positions and sent by
one simulated device of --protocol; hex captures (.hex: one frame per line, optionally "TIME HEX")
are written as they are to the protocol's port.

examples:
  fieldtrack replay drive.nmea.gz --protocol nmea --target localhost --speed 10
  fieldtrack replay route.gpx --protocol osmand --id rep-7 --target localhost
"""


def _link(args: argparse.Namespace) -> LinkSettings:
    from simulators.console import parse_duration
    from simulators.device import LinkSettings

    return LinkSettings(ack_timeout_s=parse_duration(args.ack_timeout),
                        heartbeat_s=parse_duration(args.heartbeat))


def _target(args: argparse.Namespace, protocols: tuple[str, ...]) -> Target:
    from simulators.console import parse_ports, parse_target
    from simulators.runner import Target

    host, ports = parse_target(args.target, protocols, parse_ports(args.port or []))
    return Target(host, ports, mqtt_url=args.mqtt, mqtt_prefix=args.mqtt_prefix)


def _simulate(args: argparse.Namespace) -> int:
    from simulators.console import parse_cheats, parse_duration, parse_rate, simulate
    from simulators.movement import MovementConfig
    from simulators.runner import FleetSpec

    try:
        protocols = tuple(p.strip() for p in args.protocol.split(",") if p.strip())
        movement = MovementConfig()
        if args.center is not None:
            lat, _, lon = args.center.partition(",")
            movement = MovementConfig(center=(float(lat), float(lon)))
        target = _target(args, protocols)
        spec = FleetSpec(devices=args.devices, protocols=protocols, every_s=parse_rate(args.rate),
                         duration_s=parse_duration(args.duration), speed=args.speed, seed=args.seed,
                         cheats=parse_cheats(args.cheats), movement=movement, link=_link(args),
                         first_index=args.first_index)
    except ValueError as exc:
        print(f"fieldtrack simulate: {exc}", file=sys.stderr)
        return 2
    return simulate(spec, target, list_ids=args.list_ids, progress_every_s=parse_duration(args.progress))


def _replay(args: argparse.Namespace) -> int:
    from simulators.console import replay
    from simulators.runner import SUPPORTED

    path = Path(args.file)
    if not path.is_file():
        print(f"fieldtrack replay: no such file: {path}", file=sys.stderr)
        return 2
    if args.protocol not in SUPPORTED:
        print(f"fieldtrack replay: unknown protocol {args.protocol!r} (known: {', '.join(SUPPORTED)})",
              file=sys.stderr)
        return 2
    try:
        target = _target(args, (args.protocol,))
        return replay(path, args.protocol, target, device_id=args.id, speed=args.speed,
                      keep_times=args.keep_times, fmt=args.format, link=_link(args))
    except (ValueError, OSError) as exc:
        print(f"fieldtrack replay: {exc}", file=sys.stderr)
        return 1


def _device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="127.0.0.1", metavar="HOST[:PORT]",
                        help="the server; each protocol goes to its Traccar port (gt06 5023, osmand 5055,"
                        " ...); HOST:PORT with a single protocol (default %(default)s)")
    parser.add_argument("--port", action="append", metavar="PROTOCOL=PORT",
                        help="another port for a protocol, e.g. --port gt06=6023 (repeatable)")
    parser.add_argument("--mqtt", metavar="URL", help="broker for owntracks/json (default mqtt://TARGET:1883)")
    parser.add_argument("--mqtt-prefix", default="",
                        help="topic prefix the server uses (FIELDTRACK_MQTT_PREFIX)")
    parser.add_argument("--ack-timeout", default="10s", metavar="DURATION",
                        help="how long to wait for an acknowledgement before reconnecting"
                        " (default %(default)s)")
    parser.add_argument("--heartbeat", default="60s", metavar="DURATION",
                        help="idle time before a keep-alive (default %(default)s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fieldtrack", description="GPS tracking server for field teams")
    parser.add_argument("--config", help="TOML settings file (FIELDTRACK_* variables override it)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the device listeners and the API")
    serve.add_argument("--demo", action="store_true", help="the same as `fieldtrack demo`")
    serve.set_defaults(func=_serve)
    demo = sub.add_parser("demo", help="the server plus a seeded team and simulated reps driving live",
                          description=DEMO_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.set_defaults(func=_demo)
    demo.add_argument("--speed", type=float, default=30.0, help="simulated seconds per second while"
                      " replaying the recent past (default %(default)s)")
    demo.add_argument("--backlog", default="2h", help="how much of the recent past to replay"
                      " (default %(default)s)")
    demo.add_argument("--api-port", type=int, help="API port (default FIELDTRACK_API_PORT or 8000)")
    tok = sub.add_parser("token", help="create a system API token (printed once); a manager or rep"
                         " token needs a user to see anything: use `user add`")
    tok.add_argument("--name", required=True)
    tok.add_argument("--role", choices=["admin", "manager", "rep"], default="admin")
    tok.set_defaults(func=_token)
    user = sub.add_parser("user", help="people: `user add` creates a user and prints their first token")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user and print their first API token (shown once)")
    add.add_argument("--name", required=True)
    add.add_argument("--role", choices=["admin", "manager", "rep"], required=True)
    add.add_argument("--team", help="team id or name (a new name creates the team); a manager manages it")
    add.add_argument("--email")
    add.set_defaults(func=_user_add)
    simp = sub.add_parser("simulate", help="simulated devices driving reps around, sending to a server",
                          description=SIMULATE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    simp.add_argument("--devices", type=int, default=10, help="how many devices (default %(default)s)")
    simp.add_argument("--protocol", default="osmand",
                      help="comma-separated, dealt round-robin over the devices: gt06, h02, tk103, gps103,"
                      " teltonika, nmea, gl200, meitrack, watch, gpsgate (TCP); h02:udp, tk103:udp,"
                      " gps103:udp, teltonika:udp, nmea:udp, gl200:udp, meitrack:udp (UDP, same port);"
                      " osmand (HTTP), owntracks, json (MQTT) (default %(default)s)")
    simp.add_argument("--rate", default="1/10s",
                      help="fixes per device: 1/10s, 6/min, 1/30s (default %(default)s)")
    simp.add_argument("--duration", default="10m", help="how long to run: 90s, 10m, 1h (default %(default)s)")
    simp.add_argument("--speed", type=float, default=1.0,
                      help="simulated seconds per real second: 60 drives an hour a minute; fix times then"
                      " start in the past so none is in the future (default %(default)s)")
    simp.add_argument("--seed", default="fieldtrack", help="same seed, same tracks (default %(default)s)")
    simp.add_argument("--cheats", metavar="KIND=N,...",
                      help="cheating devices: mock=N (pinned at a customer, with the mock flag where the"
                      " protocol carries one), teleport=N (40 km away for a fifth of the run)")
    simp.add_argument("--center", metavar="LAT,LON", help="city the reps work in (default Amsterdam)")
    simp.add_argument("--first-index", type=int, default=0,
                      help="number the devices from this index (a second fleet with other ids)")
    simp.add_argument("--list-ids", action="store_true",
                      help="print protocol and id of each device (to register them), then exit")
    simp.add_argument("--progress", default="10s", metavar="DURATION",
                      help="progress line interval when not on a terminal (default %(default)s)")
    _device_options(simp)
    simp.set_defaults(func=_simulate)
    rep_ = sub.add_parser("replay", help="send a recorded NMEA/GPX/CSV track or a hex capture to a server",
                          description=REPLAY_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    rep_.add_argument("file")
    rep_.add_argument("--protocol", default="nmea", help="protocol to send with (default %(default)s)")
    rep_.add_argument("--id", help="device id to send as (default: the simulator's first id of the protocol)")
    rep_.add_argument("--speed", type=float, default=1.0,
                      help="times the recorded pace (default %(default)s)")
    rep_.add_argument("--format", choices=["nmea", "gpx", "csv", "hex"], help="default: from the file name")
    rep_.add_argument("--keep-times", action="store_true",
                      help="send the recorded fix times (default: moved so the replay ends now)")
    _device_options(rep_)
    rep_.set_defaults(func=_replay)
    sub.add_parser("version").set_defaults(func=lambda _: print(__version__) or 0)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
