"""The shared counter behind the rate limits: one key per caller and one-second window."""

from __future__ import annotations

import redis

from app.storage import keys


def count_hit(r: redis.Redis, caller: str, second: int, n: int = 1) -> int:
    """Count ``n`` hits of ``caller`` in window ``second``; returns the window's count so far."""
    key = keys.rate_window(caller, second)
    pipe = r.pipeline(transaction=False)
    pipe.incrby(key, n)
    pipe.expire(key, 2)  # the window is over after one second; two leaves room for clock skew
    count, _ = pipe.execute()
    return int(count)
