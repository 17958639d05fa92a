"""Stage one of the two-stage ranker: candidate sources, and the features of (user, store) pairs.

``Sources`` is fitted on one ``Window`` (the interactions it may see). It gives

- ``blocks(rows)``: dense users x stores scores of each *candidate source* (user-KNN,
  item-KNN, RP3beta, nearness to the user's places, popularity), from which the
  ranker takes each source's best stores offline;
- ``row(user, items)``: the same scores for one user and a few stores (serving);
- ``pair_features(...)``: one row of features per (user, store) pair, the same function
  offline and online, so the ranker is served exactly as it was trained and measured.

The request point: online it is where the user asks from; offline, where the user went
most in the window (their most likely next request point). No setting here is fitted to
one data set: kernel widths are a block, a walk and a district.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import kernels
from .geo import EARTH_RADIUS_M, unit_vectors
from .kernels import DENSITY_SCALES_M
from .neighbours import ItemKNN, RP3beta, UserKNN, top_per_row
from .window import Window

#: The "near my places" candidate source: a 1 km Gaussian, cut at 2.5 widths, <= 500 stores each.
NEAR_SCALE_M, NEAR_CUT, NEAR_MAX = 1000.0, 2.5, 500
NEIGHBOURHOOD_MODELS = {"user_knn": UserKNN, "item_knn": ItemKNN, "rp3beta": RP3beta}
#: Past stores per user that the history features read: the most visited (ties: the lower
#: item). The history kernel's work is candidates x past stores, so a check-in user with 400
#: places took 5 ms for 200 candidates. A compute budget, as ``served.RANKER_USERS``: on
#: Foursquare NYC, where half the users have more, 64 ranked within about 0.15 % of all of
#: them over seven seeds, and 128 no better (docs/recommender.md). ``user_stores`` still
#: counts them all.
HISTORY_STORES = 64
#: Sources whose best stores become candidates offline (``lightfm`` when the caller gives it).
CANDIDATE_SOURCES = (*NEIGHBOURHOOD_MODELS, "near", "popularity", "lightfm")
#: Every feature column, in the order the ranker sees them.
FEATURES = (
    "lightfm",
    *NEIGHBOURHOOD_MODELS,
    "popularity",
    "rating",
    *(f"density_{int(s)}" for s in DENSITY_SCALES_M),
    "nearest_past_m",
    "point_m",
    "category_share",
    "visits",
    "visit_share",
    "visit_rank",
    "days_since",
    "due",
    "user_stores",
    "category_days_since",
    "category_due",
)
_COLUMN = {name: j for j, name in enumerate(FEATURES)}
#: The columns ``kernels.pair_history`` fills, in its order (FEATURES' order): all but these.
_NOT_HISTORY = ("lightfm", *NEIGHBOURHOOD_MODELS, "popularity", "rating")
_HISTORY_COLUMNS = np.array([j for j, name in enumerate(FEATURES) if name not in _NOT_HISTORY], np.int64)


@dataclass
class StoreTable:
    """Store attributes in item order. ``rating`` is shrunk toward the mean (NaN: unknown)."""

    lat: np.ndarray
    lon: np.ndarray
    category: np.ndarray  # int codes
    rating: np.ndarray

    @classmethod
    def of(cls, stores: pd.DataFrame) -> StoreTable:
        cat = stores["category"].astype(str) if "category" in stores else pd.Series([""] * len(stores))
        rating = (
            pd.to_numeric(stores["rating"], errors="coerce") if "rating" in stores else np.full(len(stores), np.nan)
        )
        counts = pd.to_numeric(stores["review_count"], errors="coerce") if "review_count" in stores else None
        return cls(
            stores["lat"].to_numpy(float),
            stores["lon"].to_numpy(float),
            np.unique(cat.to_numpy(), return_inverse=True)[1].astype(np.int32),
            shrunk_rating(rating, counts),
        )


def shrunk_rating(rating, counts=None) -> np.ndarray:
    """Bayesian mean: (n r + m mean) / (n + m) with m the median count of rated stores, so a
    store with two 5-star reviews does not outrank one with two hundred 4.8s. Without counts
    the ratings are used as they are."""
    r = np.asarray(rating, dtype=np.float64)
    known = np.isfinite(r)
    if counts is None or not known.any():
        return r.astype(np.float32)
    n = np.nan_to_num(np.asarray(counts, dtype=np.float64), nan=0.0)
    rated = known & (n > 0)
    if not rated.any():
        return r.astype(np.float32)
    mean = np.average(r[rated], weights=n[rated])
    m = float(np.median(n[rated]))
    out = np.where(known, (n * np.nan_to_num(r) + m * mean) / (n + m), np.nan)
    return out.astype(np.float32)


class Sources:
    """Every source fitted on one window; see the module docstring."""

    def __init__(self, window: Window, stores: StoreTable, models: dict, near: sp.csr_matrix):
        self.window, self.stores, self.models, self.near = window, stores, models, near
        # The store each user visited most (ties: the lower item; -1: none): offline stand-in
        # for the request point.
        top = top_per_row(window.visits, 1)
        has = np.diff(top.indptr) > 0
        self._home = np.full(window.visits.shape[0], -1, np.int64)
        self._home[has] = top.indices[top.indptr[:-1][has]]
        # Each user's HISTORY_STORES most visited stores: what the history kernel reads.
        self._history = _sorted_csr(top_per_row(window.visits, HISTORY_STORES))
        self._visits = _sorted_csr(window.visits)
        none = np.zeros(0, np.int64)
        self._days = _sorted_csr(window.days_since) if window.days_since is not None else (none, none, none)
        self._visit_totals = np.asarray(window.visits.sum(axis=1), dtype=np.float64).ravel()
        self._interval = _category_interval(window, stores.category)
        self._unit = unit_vectors(stores.lat, stores.lon)
        self._csc: dict[str, sp.csc_matrix] | None = None  # see _by_column
        self._per_user = _per_user_scales(window.x, models)

    @classmethod
    def fit(cls, window: Window, stores: StoreTable, settings: dict | None = None, near=None, rows=None) -> Sources:
        """``near``: a ``near_matrix`` of the same stores, when the caller has one already.
        ``rows``: only these users will be asked for (sorted; all by default)."""
        settings = settings or {}
        models = {name: m(**settings.get(name, {})).fit(window.x, rows) for name, m in NEIGHBOURHOOD_MODELS.items()}
        return cls(window, stores, models, near if near is not None else near_matrix(stores.lat, stores.lon))

    # ------------------------------------------------------------ candidates
    def blocks(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Dense scores of each candidate source for ``rows`` (users x stores)."""
        out = {name: m.score(rows) for name, m in self.models.items()}
        out["near"] = np.asarray((self.window.x[rows] @ self.near).todense(), dtype=np.float32)
        out["popularity"] = np.broadcast_to(self.window.popularity, (len(rows), len(self.window.popularity)))
        return out

    def row(self, user: int, items: np.ndarray) -> dict[str, np.ndarray]:
        """``blocks`` for one user (row ``user``, -1: unknown) at ``items`` only; sparse all the way."""
        items = np.asarray(items, dtype=np.int64)
        out: dict[str, np.ndarray] = {}
        if user < 0:
            zeros = np.zeros(len(items), np.float32)
            out.update({name: zeros for name in self.models})
        else:
            x = self.window.x
            past = x.indices[x.indptr[user] : x.indptr[user + 1]]
            ones = np.ones(len(past), np.float32)
            knn = self.models["user_knn"].sim_
            lo, hi = knn.indptr[user], knn.indptr[user + 1]
            by_col = self._by_column()
            out["user_knn"] = _weighted_sum_at(x, by_col["x"], knn.indices[lo:hi], knn.data[lo:hi], items)
            out["item_knn"] = _weighted_sum_at(self.models["item_knn"].sim_, by_col["item_knn"], past, ones, items)
            out["rp3beta"] = _weighted_sum_at(self.models["rp3beta"].w_, by_col["rp3beta"], past, ones, items)
        out["popularity"] = self.window.popularity[items]
        return out

    def _by_column(self) -> dict[str, sp.csc_matrix]:
        """The matrices ``row`` sums, as CSC too: a heavy user's sums read the candidates'
        columns. Built on the first call, as only serving asks (``SecondStage.warm_up``
        makes that call when a model loads)."""
        if self._csc is None:
            self._csc = {
                "x": self.window.x.tocsc(),
                "item_knn": self.models["item_knn"].sim_.tocsc(),
                "rp3beta": self.models["rp3beta"].w_.tocsc(),
            }
        return self._csc

    # -------------------------------------------------------------- features
    def home(self, users: np.ndarray) -> np.ndarray:
        """Each user's most visited store (ties: the lower item); -1 for none and for user -1.
        Offline it stands in for the request point (``pair_features``)."""
        users = np.asarray(users, np.int64)
        return np.where(users >= 0, self._home[np.maximum(users, 0)], -1)

    def pair_features(
        self,
        users: np.ndarray,
        items: np.ndarray,
        scores: dict[str, np.ndarray],
        point: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Features of the pairs (``users[j]``, ``items[j]``), one column per ``FEATURES``
        name (float32; NaN: unknown); user -1 has no history.

        ``scores``: each source's score at the pairs (from ``blocks`` or ``row``, and
        ``lightfm`` when there is a first-stage model). ``point``: the request point per pair
        (lat, lon); offline it is left out and the user's most visited store stands in.
        """
        w, st = self.window, self.stores
        n = len(items)
        out = np.full((n, len(FEATURES)), np.nan, np.float32)
        col = _COLUMN
        if "lightfm" in scores:
            out[:, col["lightfm"]] = scores["lightfm"]
        known, row = users >= 0, np.maximum(users, 0)  # user -1: no row of its own
        for name in NEIGHBOURHOOD_MODELS:
            if name in scores:
                out[:, col[name]] = scores[name] / np.where(known, self._per_user[name][row], 1.0)
        out[:, col["popularity"]] = w.popularity[items]
        out[:, col["rating"]] = st.rating[items]
        if point is None:
            home = self.home(users)
            ok = home >= 0
            plat = np.where(ok, st.lat[np.maximum(home, 0)], np.nan)
            plon = np.where(ok, st.lon[np.maximum(home, 0)], np.nan)
        else:
            plat, plon = point
        kernels.pair_history(
            np.asarray(users, np.int64),
            np.asarray(items, np.int64),
            np.asarray(plat, np.float64),
            np.asarray(plon, np.float64),
            st.lat,
            st.lon,
            self._history,
            self._unit,
            st.category,
            self._visits,
            self._visit_totals,
            self._days,
            self._interval,
            out,
            _HISTORY_COLUMNS,
        )
        return out


def _per_user_scales(x: sp.csr_matrix, models: dict) -> dict[str, np.ndarray]:
    """What each user's neighbourhood scores are divided by in the features, so that one
    split of a tree means the same for a user with three past stores and one with three
    hundred (their raw sums grow with the history). user-KNN: the sum of the user's
    neighbour similarities, which makes the score the classic KNN estimate (the neighbours'
    visits, similarity-weighted, averaged); item-KNN and RP3beta: the user's past stores,
    which makes it a mean over them. 1 where the sum is 0 (the scores are 0 there too). A
    user's order of stores is unchanged; only comparisons across users change, which is
    what the trees make. Measured in docs/recommender.md (Helsinki `new` +4 %)."""
    past = np.asarray(x.sum(axis=1), dtype=np.float32).ravel()
    sims = np.asarray(models["user_knn"].sim_.sum(axis=1), dtype=np.float32).ravel()
    return {
        "user_knn": np.where(sims > 0, sims, 1.0).astype(np.float32),
        "item_knn": np.maximum(past, 1.0),
        "rp3beta": np.maximum(past, 1.0),
    }


def near_matrix(lat: np.ndarray, lon: np.ndarray) -> sp.csr_matrix:
    """Stores x stores Gaussian kernel at ``NEAR_SCALE_M``, cut at ``NEAR_CUT`` widths and the
    ``NEAR_MAX`` closest: ``x_u @ near`` scores every store by nearness to the user's places."""
    if not len(lat):
        return sp.csr_matrix((0, 0), dtype=np.float32)
    from sklearn.neighbors import BallTree  # here, not at import: serving never needs it (0.4 s of start-up)

    xy = np.radians(np.column_stack([lat, lon]))
    tree = BallTree(xy, metric="haversine")
    idx, dist = tree.query_radius(xy, r=NEAR_CUT * NEAR_SCALE_M / EARTH_RADIUS_M, return_distance=True)
    rows, cols, vals = [], [], []
    for i, (c, d) in enumerate(zip(idx, dist)):
        if len(c) > NEAR_MAX:
            keep = np.argsort(d, kind="stable")[:NEAR_MAX]
            c, d = c[keep], d[keep]
        rows.append(np.full(len(c), i))
        cols.append(c)
        vals.append(np.exp(-0.5 * (d * EARTH_RADIUS_M / NEAR_SCALE_M) ** 2))
    n = len(lat)
    return sp.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )


