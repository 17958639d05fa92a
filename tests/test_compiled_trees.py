"""The compiled tree sum gives LightGBM's own scores, missing values included;
averaged boosters score, explain and compile as the mean of their parts."""

import lightgbm as lgb
import numpy as np
import pytest

from recommender.compiled_trees import CompiledTrees
from recommender.two_stage import average_boosters


@pytest.mark.parametrize(
    "nan_in_training, zero_as_missing",
    [(True, False), (False, False), (False, True)],
    ids=["missing-NaN", "missing-None", "missing-Zero"],
)
def test_compiled_trees_equal_booster_predict_or_refuse(nan_in_training, zero_as_missing):
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
    if zero_as_missing:  # the ranker never asks for it; a model that has it is refused
        with pytest.raises(ValueError, match="zero as missing"):
            CompiledTrees(booster, columns)
        return
    compiled, want = CompiledTrees(booster, columns), booster.predict(probe, raw_score=True)
    for n in (500, 1, 0):
        np.testing.assert_allclose(compiled.predict(wide[:n]), want[:n], rtol=0, atol=1e-12)


def _splits(node):
    if "split_feature" in node:
        yield node
        yield from _splits(node["left_child"])
        yield from _splits(node["right_child"])


def test_averaged_boosters_score_and_explain_as_the_mean_of_their_parts():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 5))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = (np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 3]) + rng.normal(0, 0.5, len(x)) > 1).astype(int)
    groups = np.full(100, 30)
    parts = []
    for leaves, rounds, min_gain in ((7, 12, 0.0), (31, 5, 0.0), (15, 3, 1e9)):  # the last: one-leaf trees
        params = {"objective": "lambdarank", "verbose": -1, "num_leaves": leaves, "min_gain_to_split": min_gain}
        parts.append(lgb.train(params, lgb.Dataset(x, y, group=groups), num_boost_round=rounds))
    assert parts[2].dump_model()["tree_info"][0]["num_leaves"] == 1
    merged = average_boosters(parts)
    assert merged.num_trees() == sum(p.num_trees() for p in parts)
    probe = rng.normal(size=(400, 5))
    probe[rng.random(probe.shape) < 0.1] = np.nan
    mean = np.mean([p.predict(probe, raw_score=True) for p in parts], axis=0)
    assert np.std(mean) > 0.1  # the parts say something
    np.testing.assert_allclose(merged.predict(probe, raw_score=True), mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(CompiledTrees(merged, list(range(5))).predict(probe), mean, rtol=0, atol=1e-12)
    contrib = np.mean([p.predict(probe, pred_contrib=True) for p in parts], axis=0)
    np.testing.assert_allclose(merged.predict(probe, pred_contrib=True), contrib, rtol=0, atol=1e-12)
    # Node values (what a node would output as a leaf) are scaled with the leaves.
    root = merged.dump_model()["tree_info"][0]["tree_structure"]
    assert root["internal_value"] == pytest.approx(
        parts[0].dump_model()["tree_info"][0]["tree_structure"]["internal_value"] / 3
    )
    # It is a model like any other: its text loads back to the same scores.
    again = lgb.Booster(model_str=merged.model_to_string())
    np.testing.assert_allclose(again.predict(probe, raw_score=True), mean, rtol=0, atol=1e-12)


def test_boosters_over_different_features_do_not_average():
    rng = np.random.default_rng(4)
    y, groups = (rng.random(600) < 0.3).astype(int), np.full(20, 30)
    a = lgb.train(
        {"objective": "lambdarank", "verbose": -1}, lgb.Dataset(rng.normal(size=(600, 3)), y, group=groups), 3
    )
    b = lgb.train(
        {"objective": "lambdarank", "verbose": -1}, lgb.Dataset(rng.normal(size=(600, 4)), y, group=groups), 3
    )
    with pytest.raises(ValueError, match="differ"):
        average_boosters([a, b])
