"""The shared counter behind the rate limits: one key per caller and one-second window."""

from __future__ import annotations

import redis

from app.storage import keys


def count_hits(r: redis.Redis, callers: list[str], second: int, n: int = 1) -> list[int]:
    """Count ``n`` hits of each caller in window ``second`` (one round trip for all of them);
    returns each window's count so far."""
    pipe = r.pipeline(transaction=False)
    for caller in callers:
        key = keys.rate_window(caller, second)
        pipe.incrby(key, n)
        pipe.expire(key, 2)  # the window is over after one second; two leaves room for clock skew
    return [int(c) for c in pipe.execute()[::2]]
