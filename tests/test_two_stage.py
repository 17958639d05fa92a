"""The two-stage ranker learns a planted signal, loses it when the signal is shuffled, and
is trained only on the earlier part of TRAIN."""

import numpy as np
import pandas as pd
import pytest

from recommender.compare import _clean, _validation, compare
from recommender.training import TrainConfig

MODELS = ("popularity", "user_knn", "two_stage")


def towns(shuffled: bool, seed: int = 0):
    """Six towns 50 km apart, 12 stores each. Users live in one town and visit stores there
    (train, then test later); a few stores are popular with everyone. Shuffled: users visit
    stores anywhere, so neither place nor neighbours say anything."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(6):
        for s in range(12):
            rows.append(
                {
                    "store_id": f"t{t}s{s}",
                    "lat": 60.0 + 0.45 * t + 0.002 * (s % 4),
                    "lon": 25.0 + 0.004 * (s // 4),
                    "category": f"c{s % 3}",
                }
            )
    stores = pd.DataFrame(rows)
    train, test = [], []
    for u in range(240):
        town = u % 6
        pool = [f"t{town}s{s}" for s in range(12)]
        if shuffled:
            pool = list(rng.choice(stores["store_id"], 12, replace=False))
        visits = rng.choice(pool, 8, replace=False)
        for day, s in enumerate(visits[:6], start=1):
            train.append((f"u{u}", s, 1.0, f"2026-01-{day:02d}"))
        train.append((f"u{u}", "t0s0", 1.0, "2026-01-01"))  # the popular store, everyone's
        test += [(f"u{u}", s) for s in visits[6:]]
    return (
        stores,
        pd.DataFrame(train, columns=["user_id", "store_id", "weight", "ts"]),
        pd.DataFrame(test, columns=["user_id", "store_id"]),
    )


@pytest.fixture(scope="module")
def planted():
    return compare(*towns(False), k=5, models=MODELS, config=TrainConfig(seed=1), log=lambda m: None)["models"]


@pytest.fixture(scope="module")
def shuffled():
    return compare(*towns(True), k=5, models=MODELS, config=TrainConfig(seed=1), log=lambda m: None)["models"]


def test_the_ranker_learns_the_planted_signal(planted):
    assert planted["two_stage"]["ndcg"] > 0.3
    assert planted["two_stage"]["ndcg"] > 2 * planted["popularity"]["ndcg"]


def test_the_ranker_fails_when_the_signal_is_shuffled(planted, shuffled):
    assert shuffled["two_stage"]["ndcg"] < 0.5 * planted["two_stage"]["ndcg"]
    assert shuffled["two_stage"]["ndcg"] < 0.15  # 10 test stores among ~65 unseen: chance is about 0.08


def test_the_ranker_learns_only_from_the_earlier_part_of_train():
    stores, train, _test = towns(False)
    users = sorted(set(train["user_id"]))
    items = {s: i for i, s in enumerate(stores["store_id"])}
    train = _clean(train, items)  # one row per user and store, as compare() has it
    _fit_part, fit_m, val_m = _validation(train, {u: i for i, u in enumerate(users)}, items, TrainConfig(seed=1))
    # The sources see the fit part, the labels are the later part: disjoint, and nothing else.
    assert fit_m.multiply(val_m).nnz == 0
    assert fit_m.nnz + val_m.nnz == len(train)
    later = train.sort_values("ts").groupby("user_id").tail(1)  # each user's last store is a label
    for u, s in zip(later["user_id"], later["store_id"]):
        assert val_m[users.index(u), items[s]] == 1 and fit_m[users.index(u), items[s]] == 0


def test_the_ablation_leaves_out_one_feature_group_at_a_time():
    from recommender.two_stage import FEATURE_GROUPS

    got = compare(*towns(False), k=5, models=MODELS, config=TrainConfig(seed=1), log=lambda m: None, ablation=True)
    ablated = {name.split("-", 1)[1] for name in got["models"] if name.startswith("two_stage-")}
    assert ablated == set(FEATURE_GROUPS) - {"lightfm"}  # no LightFM source in this run
    for group in ablated:
        assert 0 <= got["models"][f"two_stage-{group}"]["ndcg"] <= 1
    assert got["models"]["two_stage"]["ndcg"] > 0.3
