"""The shared counter behind the rate limits: one key per caller and one-second window."""

from __future__ import annotations

from collections.abc import Callable

import redis

from app.storage import keys


def count_hits(r: redis.Redis, callers: list[str], second: int, n: int = 1) -> list[int]:
    """Count ``n`` hits of each caller in window ``second`` (one round trip for all of them);
    returns each window's count so far."""
    pipe = r.pipeline(transaction=False)
    read = queue_hits(pipe, callers, second, n)
    return read(pipe.execute())


def queue_hits(pipe, callers: list[str], second: int, n: int = 1) -> Callable[[list], list[int]]:
    """Queue the counting on ``pipe``, which may carry other commands (a view's reads: one
    round trip for both); returns how to read the counts out of the pipeline's results."""
    start = len(pipe)
    for caller in callers:
        key = keys.rate_window(caller, second)
        pipe.incrby(key, n)
        pipe.expire(key, 2)  # the window is over after one second; two leaves room for clock skew
    stop = len(pipe)
    return lambda results: [int(c) for c in results[start:stop:2]]
