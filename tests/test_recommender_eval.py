"""Evaluation metrics against slow, obviously correct references; no leakage."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.evaluation import evaluate, top_k


def slow_metrics(scores, train, test, k, repeat=False):
    """Per-user precision, recall, NDCG@k by plain loops (the reference)."""
    out = []
    for u in range(scores.shape[0]):
        rel = set(np.flatnonzero(test[u]))
        if not rel:
            continue
        seen = set() if repeat else set(np.flatnonzero(train[u]))
        candidates = [i for i in range(scores.shape[1]) if i not in seen]
        ranked = sorted(candidates, key=lambda i: (-scores[u, i], i))[:k]
        hits = [1 if i in rel else 0 for i in ranked]
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), k)))
        out.append((sum(hits) / k, sum(hits) / len(rel), dcg / idcg, sum(np.flatnonzero(train[u]) >= 0)))
    return np.array(out)


@pytest.mark.parametrize("repeat", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_metrics_equal_the_reference(seed, repeat):
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 30, 25, 5
    train = rng.random((n_users, n_items)) < 0.2
    # Under the repeat protocol a test store may be a known one.
    test = (rng.random((n_users, n_items)) < 0.15) & (np.ones_like(train) if repeat else ~train)
    scores = np.round(rng.normal(size=(n_users, n_items)), 1)  # rounding makes ties
    got = evaluate(
        lambda rows: scores[rows], sp.csr_matrix(train), sp.csr_matrix(test), k=k, chunk=7, exclude_train=not repeat
    )
    ref = slow_metrics(scores, train, test, k, repeat=repeat)
    assert got["users"] == len(ref)
    assert got["precision"] == pytest.approx(ref[:, 0].mean(), abs=1e-4)
    assert got["recall"] == pytest.approx(ref[:, 1].mean(), abs=1e-4)
    assert got["ndcg"] == pytest.approx(ref[:, 2].mean(), abs=1e-4)
    cold = ref[:, 3] <= 5
    if cold.any():
        assert got["cold_ndcg"] == pytest.approx(ref[cold, 2].mean(), abs=1e-4)


def test_a_training_store_is_never_a_hit():
    # Item 0 scores highest and is in both train and test for user 0: it must be skipped.
    train = sp.csr_matrix(np.array([[1, 0, 0, 0]]))
    test = sp.csr_matrix(np.array([[1, 0, 0, 1]]))
    scores = np.array([[9.0, 3.0, 2.0, 1.0]])
    got = evaluate(lambda rows: scores[rows], train, test, k=1)
    assert got["precision"] == 0.0 and got["ndcg"] == 0.0
    got3 = evaluate(lambda rows: scores[rows], train, test, k=3)
    # Ranked 1, 2, 3 (item 0 excluded): the hit (item 3) is third.
    assert got3["ndcg"] == pytest.approx((1 / math.log2(4)) / (1 + 1 / math.log2(3)), abs=1e-4)


def test_under_the_repeat_protocol_a_return_visit_is_a_hit():
    train = sp.csr_matrix(np.array([[1, 0, 0, 0]]))
    test = sp.csr_matrix(np.array([[1, 0, 0, 1]]))
    scores = np.array([[9.0, 3.0, 2.0, 1.0]])
    got = evaluate(lambda rows: scores[rows], train, test, k=1, exclude_train=False)
    assert got["precision"] == 1.0 and got["ndcg"] == 1.0


def test_top_k_breaks_ties_by_index():
    scores = np.array([[1.0, 2.0, 2.0, 0.5, 2.0]])
    assert top_k(scores, 3).tolist() == [[1, 2, 4]]


def test_coverage_counts_distinct_recommended_items():
    train = sp.csr_matrix((3, 4))
    test = sp.csr_matrix(np.ones((3, 4)))
    scores = np.array([[4, 3, 2, 1], [4, 3, 2, 1], [1, 2, 3, 4.0]])
    assert evaluate(lambda rows: scores[rows], train, test, k=1)["coverage"] == 0.5


def _repeat_world(shuffled: bool):
    """Each user goes back to their own favourite store (visited most in TRAIN) in TEST."""
    import pandas as pd

    rng = np.random.default_rng(5)
    stores = pd.DataFrame({"store_id": [f"s{i}" for i in range(40)], "lat": 60.0, "lon": 25.0})
    train, test = [], []
    for u in range(60):
        fav = int(rng.integers(40))
        others = rng.choice([i for i in range(40) if i != fav], 4, replace=False)
        train += [(f"u{u}", f"s{fav}", 5.0, f"2026-01-{d:02d}") for d in (1, 3, 5)]
        train += [(f"u{u}", f"s{o}", 1.0, "2026-01-02") for o in others]
        test.append((f"u{u}", f"s{int(rng.integers(40)) if shuffled else fav}"))
    train_df = pd.DataFrame(train, columns=["user_id", "store_id", "weight", "ts"])
    return stores, train_df, pd.DataFrame(test, columns=["user_id", "store_id"])


def test_repeat_protocol_baselines_find_the_favourite_and_not_when_shuffled():
    from recommender.compare import compare

    models = ("popularity", "most_frequent", "most_recent")
    planted = compare(*_repeat_world(False), k=1, protocol="repeat", models=models, log=lambda m: None)["models"]
    shuffled = compare(*_repeat_world(True), k=1, protocol="repeat", models=models, log=lambda m: None)["models"]
    assert planted["most_frequent"]["ndcg"] == 1.0  # the favourite has the most visits
    assert planted["most_recent"]["ndcg"] == 1.0  # and the latest one
    assert planted["popularity"]["ndcg"] < 0.2
    assert shuffled["most_frequent"]["ndcg"] < 0.2 and shuffled["most_recent"]["ndcg"] < 0.2


def test_most_frequent_breaks_ties_between_known_stores_by_popularity():
    """Two stores of one visit each: the one everybody goes to first, not the one that comes
    first in the catalogue."""
    import pandas as pd

    from recommender.compare import compare

    stores = pd.DataFrame({"store_id": [f"s{i:02d}" for i in range(30)], "lat": 60.0, "lon": 25.0})
    train = [(f"u{u}", f"s{u:02d}", 1.0) for u in range(20)]  # each user's own obscure store, early in the catalogue
    train += [(f"u{u}", "s29", 1.0) for u in range(20)]  # and the popular one, last
    test = [(f"u{u}", "s29") for u in range(20)]
    got = compare(
        stores,
        pd.DataFrame(train, columns=["user_id", "store_id", "weight"]),
        pd.DataFrame(test, columns=["user_id", "store_id"]),
        k=1,
        protocol="repeat",
        models=("most_frequent",),
        log=lambda m: None,
    )
    assert got["models"]["most_frequent"]["ndcg"] == 1.0


def test_the_new_protocol_has_no_repeat_baselines():
    from recommender.compare import compare

    stores, train, test = _repeat_world(False)
    got = compare(stores, train, test, k=1, models=("popularity", "most_frequent"), log=lambda m: None)
    assert set(got["models"]) == {"popularity"} and got["protocol"] == "new"
    with pytest.raises(ValueError, match="protocol"):
        compare(stores, train, test, protocol="again", models=("popularity",), log=lambda m: None)


def test_top_k_equals_a_full_sort_on_heavily_tied_rows():
    """Ties to the lower index; -inf below every number and NaN below -inf, as a full sort
    puts them; float32 rows as float64 ones."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        scores = rng.integers(0, 4, (5, 40)).astype(float)
        scores[rng.random(scores.shape) < 0.2] = -np.inf
        scores[rng.random(scores.shape) < 0.1] = np.nan
        k = int(rng.integers(0, 41))
        reference = np.array([np.lexsort((np.arange(40), -row))[:k] for row in scores])
        assert (top_k(scores, k) == reference).all()
        assert (top_k(scores.astype(np.float32), k) == reference).all()
    big = rng.normal(size=(3, 5000))
    assert (top_k(big, 100) == np.argsort(-big, axis=1, kind="stable")[:, :100]).all()


