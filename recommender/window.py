"""What one span of interactions says about users and stores: the input of every source.

A ``Window`` is built from raw interaction rows (one per visit or order when the data has
them; ``user_id``, ``store_id``, optional ``weight`` and ``ts``) in a fixed user and item
order. It keeps who went where (binary), how often (rows), how long ago (when there are
times) and each store's time-decayed popularity.

"How long ago" runs on each user's own clock: days before the user's latest visit in the
window, not before the window's end. The ranker learns from per-user time splits, where
each user's history ends at a different time (their own cut); measured from the common
end, a user whose history ended a month earlier would look a month away from every store
and every category, and recency would mostly say where the cut fell. On its own clock a
store is "1 day ago" when the user's latest visit was there, in training and in serving.

Popularity decays with a half-life of a quarter of the window's own span, so a two-week
data set and a two-year one are both weighed by their own recent past; without times every
row counts the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .data import every_row_timed

DAY_S = 86_400.0
#: The decay half-life as a share of the window's span (see the module docstring).
HALF_LIFE_SHARE = 0.25


@dataclass
class Window:
    x: sp.csr_matrix  # users x items, 1 where the user went
    visits: sp.csr_matrix  # users x items, number of rows (visits, orders)
    days_since: sp.csr_matrix | None  # users x items, 1 + days from the last visit to the user's latest
    popularity: np.ndarray  # per item, log1p of the decayed weight
    end: pd.Timestamp | None
    #: Per item, the sum of log(1 + days) over the gaps between a user's consecutive visits
    #: to it, and how many such gaps: how often a store (and so its category) is returned to.
    gap_log_sum: np.ndarray | None = None
    gap_count: np.ndarray | None = None

    @classmethod
    def of(cls, rows: pd.DataFrame, uidx: dict, items: dict) -> Window:
        r = rows["user_id"].map(uidx).to_numpy()
        c = rows["store_id"].map(items).to_numpy()
        shape = (len(uidx), len(items))
        ones = np.ones(len(rows), dtype=np.float32)
        visits = sp.csr_matrix((ones, (r, c)), shape=shape)  # duplicates add up
        x = visits.copy()
        x.data[:] = 1.0
        weight = rows["weight"].to_numpy(np.float64) if "weight" in rows else np.ones(len(rows))
        ts = rows["ts"] if len(rows) and every_row_timed(rows) else None
        days_since, end, gap_sum, gap_n = None, None, None, None
        if ts is not None:
            t = pd.to_datetime(ts, utc=True)
            end = t.max()
            age = ((end - t).dt.total_seconds() / DAY_S).to_numpy(np.float64)
            span = max(float(age.max()), 1.0)
            weight = weight * 0.5 ** (age / (HALF_LIFE_SHARE * span))
            # The newest visit of each pair, on the user's own clock (see the module docstring);
            # +1 keeps "at the latest visit" a stored non-zero.
            own = age - pd.Series(age).groupby(r).transform("min").to_numpy()
            newest = pd.DataFrame({"r": r, "c": c, "a": own}).groupby(["r", "c"], sort=False)["a"].min()
            rr, cc = (newest.index.get_level_values(i).to_numpy() for i in (0, 1))
            days_since = sp.csr_matrix((newest.to_numpy() + 1.0, (rr, cc)), shape=shape, dtype=np.float32)
            gap_sum, gap_n = _return_gaps(r, c, age, shape[1])
        popularity = np.log1p(np.bincount(c, weights=weight, minlength=shape[1])).astype(np.float32)
        return cls(sp.csr_matrix(x), sp.csr_matrix(visits), days_since, popularity, end, gap_sum, gap_n)


def _return_gaps(r, c, age, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Per item: sum of log(1 + gap days) between consecutive visits of one user, and their count."""
    order = np.lexsort((-age, c, r))  # per (user, item), oldest visit first
    r, c, age = r[order], c[order], age[order]
    same = (r[1:] == r[:-1]) & (c[1:] == c[:-1])
    gaps = np.log1p(np.maximum(age[:-1] - age[1:], 0.0))[same]
    items = c[1:][same]
    return (
        np.bincount(items, weights=gaps, minlength=n_items).astype(np.float32),
        np.bincount(items, minlength=n_items).astype(np.float32),
    )
