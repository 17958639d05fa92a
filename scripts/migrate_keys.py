"""Rename keys written before they carried a Redis Cluster hash tag.

    python -m scripts.migrate_keys [--redis-url URL | --data-dir var] [--dry-run]

``sd:{store}:{day}``, ``uv:...``, ``up:...`` and ``vc:...`` became ``{store:S}:sd:{day}``...
(one slot per store, for Redis Cluster; see ``app.storage.keys``), and ``model:current`` /
``model:history`` became ``{model}:current`` / ``{model}:history``. Event-id claims
(14 days) are not renamed: they now live in their store's slot, so an event retried across
the upgrade within 14 days could count twice. Run it once after the
upgrade, on the same Redis (a single server: the old names were never cluster-safe). It is
idempotent and safe beside a running service: a key the new code has already started is
merged (hash fields added, HyperLogLogs merged) instead of overwritten. Days before the
upgrade have no people-by-cell counts (``vp``): their viewer cells stay unlocated.
"""

from __future__ import annotations

import argparse
import sys

import redis

from app.storage import keys
from scripts.common import add_redis_arguments, redis_url

_MERGE = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('RENAME', KEYS[1], KEYS[2]); return 1 end
if kind == 'hash' then
  local flat = redis.call('HGETALL', KEYS[1])
  for i = 1, #flat, 2 do redis.call('HINCRBYFLOAT', KEYS[2], flat[i], flat[i + 1]) end
else
  redis.call('PFMERGE', KEYS[2], KEYS[2], KEYS[1])
end
redis.call('DEL', KEYS[1])
return 2
"""


def migrate(r: redis.Redis, dry_run: bool = False) -> dict[str, int]:
    counts = {"renamed": 0, "merged": 0}
    for old, new in keys.LEGACY_MODEL_KEYS.items():  # the active model and its history
        if r.exists(old) and not r.exists(new):
            if not dry_run:
                r.rename(old, new)
            counts["renamed"] += 1
    merge = r.register_script(_MERGE)
    for family in keys.LEGACY_TAILS:
        for raw in r.scan_iter(match=keys.legacy_store_day(family, "*").rstrip(":"), count=1000):
            old = raw.decode()
            new = keys.retagged(old)
            if new is None:
                continue
            if dry_run:
                counts["renamed"] += 1
                continue
            counts["renamed" if merge(keys=[old, new]) == 1 else "merged"] += 1
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_redis_arguments(parser)
    parser.add_argument("--dry-run", action="store_true", help="count the keys, change nothing")
    args = parser.parse_args(argv)
    counts = migrate(redis.Redis.from_url(redis_url(args)), args.dry_run)
    print(f"{counts['renamed']} renamed, {counts['merged']} merged into keys the service had started")
    return 0


if __name__ == "__main__":
    sys.exit(main())
