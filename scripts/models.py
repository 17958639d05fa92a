"""List, activate and roll back model versions for every running worker.

    python -m scripts.models list
    python -m scripts.models activate VERSION       # or: latest
    python -m scripts.models rollback

Workers pick up the change within O2O_MODEL_CHECK_S seconds, without a restart.
"""

from __future__ import annotations

import argparse
import os
import sys

import redis

from app.storage.keys import MODEL_CURRENT
from app.storage.model_versions import activate, rollback
from recommender import ArtifactError, versions
from scripts.common import add_redis_arguments, redis_url


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["list", "activate", "rollback"])
    parser.add_argument("version", nargs="?")
    parser.add_argument("--artifacts", default=os.environ.get("O2O_ARTIFACTS", "artifacts"))
    add_redis_arguments(parser)
    args = parser.parse_args(argv)
    url = redis_url(args)
    r = redis.Redis.from_url(url, socket_timeout=5)
    try:
        current = (r.get(MODEL_CURRENT) or b"").decode() or None
        if args.action == "list":
            for v in versions(args.artifacts):
                print(("* " if v == current else "  ") + v)
            return 0
        if args.action == "activate":
            available = versions(args.artifacts)
            version = available[-1] if args.version == "latest" and available else args.version
            if version not in available:
                parser.error(f"unknown version {version!r}; see: python -m scripts.models list")
            activate(r, args.artifacts, version)
            print(version)
            return 0
        print(rollback(r, args.artifacts))
        return 0
    except (redis.RedisError, OSError) as exc:
        print(f"cannot reach Redis at {url}: {exc}", file=sys.stderr)
        return 2
    except (ArtifactError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
