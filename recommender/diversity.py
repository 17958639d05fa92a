"""The deal list's page walk: at most ``per_store`` deals of one store and ``per_category``
of one category on a page. Shared by ``app.domain.ranking`` (what is served) and
``deal_eval`` (what the replay measures), so both walk the same pages."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

import numpy as np


def page_of(
    store_of: list, cat_of: list, limit: int, page: int, per_store: int, per_category: int
) -> tuple[np.ndarray, bool]:
    """Positions (into the ranked lists ``store_of`` and ``cat_of``) of page ``page``, and
    whether more pages follow.

    Pages are filled in rank order; a deal that would exceed ``per_store`` deals of one
    store or ``per_category`` of one category on this page waits for the next page. The
    walk is deterministic, so a page number is a stable cursor.
    """
    got = next(islice(_pages(store_of, cat_of, limit, per_store, per_category), page, None), None)
    return got if got is not None else (np.empty(0, np.int64), False)


def paged_order(store_of: list, cat_of: list, limit: int, per_store: int, per_category: int) -> np.ndarray:
    """Every position in the order its pages show it: page 0's, then page 1's, and so on."""
    pages = [taken for taken, _more in _pages(store_of, cat_of, limit, per_store, per_category)]
    return np.concatenate(pages) if pages else np.empty(0, np.int64)


def _pages(store_of: list, cat_of: list, limit: int, per_store: int, per_category: int) -> Iterator:
    """(positions, more pages follow) of page 0, 1, ... until a page leaves nothing."""
    remaining = list(range(len(store_of)))
    while True:
        taken: list[int] = []
        deferred: list[int] = []
        by_store: dict = {}
        by_cat: dict = {}
        for j in remaining:
            s, c = store_of[j], cat_of[j]
            if len(taken) < limit and by_store.get(s, 0) < per_store and by_cat.get(c, 0) < per_category:
                taken.append(j)
                by_store[s] = by_store.get(s, 0) + 1
                by_cat[c] = by_cat.get(c, 0) + 1
            else:
                deferred.append(j)
        if not taken and deferred:  # caps would starve the page: relax them rather than stall
            taken, deferred = deferred[:limit], deferred[limit:]
        yield np.array(taken, dtype=np.int64), bool(deferred)
        if not deferred:
            return
        remaining = deferred
