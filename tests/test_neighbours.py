"""Neighbourhood baselines against slow, obviously correct references on tiny matrices."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recommender import neighbours
from recommender.neighbours import ItemKNN, RP3beta, UserKNN


def tiny(seed=0, users=7, items=9):
    rng = np.random.default_rng(seed)
    x = (rng.random((users, items)) < 0.4).astype(np.float32)
    x[0] = 0  # a user with no history
    x[:, 8] = 0  # an item nobody visited
    return x


def keep_top(row, k):
    """The k largest positive values of a list, ties (to 6 digits) to the lower index; the rest zero."""
    order = sorted(range(len(row)), key=lambda j: (-float(f"{row[j]:.6g}"), j))[:k]
    return [row[j] if j in order and row[j] > 0 else 0.0 for j in range(len(row))]


def cosine(a, b, shrink):
    dot = sum(p * q for p, q in zip(a, b))
    return dot / (math.sqrt(sum(p * p for p in a)) * math.sqrt(sum(q * q for q in b)) + shrink + 1e-12)


def user_knn_reference(x, k, shrink, pool=None):
    n_u, n_i = len(x), len(x[0])
    pool = range(n_u) if pool is None else pool
    sim = [
        keep_top([0.0 if u == v or v not in pool else cosine(x[u], x[v], shrink) for v in range(n_u)], k)
        for u in range(n_u)
    ]
    return [[sum(sim[u][v] * x[v][i] for v in range(n_u)) for i in range(n_i)] for u in range(n_u)]


def item_knn_reference(x, k, shrink):
    n_u, n_i = len(x), len(x[0])
    cols = [[x[u][i] for u in range(n_u)] for i in range(n_i)]
    sim = [keep_top([0.0 if i == j else cosine(cols[i], cols[j], shrink) for j in range(n_i)], k) for i in range(n_i)]
    return [[sum(x[u][i] * sim[i][j] for i in range(n_i)) for j in range(n_i)] for u in range(n_u)]


def rp3beta_reference(x, alpha, beta, k):
    n_u, n_i = len(x), len(x[0])
    deg_u = [sum(x[u]) for u in range(n_u)]
    deg_i = [sum(x[u][i] for u in range(n_u)) for i in range(n_i)]
    w = []
    for i in range(n_i):
        row = []
        for j in range(n_i):
            walk = sum(
                (x[u][i] / deg_i[i]) ** alpha * (x[u][j] / deg_u[u]) ** alpha for u in range(n_u) if x[u][i] and x[u][j]
            )
            row.append(walk * (deg_i[j] ** -beta if deg_i[j] else 0.0))
        w.append(keep_top(row, k))
    return [[sum(x[u][i] * w[i][j] for i in range(n_i)) for j in range(n_i)] for u in range(n_u)]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k,shrink", [(100, 0.0), (2, 0.0), (3, 5.0)])
def test_knn_baselines_equal_their_definitions(seed, k, shrink):
    x = tiny(seed)
    rows = np.arange(x.shape[0])
    got_u = UserKNN(neighbours=k, shrink=shrink).fit(sp.csr_matrix(x)).score(rows)
    got_i = ItemKNN(neighbours=k, shrink=shrink).fit(sp.csr_matrix(x)).score(rows)
    np.testing.assert_allclose(got_u, user_knn_reference(x.tolist(), k, shrink), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_i, item_knn_reference(x.tolist(), k, shrink), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha,beta,k", [(1.0, 0.0, 100), (0.5, 0.5, 100), (1.0, 0.3, 3)])
def test_rp3beta_equals_the_random_walk(seed, alpha, beta, k):
    x = tiny(seed)
    got = RP3beta(alpha=alpha, beta=beta, neighbours=k).fit(sp.csr_matrix(x)).score(np.arange(x.shape[0]))
    np.testing.assert_allclose(got, rp3beta_reference(x.tolist(), alpha, beta, k), rtol=1e-5, atol=1e-6)


def test_a_planted_neighbourhood_is_found_and_shuffling_removes_it():
    # Two groups of users, each visiting its own group of stores; user 0 has not yet been to
    # store 3 of its group. Every baseline must rank 3 first among user 0's unseen stores.
    x = np.zeros((20, 12), dtype=np.float32)
    x[:10, :6] = 1
    x[10:, 6:] = 1
    x[0, 3] = 0
    rng = np.random.default_rng(0)
    for model in (UserKNN(neighbours=5), ItemKNN(neighbours=5), RP3beta(neighbours=5)):
        scores = model.fit(sp.csr_matrix(x)).score(np.array([0]))[0]
        scores[x[0] > 0] = -np.inf
        assert int(np.argmax(scores)) == 3, type(model).__name__
        shuffled = x.copy()
        for row in shuffled[1:]:
            rng.shuffle(row)  # same activity per user, no structure left
        wins = 0
        for seed in range(20):
            s = np.random.default_rng(seed).permutation(shuffled)
            s[0] = x[0]
            sc = model.fit(sp.csr_matrix(s)).score(np.array([0]))[0]
            sc[x[0] > 0] = -np.inf
            wins += int(np.argmax(sc) == 3)
        assert wins <= 10, type(model).__name__  # no better than chance among 7 unseen stores, with slack


@pytest.mark.parametrize("cls", [UserKNN, ItemKNN])
@pytest.mark.parametrize("seed", [0, 3])
def test_fewer_neighbours_without_a_refit_equal_a_refit(cls, seed):
    x = sp.csr_matrix(tiny(seed, users=12, items=10))
    wide = cls(neighbours=6, shrink=2.0).fit(x)
    rows = np.arange(x.shape[0])
    for k in (1, 2, 4, 6):
        np.testing.assert_allclose(
            wide.with_neighbours(k).score(rows), cls(neighbours=k, shrink=2.0).fit(x).score(rows), rtol=1e-6
        )
    with pytest.raises(ValueError, match="cannot widen"):
        wide.with_neighbours(7)


@pytest.mark.parametrize("seed", range(6))
def test_the_dense_top_k_keeps_what_the_sparse_one_keeps(seed, monkeypatch):
    """Nearly full similarity blocks are cut by partition; the result (ties to the lower
    column, values rounded to 20 bits) must be the sparse path's, entry for entry."""
    from recommender import neighbours
    from recommender.neighbours import _top_per_row_dense, top_per_row

    monkeypatch.setattr(neighbours, "_DENSE_SHARE", 2.0)  # top_per_row: the sparse path only
    rng = np.random.default_rng(seed)
    block = rng.choice([0.0, 0.25, 0.5, 0.5000001, 1.0 / 3, 0.7, -0.2], size=(40, 30)).astype(np.float32)
    block[3] = 0.5  # a row of ties
    block[4] = 0.0  # an empty row
    for k in (1, 2, 5, 29):
        sparse_path = top_per_row(sp.coo_matrix(block), k)
        dense_path = _top_per_row_dense(block, k)
        assert (sparse_path != dense_path).nnz == 0
        assert (np.diff(dense_path.indptr) <= k).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_user_knn_past_its_pool_takes_neighbours_from_the_pool_only(seed, monkeypatch):
    """Above ``NEIGHBOUR_POOL`` users, neighbours come from a seeded sample of active users,
    and asking for some rows only gives those rows exactly what the full fit gives them."""
    x = tiny(seed, users=40, items=9)
    monkeypatch.setattr(neighbours, "NEIGHBOUR_POOL", 12)
    pool = neighbours.neighbour_pool(sp.csr_matrix(x))
    assert pool is not None and len(pool) == 12 and 0 not in pool  # user 0 has no store
    got = UserKNN(neighbours=3, shrink=1.0).fit(sp.csr_matrix(x)).score(np.arange(40))
    np.testing.assert_allclose(got, user_knn_reference(x.tolist(), 3, 1.0, set(pool.tolist())), rtol=1e-5, atol=1e-6)
    some = np.array([1, 5, 17, 33])
    part = UserKNN(neighbours=3, shrink=1.0).fit(sp.csr_matrix(x), rows=some).score(np.arange(40))
    np.testing.assert_allclose(part[some], got[some], rtol=1e-6)
    assert not part[np.setdiff1d(np.arange(40), some)].any()
    # The pool matters: with every user eligible, some user's scores differ.
    monkeypatch.setattr(neighbours, "NEIGHBOUR_POOL", 40)
    assert not np.allclose(UserKNN(neighbours=3, shrink=1.0).fit(sp.csr_matrix(x)).score(np.arange(40)), got)
