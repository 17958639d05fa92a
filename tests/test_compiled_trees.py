"""The compiled tree sum gives LightGBM's own scores, missing values and zeros included."""

import lightgbm as lgb
import numpy as np
import pytest

from recommender.kernels import CompiledTrees


@pytest.mark.parametrize(
    "nan_in_training, zero_as_missing",
    [(True, False), (False, False), (False, True)],
    ids=["missing-NaN", "missing-None", "missing-Zero"],
)
def test_compiled_trees_equal_booster_predict(nan_in_training, zero_as_missing):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2000, 6))
    x[rng.random(x.shape) < 0.2] = 0.0
    y = (x[:, 0] + np.where(x[:, 1] == 0, 2.0, x[:, 1]) ** 2 - x[:, 2] > 0.5).astype(float)
    if nan_in_training:
        x[rng.random(x.shape) < 0.2] = np.nan
    params = {"objective": "binary", "verbose": -1, "num_leaves": 15, "zero_as_missing": zero_as_missing}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=30)
    dumped = {n["missing_type"] for t in booster.dump_model()["tree_info"] for n in _splits(t["tree_structure"])}
    assert dumped == {"NaN" if nan_in_training else "Zero" if zero_as_missing else "None"}
    probe = rng.normal(size=(500, 6))
    probe[rng.random(probe.shape) < 0.2] = np.nan
    probe[rng.random(probe.shape) < 0.2] = 0.0
    probe[:50] = x[:50]
    # The model's feature f is column columns[f] of a wider matrix, as the ranker's are.
    columns = [3, 0, 5, 1, 2, 4]
    wide = np.full((len(probe), 6), -99.0)
    wide[:, columns] = probe
    got = CompiledTrees(booster, columns).predict(wide)
    np.testing.assert_allclose(got, booster.predict(probe, raw_score=True), rtol=0, atol=1e-12)


def _splits(node):
    if "split_feature" in node:
        yield node
        yield from _splits(node["left_child"])
        yield from _splits(node["right_child"])
