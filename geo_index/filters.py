"""Store filters compiled into one vectorised predicate over row positions.

The index applies the predicate to candidates before it cuts to ``k``, so "the ten
nearest open cafés" really has ten when ten exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from .index import Predicate, StoreIndex, search_text


@dataclass(frozen=True)
class StoreFilter:
    """What a store must satisfy. Empty fields do not filter.

    Attributes
    ----------
    categories : categories to keep (any of them).
    exclude_categories : categories to drop.
    price_levels : price levels to keep (1-4); stores with no price level are dropped.
    min_rating : lowest rating to keep; stores with no rating are dropped.
    open_at : an aware instant; only stores whose schedule says open then are kept, each
        evaluated in its own timezone. Stores without opening hours are dropped.
    text : case-insensitive substring of name, category or tags.
    store_ids : an explicit allow-list of store ids (e.g. stores that have deals).
    """

    categories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    price_levels: tuple[int, ...] = ()
    min_rating: float | None = None
    open_at: datetime | None = None
    text: str | None = None
    store_ids: frozenset[str] | None = None

    @property
    def is_empty(self) -> bool:
        return (
            not self.categories
            and not self.exclude_categories
            and not self.price_levels
            and self.min_rating is None
            and self.open_at is None
            and not self.text
            and self.store_ids is None
        )

    def predicate(self, index: StoreIndex) -> Predicate | None:
        """A callable ``positions -> bool mask`` for ``index``, or None if nothing filters."""
        if self.is_empty:
            return None
        checks = []
        if self.categories:
            checks.append(_code_check(index, self.categories, keep=True))
        if self.exclude_categories:
            checks.append(_code_check(index, self.exclude_categories, keep=False))
        if self.price_levels:
            price = index.column("price")
            levels = np.array(sorted(set(self.price_levels)), dtype=np.int8)
            checks.append(lambda pos: np.isin(price[pos], levels))
        if self.min_rating is not None:
            rating = index.column("rating")
            floor = float(self.min_rating)
            checks.append(lambda pos: np.nan_to_num(rating[pos], nan=-1.0) >= floor)
        if self.text:
            needle = self.text.lower()
            checks.append(lambda pos: np.fromiter((needle in search_text(index, p) for p in pos), bool, len(pos)))
        if self.store_ids is not None:
            ids = index.column("store_id")
            allowed = self.store_ids
            checks.append(lambda pos: np.fromiter((ids[p] in allowed for p in pos), bool, len(pos)))
        if self.open_at is not None:
            at = self.open_at
            checks.append(lambda pos: index.open_mask(pos, at))
        return _all_of(checks)


def _code_check(index: StoreIndex, categories: Iterable[str], keep: bool) -> Predicate:
    cat = index.column("category")
    codes = np.array([c for c in (index.category_code(x) for x in categories) if c is not None], dtype=np.int32)
    if keep:
        return lambda pos: np.isin(cat[pos], codes)
    return lambda pos: ~np.isin(cat[pos], codes)


def _all_of(checks: list[Predicate]) -> Predicate:
    # Cheap numeric checks come first; later checks only see survivors.
    def predicate(pos: np.ndarray) -> np.ndarray:
        mask = np.ones(len(pos), dtype=bool)
        for check in checks:
            idx = np.flatnonzero(mask)
            if not len(idx):
                break
            mask[idx] = check(pos[idx])
        return mask

    return predicate
