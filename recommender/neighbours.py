"""Neighbourhood baselines: user-KNN, item-KNN and RP3beta over a binary users x items matrix.

Simple neighbourhood methods often beat factorisation models when both are tuned with
equal care (Dacrema et al., "Are we really making much progress?", RecSys 2019), so the
evaluation runs them beside LightFM. Each follows the usual definition:

- ``UserKNN``: cosine similarity between users with a shrink term,
  ``sim(u, v) = x_u . x_v / (|x_u| |x_v| + shrink)``, the ``neighbours`` most similar users
  kept; ``score(u, i) = sum_v sim(u, v) x_vi``.
- ``ItemKNN``: the same between items (columns); ``score(u, j) = sum_i x_ui sim(i, j)``.
- ``RP3beta`` (Paudel et al. 2017): the three-step random walk user -> item -> user -> item
  with transition probabilities raised to ``alpha``, the landing item's probability divided
  by its popularity to the power ``beta``; ``W = (P_iu^alpha P_ui^alpha) diag(pop^-beta)``,
  each row's ``neighbours`` largest entries kept; ``score(u, j) = sum_i x_ui W_ij``.

Estimators follow scikit-learn's shape: ``__init__`` stores settings, ``fit(X)`` learns
and returns ``self``, ``score(rows)`` gives dense scores for those users. Similarities are
built in row blocks and kept sparse (top-``neighbours`` per row), so 30,000 items fit in a
few hundred MB.
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp

from .evaluation import evaluate, only_rows

_BLOCK = 2048
#: User-KNN looks for each user's neighbours among at most this many users (a seeded
#: sample of those with a store): a compute budget that keeps the fit linear in users
#: (users x pool products) instead of quadratic. Every evaluation set has fewer users, so
#: it only matters at a platform's scale, where 20,000 candidates leave plenty of close ones.
NEIGHBOUR_POOL = 20_000
# A block with more than this share of its cells stored is cut by partition on a dense
# copy (users who share popular stores make nearly full user x user blocks).
_DENSE_SHARE = 0.25


def _binary(x: sp.spmatrix) -> sp.csr_matrix:
    x = sp.csr_matrix(x, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    x.eliminate_zeros()
    return x


def top_per_row(block: sp.spmatrix, k: int) -> sp.csr_matrix:
    """The ``k`` largest positive entries of each row of a sparse block (ties to the lower
    column), as CSR. Only stored entries are looked at: a similarity row of 30,000 stores
    usually has a few hundred, so no dense row is ever sorted.

    Values are first rounded to 20 significant bits (about 6 digits): float sums in another
    order differ in the last bits, and two similarities that are equal by arithmetic (two
    users at cosine 1/2) must tie, so the cut is decided by the column, not by round-off.
    """
    if _nearly_full(block, k):
        return _top_per_row_dense(block.toarray(), k)
    coo = sp.coo_matrix(block)
    vals = _round20(coo.data)
    pos = vals > 0
    r, c, v = coo.row[pos], coo.col[pos], vals[pos]
    order = np.lexsort((c, -v, r))
    r, c, v = r[order], c[order], v[order]
    starts = np.searchsorted(r, np.arange(block.shape[0]))
    keep = np.arange(len(r)) - starts[r] < k
    return sp.csr_matrix((v[keep], (r[keep], c[keep])), shape=block.shape, dtype=np.float32)


def _nearly_full(block: sp.spmatrix, k: int) -> bool:
    n_rows, n_cols = block.shape
    return k < n_cols and block.nnz > _DENSE_SHARE * n_rows * n_cols


def _round20(values: np.ndarray) -> np.ndarray:
    """Round half up at the 4th bit from the end of the 23-bit mantissa (positive values)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    return ((bits + np.uint32(8)) & np.uint32(0xFFFFFFF0)).view(np.float32)


def _top_per_row_dense(dense: np.ndarray, k: int) -> sp.csr_matrix:
    """``top_per_row`` of a nearly full block, by partition instead of sorting every entry:
    the k-th largest value of each row, everything above it, and of the values equal to it
    the lowest columns (the same ties as the sparse path)."""
    vals = _round20(dense).reshape(dense.shape)
    vals = np.where(vals > 0, vals, np.float32(0))
    kth = -np.partition(-vals, k - 1, axis=1)[:, k - 1 : k]
    keep = vals > kth
    tied = (vals == kth) & (vals > 0)
    room = k - keep.sum(axis=1)
    crowded = np.flatnonzero(tied.sum(axis=1) > room)  # only there do ties need the column order
    keep |= tied
    if len(crowded):
        t = tied[crowded]
        keep[crowded] &= ~t | (np.cumsum(t, axis=1, dtype=np.int32) <= room[crowded, None])
    keep &= vals > 0
    r, c = np.nonzero(keep)
    return sp.csr_matrix((vals[r, c], (r, c)), shape=dense.shape, dtype=np.float32)


