"""The Redis client (one per process, short timeouts) and the breaker for best-effort writes."""

from __future__ import annotations

import functools
import logging
import time

import redis

log = logging.getLogger(__name__)

#: What a failed Redis call raises: callers catch these and degrade or answer 503.
STORAGE_ERRORS = (redis.RedisError, OSError)


def client(url: str, timeout_s: float, cluster: bool | None = None) -> redis.Redis:
    """A client with bounded waits: a slow or dead Redis costs at most ``timeout_s`` a call.

    ``cluster``: True for redis-py's ``RedisCluster`` (any node's URL finds the rest), False
    for one server, None to ask the server (``cluster_enabled:1`` in INFO).
    """
    if cluster is None:
        cluster = is_cluster(url, timeout_s)
    if cluster:
        return redis.RedisCluster.from_url(  # type: ignore[return-value]
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30
        )
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        retry_on_timeout=False,
    )


def is_cluster(url: str, timeout_s: float = 2.0) -> bool:
    """Whether the server at ``url`` is a Redis Cluster node (False if it cannot be asked)."""
    try:
        probe = redis.Redis.from_url(
            url, socket_timeout=max(timeout_s, 1.0), socket_connect_timeout=max(timeout_s, 1.0)
        )
        return int(probe.info("cluster").get("cluster_enabled", 0)) == 1
    except (redis.RedisError, OSError):
        return False


def on_cluster(r) -> bool:
    return _cluster_type(type(r))


@functools.lru_cache(maxsize=16)
def _cluster_type(kind: type) -> bool:
    # Once per client class: RedisCluster's metaclass is typing's Protocol one, whose
    # isinstance costs ~0.8 us in a loop and ~20 us of a deal list's GIL time under load.
    return issubclass(kind, redis.RedisCluster)


class Breaker:
    """Skip Redis for ``cooldown_s`` after a failure, so best-effort writes (impressions)
    add no latency while Redis is down; counts what was dropped."""

    def __init__(self, cooldown_s: float = 2.0):
        self.cooldown_s = cooldown_s
        self._open_until = 0.0
        self.dropped = 0
        self.failures = 0

    @property
    def closed(self) -> bool:
        return time.monotonic() >= self._open_until

    def failed(self, exc: Exception, what: str) -> None:
        self.failures += 1
        if self.closed:  # log once per outage window, not per request
            log.warning(
                "redis unavailable (%s: %s); dropping %s for %.0f s", type(exc).__name__, exc, what, self.cooldown_s
            )
        self._open_until = time.monotonic() + self.cooldown_s
