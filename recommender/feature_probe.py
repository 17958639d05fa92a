"""What the second stage's features mean, as numbers: a check that a model and the code
serving it agree.

A ranker is a set of thresholds on feature values. If a release changes what a feature
means (a kernel's width, a per-user scale, a clock), a model fitted by the old code still
loads, reads the new numbers with the old thresholds, and ranks worse without an error.
The artifact's ``FORMAT`` catches such a change only when someone remembers to bump it.

So the code that fits a model also computes the features of a small fixed world (this
module's ``values``) and the artifact keeps them; the code that loads it computes them
again and refuses the model when they differ. A change of wording, of speed or of
anything the features do not show passes; a change of meaning does not.

The world is written out by arithmetic, not drawn from a generator, so it is the same
under any numpy. It exercises every feature column: returns (visits, recency, the
category's return interval), co-visitation (the neighbourhood sources), ratings with
review counts, and stores near and far from the past ones and from the request point.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from .sources import FEATURES, Sources, StoreTable
from .window import Window

#: Settings of the neighbourhood sources in the probe: small, so that every store has some.
_SETTINGS = {
    "user_knn": {"neighbours": 3, "shrink": 1.0},
    "item_knn": {"neighbours": 4, "shrink": 1.0},
    "rp3beta": {"alpha": 0.7, "beta": 0.3, "neighbours": 6},
}
_USERS, _STORES = 8, 16
#: Compared with this tolerance: the same code on another machine may differ in the last bits.
RTOL, ATOL = 1e-4, 1e-5


def _world() -> tuple[pd.DataFrame, pd.DataFrame]:
    i = np.arange(_STORES)
    stores = pd.DataFrame(
        {
            "store_id": [f"s{k}" for k in i],
            # A 4 x 4 grid about 450 m apart, so the 300 m to 3 km kernels all see something.
            "lat": 60.17 + 0.004 * (i // 4),
            "lon": 24.94 + 0.008 * (i % 4),
            "category": np.array(["cafe", "bar", "shop"])[i % 3],
            "rating": 3.0 + 0.4 * (i % 5),
            "review_count": 3 * i,
        }
    )
    users, visits, days = [], [], []
    for u in range(_USERS - 1):  # the last user never went anywhere
        for k in range(3 + u):  # histories of 3 to 9 visits
            users.append(f"u{u}")
            visits.append(f"s{(5 * u + 3 * k * k + k) % (_STORES - 2)}")  # two stores nobody visited
            days.append(2 * u + 3 * k + (k * k) % 5)
    rows = pd.DataFrame(
        {
            "user_id": users,
            "store_id": visits,
            "ts": pd.Timestamp("2026-01-05", tz="UTC") + pd.to_timedelta(days, unit="D"),
        }
    )
    return stores, rows


@functools.cache
def values() -> np.ndarray:
    """Features (``sources.FEATURES`` columns, float32, NaN: unknown) of every (user, store)
    pair of the probe world, a user with no row included, as serving computes them: the
    sources' ``row`` per user, a given LightFM score and a request point."""
    stores, rows = _world()
    uidx = {f"u{u}": u for u in range(_USERS)}
    items = {s: k for k, s in enumerate(stores["store_id"])}
    sources = Sources.fit(Window.of(rows, uidx, items), StoreTable.of(stores), _SETTINGS)
    every = np.arange(_STORES, dtype=np.int64)
    out = []
    for u in range(-1, _USERS):
        scores = sources.row(u, every)
        scores["lightfm"] = np.linspace(-1.0, 1.0, _STORES, dtype=np.float32)
        point = (np.full(_STORES, 60.176), np.full(_STORES, 24.955))
        out.append(sources.pair_features(np.full(_STORES, u, np.int64), every, scores, point))
    return np.vstack(out)


def differs(saved: np.ndarray, names) -> str | None:
    """Why ``saved`` (an artifact's probe, columns ``names``) does not match this code's
    features; None when it does."""
    names = list(names)
    if names != list(FEATURES):
        return f"the feature columns were {names}, now {list(FEATURES)}"
    now = values()
    if saved.shape != now.shape:
        return f"the probe's shape was {saved.shape}, now {now.shape}"
    close = np.isclose(saved, now, rtol=RTOL, atol=ATOL, equal_nan=True)
    if close.all():
        return None
    bad = sorted({FEATURES[j] for j in np.flatnonzero(~close.all(axis=0))})
    return f"these features are computed differently now: {', '.join(bad)}"