@pytest.mark.parametrize("exclude_train", [True, False])
def test_the_fused_blend_grid_equals_evaluate_at_every_setting(exclude_train):
    """``tune_on_grid``'s compiled pass against ``evaluate`` on the scores the numpy
    expression makes, setting by setting: tied scores (a popularity of few levels), NaN
    preferences, users without labels, a user whose every store is known, unreachable
    stores (inf metres), one base row for all users and a full base matrix."""
    from recommender.blend import Blend, tune_on_grid

    rng = np.random.default_rng(1)
    n, m = 40, 300
    dist = rng.uniform(0, 4000, (n, m))
    dist[rng.random((n, m)) < 0.05] = np.inf
    train = sp.random(n, m, density=0.05, format="lil", random_state=2)
    train[3] = 1.0  # every store known
    test = sp.random(n, m, density=0.02, format="lil", random_state=3)
    test[5] = 0.0
    train, test = sp.csr_matrix(train), sp.csr_matrix(test)
    test.eliminate_zeros()
    weights, scales = (0.0, 0.5, 2.0, 16.0), (200.0, 1000.0, 3000.0)
    full = rng.normal(size=(n, m)).astype(np.float32)
    full[rng.random((n, m)) < 0.03] = np.nan
    for base in (np.broadcast_to(rng.integers(0, 3, m).astype(np.float32) / 2, (n, m)), full):
        for d in (dist, dist.astype(np.float32)):
            got = tune_on_grid(base, d, weights, scales, train, test, 5, exclude_train)
            for (w, s), ndcg in got.items():
                scores = base + np.float32(w) * Blend(scale_m=s).distance_term(d).astype(np.float32)
                want = evaluate(scores.__getitem__, train, test, 5, exclude_train=exclude_train)["ndcg"]
                assert ndcg == want, (w, s)
    assert len(set(got.values())) > 3  # the settings rank differently: the check has teeth
