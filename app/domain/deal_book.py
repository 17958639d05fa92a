"""The deal book: every deal with its store and time window, indexed by store position."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from geo_index import StoreIndex
from recommender import read_table

log = logging.getLogger(__name__)


class DealBook:
    """Deals as numpy columns; ``active`` answers "which deals run now" vectorised."""

    def __init__(self, deals: pd.DataFrame, index: StoreIndex):
        pos = deals["store_id"].map(lambda s: index.position(str(s)))
        unknown = pos.isna()
        if unknown.any():
            log.warning("%d deals refer to stores not in the catalogue; left out", int(unknown.sum()))
        deals = deals.loc[~unknown].reset_index(drop=True)
        self.ids = deals["deal_id"].astype(str).to_numpy(object)
        self.store_ids = deals["store_id"].astype(str).to_numpy(object)
        self.store_pos = pos[~unknown].astype(np.int64).to_numpy()
        self.titles = deals["title"].astype(str).to_numpy(object)
        self.discount = deals["discount_pct"].to_numpy(float)
        self.starts = deals["starts_at"].to_numpy("datetime64[ns]")
        self.ends = deals["ends_at"].to_numpy("datetime64[ns]")
        self.quota = deals["quota"].to_numpy(float) if "quota" in deals else np.full(len(deals), np.nan)
        self.by_id = {d: i for i, d in enumerate(self.ids)}
        self._n_positions = index.size

    @classmethod
    def from_file(cls, path: str | None, index: StoreIndex) -> DealBook:
        if not path or not os.path.exists(path):
            log.warning("no deals file at %s: no deals will be recommended", path)
            return cls(_empty(), index)
        frame, report = read_table(path, "deals", known_stores=None)
        if not report.ok:
            log.warning("deals loaded leniently:\n%s", report.summary())
        return cls(frame, index)

    def __len__(self) -> int:
        return len(self.ids)

    def store_of(self, deal_id: str) -> str | None:
        i = self.by_id.get(deal_id)
        return None if i is None else self.store_ids[i]

    def active(self, now: datetime) -> np.ndarray:
        """Rows of the deals whose window contains ``now``."""
        t = np.datetime64(_naive_utc(now), "ns")
        return np.flatnonzero((self.starts <= t) & (t < self.ends))

    def stores_with(self, rows: np.ndarray, size: int) -> np.ndarray:
        """Boolean mask over store positions that have any of the deal ``rows``."""
        mask = np.zeros(max(size, self._n_positions), dtype=bool)
        mask[self.store_pos[rows]] = True
        return mask


def _naive_utc(now: datetime):

    return now.astimezone(UTC).replace(tzinfo=None)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "deal_id": pd.Series(dtype=str),
            "store_id": pd.Series(dtype=str),
            "title": pd.Series(dtype=str),
            "discount_pct": pd.Series(dtype=float),
            "starts_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "ends_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "quota": pd.Series(dtype=float),
        }
    )
