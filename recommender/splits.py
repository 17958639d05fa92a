"""TRAIN and its validation split: interaction rows, (user, store) pairs and their matrices.

Rows are visits (or orders) as given; pairs are one row per (user, store). Every tuner and
the served ranker use one ``Split`` of TRAIN's rows per user in time, made once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import scipy.sparse as sp

from .evaluation import interaction_matrix
from .training import TrainConfig, split_per_user


def rows_at(pairs: pd.DataFrame, items: dict) -> pd.DataFrame:
    """Interaction rows with string ids at known stores, one per visit as given."""
    p = pairs.assign(user_id=pairs["user_id"].astype(str), store_id=pairs["store_id"].astype(str))
    p = p[p["store_id"].isin(items)]
    return p if "weight" in p else p.assign(weight=1.0)


def pairs_of(pairs: pd.DataFrame, items: dict) -> pd.DataFrame:
    """One row per (user, store): weights summed, the last time kept."""
    p = rows_at(pairs, items)
    agg = {"weight": "sum"}
    if "ts" in p:
        agg["ts"] = "max"
    return p.groupby(["user_id", "store_id"], as_index=False, sort=True).agg(agg)


def matrix(pairs: pd.DataFrame, uidx: dict, items: dict) -> sp.csr_matrix:
    """Binary users x items matrix of ``pairs`` in the comparison's user and item order."""
    shape = (len(uidx), len(items))
    return interaction_matrix(pairs["user_id"].map(uidx).to_numpy(), pairs["store_id"].map(items).to_numpy(), shape)


@dataclass
class Split:
    fit_rows: pd.DataFrame  # the earlier visits of each user
    fit_pairs: pd.DataFrame  # the same, one row per (user, store)
    fit_m: sp.csr_matrix
    val_m: sp.csr_matrix  # stores of the later visits, known ones included
    val_new: sp.csr_matrix  # only those new to the user: the labels of the "new" protocol


def validation(train_rows, uidx: dict, items: dict, cfg: TrainConfig) -> Split:
    """TRAIN's visits split per user in time (at random without ``ts``); every setting is
    chosen on it and the served ranker learns from it."""
    fit_rows, val_rows = split_per_user(train_rows, cfg.validation_fraction, cfg.seed)
    fit_pairs = pairs_of(fit_rows, items)
    fit_m, val_m = matrix(fit_pairs, uidx, items), matrix(pairs_of(val_rows, items), uidx, items)
    val_new = sp.csr_matrix(val_m - val_m.multiply(fit_m))
    val_new.eliminate_zeros()
    return Split(fit_rows, fit_pairs, fit_m, val_m, val_new)
