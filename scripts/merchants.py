"""Create and revoke merchant API keys.

    python -m scripts.merchants create-key MERCHANT_ID     # prints the new key as the last line
    python -m scripts.merchants revoke-key KEY

Keys are stored hashed (SHA-256) in the service's Redis (REDIS_URL, or the embedded
server under O2O_DATA_DIR, default var/). The key is shown once; it cannot be recovered.
"""

from __future__ import annotations

import argparse
import re
import sys

import redis

from app.storage.apikeys import create_key, revoke_key
from scripts.common import add_redis_arguments, redis_url


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["create-key", "revoke-key"])
    parser.add_argument("value", help="MERCHANT_ID for create-key, KEY for revoke-key")
    add_redis_arguments(parser)
    args = parser.parse_args(argv)
    url = redis_url(args)
    r = redis.Redis.from_url(url, socket_timeout=5)
    try:
        if args.action == "create-key":
            if not re.fullmatch(r"[A-Za-z0-9_.:\-]{1,128}", args.value):
                parser.error("MERCHANT_ID: 1-128 characters of A-Z a-z 0-9 _ . : -")
            print(f"key for merchant {args.value} (shown once):")
            print(create_key(r, args.value))
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
