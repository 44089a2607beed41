"""``fieldtrack serve | token | version``."""

from __future__ import annotations

import argparse
import asyncio
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fieldtrack", description="GPS tracking server for field teams")
    parser.add_argument("--config", help="TOML settings file (FIELDTRACK_* variables override it)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the device listeners and the API").set_defaults(func=_serve)
    tok = sub.add_parser("token", help="create an API token (printed once)")
    tok.add_argument("--name", required=True)
    tok.add_argument("--role", choices=["admin", "manager", "rep"], default="admin")
    tok.set_defaults(func=_token)
    sub.add_parser("version").set_defaults(func=lambda _: print(__version__) or 0)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
