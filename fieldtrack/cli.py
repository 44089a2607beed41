"""``fieldtrack serve | token | user add | version``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from fieldtrack import __version__, settings


def _settings(args: argparse.Namespace) -> settings.Settings:
    return settings.load(config_file=Path(args.config) if args.config else None)


def _serve(args: argparse.Namespace) -> int:
    from fieldtrack.server import run

    run(_settings(args))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fieldtrack", description="GPS tracking server for field teams")
    parser.add_argument("--config", help="TOML settings file (FIELDTRACK_* variables override it)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the device listeners and the API").set_defaults(func=_serve)
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
    sub.add_parser("version").set_defaults(func=lambda _: print(__version__) or 0)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
