"""Faults under load, end to end (short phases; the script's defaults run longer)."""

import pytest

from scripts.bench.faults import run

pytestmark = pytest.mark.slow  # system tier: real processes


def test_redis_outage_and_worker_kill_under_load():
    result = run(phase_s=2.0)
    phases = result["phases"]
    # Search and recommendations kept answering while Redis was down.
    assert phases["redis_down"]["search_requests"] > 50 and phases["redis_down"]["search_failed"] == 0
    # Events were refused (503, not acknowledged) while it was down, and accepted again after.
    assert phases["redis_down"]["events_2xx"] == 0 and phases["redis_down"]["events_503"] > 0
    assert phases["normal_again"]["events_2xx"] > 0 and phases["normal_again"]["events_other"] == 0
    # Every acknowledged event survived the kill and restart.
    assert result["events_acknowledged"] > 100 and result["acknowledged_missing_after_restart"] == 0
    # The master replaced the killed worker; only requests in flight on it failed.
    assert result["workers_after_kill"] == 2 and phases["worker_killed"]["search_failed"] <= 4
    assert phases["normal_again"]["search_failed"] == 0
