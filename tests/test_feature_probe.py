"""The feature probe: a model is refused by code that computes its features differently."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from recommender import TrainConfig, feature_probe, interaction_weights, train
from recommender.artifact import ArtifactError, current_versions, load, save
from recommender.generator import BehaviourConfig, generate
from recommender.served import fit_from_orders
from recommender.sources import FEATURES, Sources


@pytest.fixture(scope="module")
def two_stage_model():
    from geo_index import load_catalogue

    stores, _ = load_catalogue("data/stores_helsinki.csv")
    b = generate(stores, BehaviourConfig(n_users=120, days=30, seed=4))
    cfg = TrainConfig(no_components=8, max_epochs=2, patience=1)
    model = train(stores, interaction_weights(b.orders, b.reviews), b.reviews, cfg, log=lambda m: None)
    model.second_stage = fit_from_orders(stores, b.orders, b.reviews, cfg, log=lambda m: None)
    return model


def test_the_probe_exercises_every_feature():
    """A column that is constant (or always unknown) in the probe world could change its
    meaning unseen: each takes several values, and the probe is the same on every call."""
    values = feature_probe.values()
    assert values.shape[1] == len(FEATURES)
    for j, name in enumerate(FEATURES):
        known = values[:, j][np.isfinite(values[:, j])]
        assert len(np.unique(known)) >= 3, name
    feature_probe.values.cache_clear()
    np.testing.assert_array_equal(feature_probe.values(), values)


def test_a_model_is_refused_when_a_feature_changes_meaning(two_stage_model, tmp_path, monkeypatch):
    path = save(two_stage_model, str(tmp_path))
    assert load(path).second_stage is not None
    assert current_versions(str(tmp_path)) == [os.path.basename(path)]
    torn = str(tmp_path / "20200101T000000-torn")  # a copy cut short: not current, no crash
    shutil.copytree(path, torn)
    with open(os.path.join(torn, "second_stage.npz"), "r+b") as fh:
        fh.truncate(100)
    assert current_versions(str(tmp_path)) == [os.path.basename(path)]
    shutil.rmtree(torn)

    due = FEATURES.index("due")
    features = Sources.pair_features

    def twice_as_due(self, *args, **kwargs):  # a release that redefines one feature
        out = features(self, *args, **kwargs)
        out[:, due] *= 2
        return out

    monkeypatch.setattr(Sources, "pair_features", twice_as_due)
    feature_probe.values.cache_clear()
    try:
        with pytest.raises(ArtifactError, match=r"computed differently now: due\)"):
            load(path)
        assert current_versions(str(tmp_path)) == []
    finally:
        monkeypatch.undo()
        feature_probe.values.cache_clear()
    assert load(path).second_stage is not None
