"""The loop's store signals, recomputed from the events by every retraining run.

- **popularity**: log1p of the store's orders and redemptions, each decayed with a
  half-life of a quarter of the data's own span (``recommender.window``);
- **rating**: the mean of the store's reviews, shrunk toward the mean of all reviews by
  the median number of reviews per reviewed store (``sources.shrunk_rating``); a store
  without reviews keeps its catalogue rating.

They are ranker features, and the service serves them for ``sort=popularity`` and
``sort=rating`` once the model that carries them is active.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def with_review_ratings(stores: pd.DataFrame, reviews: pd.DataFrame | None) -> pd.DataFrame:
    """``stores`` with ``rating`` from its reviews where it has any, and ``review_count``."""
    out = stores.assign(store_id=stores["store_id"].astype(str))
    base = pd.to_numeric(out["rating"], errors="coerce") if "rating" in out else pd.Series(np.nan, index=out.index)
    if reviews is None or not len(reviews):
        return out.assign(rating=base, review_count=0)
    by_store = reviews.assign(store_id=reviews["store_id"].astype(str)).groupby("store_id")["rating"]
    mean, count = by_store.mean(), by_store.size()
    n = out["store_id"].map(count).fillna(0).astype(int)
    return out.assign(rating=out["store_id"].map(mean).where(n > 0, base), review_count=n)


def store_signals(stage) -> pd.DataFrame:
    """store_id, popularity, rating of a fitted ``SecondStage`` (rating NaN: unknown)."""
    return pd.DataFrame(
        {
            "store_id": list(stage.items),
            "popularity": stage.sources.window.popularity.astype(float),
            "rating": stage.sources.stores.rating.astype(float),
        }
    )