def _cosine_top(
    a: sp.csr_matrix,
    shrink: float,
    k: int,
    exclude_self: bool = True,
    rows: np.ndarray | None = None,
    pool: np.ndarray | None = None,
) -> sp.csr_matrix:
    """Cosine similarity (shrunk) of the rows of ``a`` to the rows in ``pool`` (sorted; all
    by default), top ``k`` per row, in ``a``'s row numbering. ``rows``: only those rows are
    computed (sorted; all by default); the others stay empty."""
    n = a.shape[0]
    norms = np.sqrt(np.asarray(a.multiply(a).sum(axis=1)).ravel()).astype(np.float32)
    rows = np.arange(n) if rows is None else np.asarray(rows, np.int64)
    pool = np.arange(n) if pool is None else np.asarray(pool, np.int64)
    at = a[pool].T.tocsr()
    out_r, out_c, out_v = [], [], []
    for start in range(0, len(rows), _BLOCK):
        r = rows[start : start + _BLOCK]
        dot = a[r] @ at
        if _nearly_full(dot, k):  # users who share popular stores: divide and cut in place
            dense = dot.toarray()
            dense /= norms[r, None] * norms[None, pool] + np.float32(shrink + 1e-12)
            if exclude_self:
                hit = np.searchsorted(pool, r)
                own = (hit < len(pool)) & (pool[np.minimum(hit, len(pool) - 1)] == r)
                dense[np.flatnonzero(own), hit[own]] = 0.0
            top = sp.coo_matrix(_top_per_row_dense(dense, k))
        else:
            dot = sp.coo_matrix(dot)
            dot.data = dot.data / (norms[r[dot.row]] * norms[pool[dot.col]] + shrink + 1e-12)
            if exclude_self:
                dot.data[pool[dot.col] == r[dot.row]] = 0.0
            top = sp.coo_matrix(top_per_row(dot, k))
        # pool is sorted: ties still go to the lower user
        out_r.append(r[top.row])
        out_c.append(pool[top.col])
        out_v.append(top.data)
    if not out_r:
        return sp.csr_matrix((n, n), dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(out_v), (np.concatenate(out_r), np.concatenate(out_c))), shape=(n, n), dtype=np.float32
    )


def neighbour_pool(x: sp.csr_matrix, seed: int = 0) -> np.ndarray | None:
    """The users user-KNN draws neighbours from (sorted), or None for all of them."""
    size = NEIGHBOUR_POOL
    if x.shape[0] <= size:
        return None
    active = np.flatnonzero(np.diff(x.indptr) > 0)
    if len(active) <= size:
        return active
    return np.sort(np.random.default_rng(seed).choice(active, size, replace=False))