def _weighted_sum_at(
    m: sp.csr_matrix, by_col: sp.csc_matrix, rows: np.ndarray, weights: np.ndarray, items: np.ndarray
) -> np.ndarray:
    """``sum_r weights[r] * m[rows[r], items]`` straight from the sparse arrays (``items`` in
    any order; ``by_col``: ``m`` as CSC): what ``weights @ m[rows]`` gives there, without
    building a sparse matrix per request."""
    return kernels.weighted_sum_at(
        m.indptr,
        m.indices,
        m.data,
        by_col.indptr,
        by_col.indices,
        by_col.data,
        np.asarray(rows, np.int64),
        np.asarray(weights, np.float32),
        np.asarray(items, np.int64),
    )


def _category_interval(window: Window, category: np.ndarray) -> np.ndarray:
    """Per category code, the geometric mean of the days between return visits to its stores
    (NaN where no store of the category was returned to)."""
    n_cat = int(category.max()) + 1 if len(category) else 0
    if window.gap_count is None or not n_cat:
        return np.full(max(n_cat, 1), np.nan, np.float32)
    total = np.bincount(category, weights=window.gap_log_sum, minlength=n_cat)
    count = np.bincount(category, weights=window.gap_count, minlength=n_cat)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.expm1(total / np.maximum(count, 1)), np.nan).astype(np.float32)


def _sorted_csr(m) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, data) with each row's columns sorted, for the kernels' binary search."""
    m = sp.csr_matrix(m)
    if not m.has_sorted_indices:
        m = m.copy()
        m.sort_indices()
    return m.indptr, m.indices, m.data
