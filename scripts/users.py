"""User tokens for development: a signed-in user without an identity provider.

    python -m scripts.users token USER_ID [--ttl 86400] [--data-dir var]

Mints an HS256 token with the key the service checks (O2O_USER_TOKEN_SECRET, else the one
derived from O2O_SECRET_KEY or the data directory's secret_key) and prints it on its last
line. Use it as ``Authorization: Bearer <token>``. In production, tokens come from the
identity provider.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime


def service_settings(environ=None, data_dir: str | None = None) -> dict:
    """The settings a service started with ``environ`` would have, its secrets resolved."""
    from app.config import DEFAULTS, from_environment
    from app.secrets import resolve_secrets

    cfg = {**DEFAULTS, **from_environment(environ)}
    if data_dir:
        cfg["DATA_DIR"] = data_dir
    resolve_secrets(cfg)
    return cfg


def token(user_id: str, ttl_s: int = 86_400, environ=None, data_dir: str | None = None) -> str:
    """A user token that a service started with ``environ`` (and ``data_dir``) accepts."""
    from app.http.users import mint

    key = (tuple(sorted((environ if environ is not None else os.environ).items())), data_dir)
    if key not in _settings:  # resolved once per environment: benchmarks mint hundreds
        _settings[key] = service_settings(environ, data_dir)
    return mint(_settings[key], user_id, datetime.now(UTC), ttl_s)


_settings: dict = {}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("token", help="mint a user token and print it on the last line")
    t.add_argument("user_id")
    t.add_argument("--ttl", type=int, default=86_400, help="seconds the token is valid (default a day)")
    t.add_argument("--data-dir", default=os.environ.get("O2O_DATA_DIR"), help="the service's O2O_DATA_DIR")
    args = parser.parse_args(argv)
    if not 1 <= len(args.user_id) <= 128:
        parser.error("USER_ID must be 1 to 128 characters")
    if args.ttl <= 0:
        parser.error("--ttl must be positive")
    print(token(args.user_id, args.ttl, data_dir=args.data_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
