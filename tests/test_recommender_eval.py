"""Evaluation metrics against slow, obviously correct references; no leakage."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.evaluation import evaluate, top_k


def slow_metrics(scores, train, test, k):
    """Per-user precision, recall, NDCG@k by plain loops (the reference)."""
    out = []
    for u in range(scores.shape[0]):
        rel = set(np.flatnonzero(test[u]))
        if not rel:
            continue
        seen = set(np.flatnonzero(train[u]))
        candidates = [i for i in range(scores.shape[1]) if i not in seen]
        ranked = sorted(candidates, key=lambda i: (-scores[u, i], i))[:k]
        hits = [1 if i in rel else 0 for i in ranked]
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), k)))
        out.append((sum(hits) / k, sum(hits) / len(rel), dcg / idcg, sum(np.flatnonzero(train[u]) >= 0)))
    return np.array(out)


@pytest.mark.parametrize("seed", range(6))
def test_metrics_equal_the_reference(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 30, 25, 5
    train = rng.random((n_users, n_items)) < 0.2
    test = (rng.random((n_users, n_items)) < 0.15) & ~train
    scores = np.round(rng.normal(size=(n_users, n_items)), 1)  # rounding makes ties
    got = evaluate(lambda rows: scores[rows], sp.csr_matrix(train), sp.csr_matrix(test), k=k, chunk=7)
    ref = slow_metrics(scores, train, test, k)
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


def test_top_k_breaks_ties_by_index():
    scores = np.array([[1.0, 2.0, 2.0, 0.5, 2.0]])
    assert top_k(scores, 3).tolist() == [[1, 2, 4]]


def test_coverage_counts_distinct_recommended_items():
    train = sp.csr_matrix((3, 4))
    test = sp.csr_matrix(np.ones((3, 4)))
    scores = np.array([[4, 3, 2, 1], [4, 3, 2, 1], [1, 2, 3, 4.0]])
    assert evaluate(lambda rows: scores[rows], train, test, k=1)["coverage"] == 0.5
