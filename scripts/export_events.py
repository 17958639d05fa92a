"""Export recorded events from Redis to the canonical orders and reviews files.

    python -m scripts.export_events [--redis-url URL | --data-dir var] [--out data/generated/events]

Orders come from ``order`` events and from ``redeem`` events (a redemption is an order
with its deal); reviews from ``review`` events. ``train`` then takes them beside the base
data: ``python -m scripts.train --orders data/generated/helsinki/orders.csv
data/generated/events/orders.csv --reviews ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import pandas as pd
import redis

from app.storage.keys import EVENTS
from scripts.common import add_redis_arguments, redis_url


def read_events(r: redis.Redis, batch: int = 10_000) -> list[dict]:
    """Every event in the stream once: a write retried after a crash may have appended an
    event twice (``storage.events``); the first of each (store, event id) is kept."""
    out, last, seen = [], "-", set()
    while True:
        chunk = r.xrange(EVENTS, min=last, max="+", count=batch)
        if last != "-" and chunk and chunk[0][0].decode() == last:
            chunk = chunk[1:]
        if not chunk:
            return out
        for _id, fields in chunk:
            event = json.loads(fields[b"body"])
            key = (event.get("store_id"), event.get("event_id"))
            if key not in seen:
                seen.add(key)
                out.append(event)
        last = chunk[-1][0].decode()


def to_frames(events: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    orders = [
        {
            "user_id": e.get("user_id") or e.get("anon_id"),
            "store_id": e["store_id"],
            "deal_id": e.get("deal_id"),
            "ts": e["ts"],
            "amount": e.get("amount", 0.0),
        }
        for e in events
        if e["type"] in ("order", "redeem") and (e.get("user_id") or e.get("anon_id"))
    ]
    reviews = [
        {
            "user_id": e.get("user_id") or e.get("anon_id"),
            "store_id": e["store_id"],
            "ts": e["ts"],
            "rating": e["rating"],
            "text": e.get("text", ""),
        }
        for e in events
        if e["type"] == "review" and (e.get("user_id") or e.get("anon_id"))
    ]
    return (
        pd.DataFrame(orders, columns=["user_id", "store_id", "deal_id", "ts", "amount"]),
        pd.DataFrame(reviews, columns=["user_id", "store_id", "ts", "rating", "text"]),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_redis_arguments(parser)
    parser.add_argument("--out", default="data/generated/events")
    args = parser.parse_args(argv)
    url = redis_url(args)
    try:
        events = read_events(redis.Redis.from_url(url, socket_timeout=5))
    except (redis.RedisError, OSError) as exc:
        print(f"cannot read events from {url}: {exc}", file=sys.stderr)
        return 2
    orders, reviews = to_frames(events)
    os.makedirs(args.out, exist_ok=True)
    orders.to_csv(os.path.join(args.out, "orders.csv"), index=False)
    reviews.to_csv(os.path.join(args.out, "reviews.csv"), index=False)
    print(f"{len(events)} events -> {len(orders)} orders, {len(reviews)} reviews in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
