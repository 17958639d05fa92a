"""The tests' Redis: one server, or with O2O_TEST_REDIS=cluster a real Redis Cluster."""

from __future__ import annotations

import os

import redis

ON_CLUSTER = os.environ.get("O2O_TEST_REDIS", "") == "cluster"


def connect(url: str):
    """A client for the tests' own reads and writes: cluster-aware when the suite runs on one."""
    if ON_CLUSTER:
        return redis.RedisCluster.from_url(url)
    return redis.Redis.from_url(url)
