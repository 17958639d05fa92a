"""Models are fitted and measured on one BLAS thread, whatever limit the caller runs under.

OpenBLAS's thread count moves products in their last bits, and that moved the ranker's
NDCG@10 by ~2 % (recommender/threads.py). Each entry point is stopped at its first step,
so these are cheap; each would see the caller's two threads without the limit.
"""

from __future__ import annotations

import pandas as pd
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from recommender import compare, served, training


class Stop(Exception):
    pass


def _blas_threads() -> int:
    found = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert found, "no BLAS library loaded"
    return max(found)


@pytest.fixture
def seen(monkeypatch):
    """What the first step of each entry point sees, then a stop."""
    threads: list[int] = []

    def first_step(*_args, **_kwargs):
        threads.append(_blas_threads())
        raise Stop

    monkeypatch.setattr(training, "split_per_user", first_step)
    monkeypatch.setattr(served, "validation", first_step)
    monkeypatch.setattr(compare, "validation", first_step)
    return threads


def _two_threads() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        if _blas_threads() < 2:
            pytest.skip("this machine's BLAS runs one thread at most")


ROWS = pd.DataFrame({"user_id": ["u1", "u2"], "store_id": ["s1", "s2"], "weight": [1.0, 1.0]})
STORES = pd.DataFrame({"store_id": ["s1", "s2"], "lat": [60.17, 60.18], "lon": [24.94, 24.95]})


@pytest.mark.parametrize(
    "call",
    [
        lambda: training.train(STORES, ROWS),
        lambda: served.fit_second_stage(STORES, ROWS, {"u1": 0, "u2": 1}, {"s1": 0, "s2": 1}, training.TrainConfig()),
        lambda: compare.compare(STORES, ROWS, ROWS),
    ],
    ids=["train", "fit_second_stage", "compare"],
)
def test_fits_run_on_one_blas_thread(seen, call):
    _two_threads()
    with threadpool_limits(limits=2, user_api="blas"):
        with pytest.raises(Stop):
            call()
        assert _blas_threads() == 2  # the caller's limit is back afterwards
    assert seen == [1]
