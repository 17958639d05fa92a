"""Create and revoke merchant API keys.

    python -m scripts.merchants create-key MERCHANT_ID     # prints the new key as the last line
    python -m scripts.merchants list-keys [MERCHANT_ID]    # key ids (safe to show), never keys
    python -m scripts.merchants revoke-key KEY_ID          # or the key itself

Keys are stored hashed (SHA-256) in the service's Redis (REDIS_URL, or the embedded
server under O2O_DATA_DIR, default var/). The key is shown once; it cannot be recovered.
"""

from __future__ import annotations

import argparse
import re
import sys

import redis

from app.storage.apikeys import create_key, key_id, list_keys, revoke_key
from scripts.common import add_redis_arguments, redis_url


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["create-key", "list-keys", "revoke-key"])
    parser.add_argument(
        "value", nargs="?", help="MERCHANT_ID for create-key and list-keys, KEY_ID (or KEY) for revoke-key"
    )
    add_redis_arguments(parser)
    args = parser.parse_args(argv)
    url = redis_url(args)
    r = redis.Redis.from_url(url, socket_timeout=5)
    try:
        if args.action == "list-keys":
            for kid, merchant in list_keys(r, args.value):
                print(f"{kid}  {merchant}")
            return 0
        if not args.value:
            parser.error(f"{args.action} needs a value")
        if args.action == "create-key":
            if not re.fullmatch(r"[A-Za-z0-9_.:\-]{1,128}", args.value):
                parser.error("MERCHANT_ID: 1-128 characters of A-Z a-z 0-9 _ . : -")
            key = create_key(r, args.value)
            print(f"key {key_id(key)} for merchant {args.value} (the key is shown once; revoke it by its id):")
            print(key)
            return 0
        if not revoke_key(r, args.value):
            print("no such key", file=sys.stderr)
            return 1
        print("revoked")
        return 0
    except (redis.RedisError, OSError) as exc:
        print(
            f"cannot reach Redis at {url}: {exc} (is the service or scripts.bench.redis_server running?)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