def _truncate_rows(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's ``k`` largest entries (ties to the lower column). On a matrix that already
    holds each row's top ``K >= k``, this equals the top ``k`` of the full rows."""
    rows, cols, vals = [], [], []
    for r in range(m.shape[0]):
        lo, hi = m.indptr[r], m.indptr[r + 1]
        c, v = m.indices[lo:hi], m.data[lo:hi]
        keep = np.lexsort((c, -v))[:k]
        rows.append(np.full(len(keep), r))
        cols.append(c[keep])
        vals.append(v[keep])
    return sp.csr_matrix(
        (
            np.concatenate(vals) if vals else [],
            (np.concatenate(rows) if rows else [], np.concatenate(cols) if cols else []),
        ),
        shape=m.shape,
        dtype=np.float32,
    )


class _Neighbourhood:
    """Shared by the two cosine KNN models: their settings and cheaper re-tuning of ``neighbours``."""

    sim_: sp.csr_matrix

    def __init__(self, neighbours: int = 100, shrink: float = 10.0):
        self.neighbours = neighbours
        self.shrink = shrink

    def with_neighbours(self, k: int):
        """The same fitted model keeping fewer neighbours (no refit): for tuning ``neighbours``."""
        if k > self.neighbours:
            raise ValueError(f"fitted with {self.neighbours} neighbours; cannot widen to {k}")
        clone = copy.copy(self)
        clone.neighbours = k
        clone.sim_ = _truncate_rows(self.sim_, k)
        return clone


class UserKNN(_Neighbourhood):
    """Users like you went here: cosine user-user neighbourhood (neighbours from at most
    ``NEIGHBOUR_POOL`` users)."""

    def fit(self, x: sp.spmatrix, rows: np.ndarray | None = None) -> UserKNN:
        """``rows``: only these users will be scored (sorted); the others get no neighbours."""
        self.x_ = _binary(x)
        self.sim_ = _cosine_top(self.x_, self.shrink, self.neighbours, rows=rows, pool=neighbour_pool(self.x_))
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray((self.sim_[rows] @ self.x_).todense(), dtype=np.float32)


class ItemKNN(_Neighbourhood):
    """Places like the ones you went to: cosine item-item neighbourhood."""

    def fit(self, x: sp.spmatrix, rows: np.ndarray | None = None) -> ItemKNN:
        """``rows`` is accepted for a common signature: item-item work does not grow with users."""
        self.x_ = _binary(x)
        self.sim_ = _cosine_top(self.x_.T.tocsr(), self.shrink, self.neighbours)
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray((self.x_[rows] @ self.sim_).todense(), dtype=np.float32)


class RP3beta:
    """A three-step random walk on the user-item graph, popularity-penalised (Paudel et al. 2017)."""

    def __init__(self, alpha: float = 1.0, beta: float = 0.5, neighbours: int = 200):
        self.alpha = alpha
        self.beta = beta
        self.neighbours = neighbours

    def fit(self, x: sp.spmatrix, rows: np.ndarray | None = None) -> RP3beta:
        """``rows``: as ``ItemKNN.fit``."""
        self.x_ = _binary(x)
        p_ui = _row_normalised(self.x_).power(self.alpha)
        p_iu = _row_normalised(self.x_.T.tocsr()).power(self.alpha)
        pop = np.asarray(self.x_.sum(axis=0)).ravel()
        penalty = np.where(pop > 0, np.power(np.maximum(pop, 1.0), -self.beta), 0.0).astype(np.float32)
        blocks = []
        for start in range(0, p_iu.shape[0], _BLOCK):
            stop = min(start + _BLOCK, p_iu.shape[0])
            w = sp.coo_matrix(p_iu[start:stop] @ p_ui)
            w.data = w.data * penalty[w.col]
            blocks.append(top_per_row(w, self.neighbours))
        self.w_ = sp.vstack(blocks).tocsr()
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray((self.x_[rows] @ self.w_).todense(), dtype=np.float32)


def _row_normalised(x: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(x.sum(axis=1)).ravel()
    inv = np.where(sums > 0, 1.0 / np.maximum(sums, 1e-12), 0.0).astype(np.float32)
    return sp.csr_matrix(sp.diags(inv) @ x)


#: The baselines and the settings each may choose from on validation.
NEIGHBOURHOOD = {
    "user_knn": (UserKNN, [{"neighbours": n, "shrink": s} for n in (50, 100, 200) for s in (0.0, 20.0)]),
    "item_knn": (ItemKNN, [{"neighbours": n, "shrink": s} for n in (50, 100, 200) for s in (0.0, 20.0)]),
    "rp3beta": (RP3beta, [{"alpha": a, "beta": b, "neighbours": 200} for a in (0.5, 1.0) for b in (0.0, 0.3, 0.6)]),
}


def tune_neighbourhood(
    name: str, fit_m, val_m, k: int, log, exclude: bool = True, users: np.ndarray | None = None
) -> dict:
    """The setting of a neighbourhood baseline with the best validation NDCG (first best on
    ties). ``users``: judge on these validation users only (sorted; all by default)."""
    cls, grid = NEIGHBOURHOOD[name]
    if users is not None:
        val_m = only_rows(val_m, users)
    best, best_settings = -1.0, grid[0]
    cache: dict = {}  # one fit per setting other than neighbours, at the most neighbours asked for
    for settings in grid:
        model = fitted(cls, settings, grid, fit_m, cache, users)
        ndcg = evaluate(model.score, fit_m, val_m, k, exclude_train=exclude)["ndcg"] or 0.0
        if ndcg > best + 1e-9:
            best, best_settings = ndcg, settings
    log(f"[{name}] {best_settings} (validation NDCG@{k} {best:.4f})")
    return best_settings


def fitted(cls, settings: dict, grid: list[dict], x, cache: dict, rows: np.ndarray | None = None):
    """``cls(**settings)`` fitted on ``x`` (for ``rows``); KNN models differing only in
    neighbours share a fit."""
    if not hasattr(cls, "with_neighbours"):
        return cls(**settings).fit(x, rows)

    def others(s: dict) -> tuple:
        return tuple(sorted((k, v) for k, v in s.items() if k != "neighbours"))

    rest = others(settings)
    if rest not in cache:
        widest = max(g["neighbours"] for g in grid if others(g) == rest)
        cache[rest] = cls(**{**settings, "neighbours": widest}).fit(x, rows)
    return cache[rest].with_neighbours(settings["neighbours"])
