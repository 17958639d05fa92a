"""The deal book: every deal with its store and time window, indexed by store position.

A book is immutable once built: merchants' edits (``domain.edits``) build a new book from
the deals file plus every edited deal's current state, and the service swaps it in whole,
so a request sees one consistent book.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from geo_index import StoreIndex
from recommender import read_table

log = logging.getLogger(__name__)


class DealBook:
    """Deals as numpy columns; ``active`` answers "which deals run now" vectorised."""

    #: Deal fields merchants write, beyond the file's (``recommender.data`` "deals").
    STATUSES = ("active", "paused", "ended")

    def __init__(self, deals: pd.DataFrame, index: StoreIndex, base: pd.DataFrame | None = None):
        #: The deals file's rows, that edits are applied over (``domain.edits``).
        self.base = deals if base is None else base
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
        # As the API writes them, once per book instead of twice per deal shown.
        self.starts_iso, self.ends_iso = (_iso_z_all(t) for t in (self.starts, self.ends))
        self.quota = deals["quota"].to_numpy(float) if "quota" in deals else np.full(len(deals), np.nan)
        n = len(deals)
        self.status = _column(deals, "status", "active", n)
        self.tags = _column(deals, "tags", "", n)
        self.valid_hours = _column(deals, "valid_hours", None, n)
        self.per_user_limit = (
            pd.to_numeric(deals["per_user_limit"], errors="coerce").to_numpy(float)
            if "per_user_limit" in deals
            else np.full(n, np.nan)
        )
        self.versions = _column(deals, "version", 0, n)
        tz = index.column("timezone")
        # Lunch-only deals: their own hours, in the store's time zone (-1: whenever the store is open).
        self.valid_code = np.array(
            [index.schedules.code_for(h, tz[p]) if h else -1 for h, p in zip(self.valid_hours, self.store_pos)],
            dtype=np.int32,
        )
        self._schedules = index.schedules
        self.by_id = {d: i for i, d in enumerate(self.ids)}
        #: Each deal's rank among the ids in sorted order: the last tie-break sorts integers.
        self.id_rank = np.argsort(np.argsort(self.ids, kind="stable"), kind="stable")
        self._n_positions = index.size
        self._windows: list[DealWindow] = []

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
        """Rows of the deals that run now: inside their window, not paused or ended, and
        inside their valid hours if they have any."""
        t = np.datetime64(_naive_utc(now), "ns")
        running = (self.starts <= t) & (t < self.ends) & (self.status == "active")
        limited = running & (self.valid_code >= 0)
        if limited.any():
            rows = np.flatnonzero(limited)
            running[rows] = self._schedules.open_mask(self.valid_code[rows], now)
        return np.flatnonzero(running)

    def row(self, i: int) -> dict:
        """One deal as JSON-ready values."""
        quota, limit = self.quota[i], self.per_user_limit[i]
        return {
            "deal_id": self.ids[i],
            "store_id": self.store_ids[i],
            "title": self.titles[i],
            "discount_pct": float(self.discount[i]),
            "starts_at": self.starts_iso[i],
            "ends_at": self.ends_iso[i],
            "quota": None if quota != quota else int(quota),
            "per_user_limit": None if limit != limit else int(limit),
            "valid_hours": self.valid_hours[i],
            "tags": [t for t in str(self.tags[i] or "").split("|") if t],
            "status": self.status[i],
            "version": int(self.versions[i]),
        }

    def window(self, index: StoreIndex, now: datetime) -> DealWindow:
        """The deals on offer at ``now`` (``DealWindow``), built once per span in which
        nothing changes, not once per request."""
        t = now.timestamp()
        for w in self._windows:
            if w.start <= t < w.until and w.generation == index.generation:
                return w
        w = DealWindow.build(self, index, now)
        # A few spans: the current one, and the instants that cursors pinned a list to.
        self._windows = [w, *self._windows[:3]]
        return w

    def stores_with(self, rows: np.ndarray, size: int) -> np.ndarray:
        """Boolean mask over store positions that have any of the deal ``rows``."""
        mask = np.zeros(max(size, self._n_positions), dtype=bool)
        mask[self.store_pos[rows]] = True
        return mask


@dataclass(frozen=True)
class DealWindow:
    """What the book offers during a span of time ``[start, until)`` in which no answer
    changes: the stores with a running deal, and the usable deals (running, and their store
    opens before the deal ends), grouped by store.

    The span ends at the next whole minute (opening hours change state only on minutes)
    or at the next deal start or end, whichever is first; an edit of the index (its
    ``generation``) ends it too. The end of a temporary closure needs no boundary: before
    it a deal is usable if the store opens (at the closure's end or later) before the deal
    ends, after it if the store opens before the deal ends, and these agree. So a request
    reads what computing it at its own instant would answer (``tests/test_deal_window.py``
    sweeps every boundary), without the work.
    """

    start: float  # epoch seconds
    until: float
    generation: int
    has_deal: np.ndarray  # over store positions: a running deal there
    _pos: np.ndarray  # store position of each usable row, ascending
    _rows: np.ndarray  # the usable rows in that order

    @classmethod
    def build(cls, book: DealBook, index: StoreIndex, now: datetime) -> DealWindow:
        generation = index.generation  # read first: an edit during the build makes this window stale
        t = now.timestamp()
        ns = np.datetime64(_naive_utc(now), "ns").astype(np.int64)  # as ``active`` compares
        active = book.active(now)
        usable = active[_opens_in_window(index, book, active, now)]
        at = book.store_pos[usable]
        order = np.argsort(at, kind="stable")
        pos = at[order]
        until = math.floor(t / 60) * 60 + 60.0
        starts, ends = book.starts.view(np.int64), book.ends.view(np.int64)
        for later in (starts[starts > ns], ends[ends > ns]):
            if len(later):
                until = min(until, int(later.min()) / 1e9)
        arrays = (book.stores_with(active, index.size), pos, usable[order])
        for a in arrays:  # shared by every request in the span
            a.flags.writeable = False
        return cls(t, until, generation, *arrays)

    def usable_at(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The usable deal rows at store ``positions``, and for each row the index into
        ``positions`` of its store: a store's rows together, stores in ``positions`` order
        (so the indices never decrease)."""
        lo = np.searchsorted(self._pos, positions, "left")
        counts = np.searchsorted(self._pos, positions, "right") - lo
        which = np.repeat(np.arange(len(positions)), counts)
        offsets = np.arange(len(which)) - np.repeat(np.cumsum(counts) - counts, counts)
        return self._rows[lo[which] + offsets], which


def _opens_in_window(index, deals, rows, now) -> np.ndarray:
    """Drop deals whose store, by its known hours and any temporary closure, does not open
    before the deal ends.

    Evaluated once per distinct (schedule, closure) among the candidates, not once per deal.
    """
    pos = deals.store_pos[rows]
    codes = index.column("hours_code")[pos]
    until = index.column("closed_until")[pos]
    closed = until > now.timestamp()  # NaN: no closure
    table = index.schedules
    never = np.datetime64("NaT")
    opens_by: dict[tuple, np.datetime64] = {}
    keys = list(zip(codes.tolist(), np.where(closed, until, 0.0).tolist()))
    for code, reopen in set(keys):
        start = datetime.fromtimestamp(reopen, UTC) if reopen else now
        if code < 0 or table.is_open(code, start):
            # open then (now, or when the closure ends), or hours unknown
            at = np.datetime64(start.replace(tzinfo=None), "ns") if reopen else np.datetime64("1970-01-01", "ns")
            opens_by[(code, reopen)] = at
        else:
            nxt = table.next_open(code, start)
            opens_by[(code, reopen)] = (
                never if nxt is None else np.datetime64(nxt.astimezone(UTC).replace(tzinfo=None), "ns")
            )
    opens = np.array([opens_by[k] for k in keys], dtype="datetime64[ns]")
    return ~np.isnat(opens) & (opens < deals.ends[rows])


def _column(frame: pd.DataFrame, name: str, default, n: int) -> np.ndarray:
    if name not in frame:
        return np.full(n, default, dtype=object)
    return frame[name].astype(object).where(frame[name].notna(), default).to_numpy(object)


def _iso_z_all(instants: np.ndarray) -> np.ndarray:
    """``clock.iso_z`` of every naive-UTC datetime64, as an object array of str."""
    return np.array([s + "Z" for s in np.datetime_as_string(instants, unit="s").tolist()], dtype=object)


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
