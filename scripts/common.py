"""Small pieces the command-line scripts share."""

from __future__ import annotations

import argparse
import json
import os


def add_redis_arguments(parser: argparse.ArgumentParser) -> None:
    """--redis-url (default REDIS_URL) and --data-dir (where the embedded server keeps its socket)."""
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("O2O_DATA_DIR", "var"),
        help="the service's O2O_DATA_DIR: the embedded Redis socket is under it",
    )


def redis_url(args) -> str:
    """The URL the service itself would use: REDIS_URL, else its embedded server's socket."""
    return args.redis_url or f"unix://{os.path.abspath(os.path.join(args.data_dir, 'redis', 'redis.sock'))}"


def emit_json(result: dict, path: str | None) -> None:
    """Print a benchmark's result, and write it to ``path`` if given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(text)


def split_share(parser: argparse.ArgumentParser, text: str | None, kinds: tuple[str, ...]) -> tuple[str, float]:
    """``--split KIND:FRACTION`` as (kind, train share); a parser error unless KIND is one of
    ``kinds`` and FRACTION a number in (0, 1)."""
    kind, _, frac = (text or "").partition(":")
    if kind not in kinds:
        parser.error("--split must be " + " or ".join(f"{k}:FRACTION" for k in kinds))
    try:
        share = float(frac)
    except ValueError:
        parser.error("--split fraction must be a number in (0, 1)")
    if not 0 < share < 1:
        parser.error("--split fraction must be in (0, 1)")
    return kind, share
