"""An exact great-circle store index: an R-tree over unit-sphere points plus numpy columns.

Coordinate order, stated once: the tree stores 3-D unit vectors ``(x, y, z)`` with
rtree's ``interleaved=True`` bounds ``(minx, miny, minz, maxx, maxy, maxz)``; the public
methods take degrees as ``lat, lon`` (bbox as ``min_lon, min_lat, max_lon, max_lat``, the
GeoJSON order). Chord distance between unit vectors is monotone in great-circle distance,
so the tree's nearest neighbours are the true nearest neighbours on the sphere: no
antimeridian or polar special cases. Every reported distance is haversine, and ties are
broken by ``store_id``.

Tree ids are row positions in the columns. An index is immutable once built: a new
catalogue is a new index, so positions never move under a running query.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from rtree import index as rtree_index

from .columns import CodedText, SortedKeys, TextColumn, join_tags, split_tags
from .geodesy import chord_for_distance, haversine_rad, to_unit_xyz
from .hours import ScheduleTable

Predicate = Callable[[np.ndarray], np.ndarray]

# Measured on 1M points (scripts/bench/index.py): leaves of 16 answer kNN ~30% faster
# than rtree's default of 100, and build just as fast.
_LEAF_CAPACITY = 16
# Relative slack on tree-space distances: the tree sees float chords, we decide on
# haversine metres, and a candidate must never be lost to the last bit of rounding.
_SLACK = 1e-9


@dataclass(frozen=True)
class Hits:
    """Query result: row positions and their great-circle distances, best first."""

    positions: np.ndarray
    distances_m: np.ndarray

    def __len__(self) -> int:
        return len(self.positions)


@dataclass(frozen=True)
class IndexData:
    """Everything an index holds besides its tree: what ``geo_index.prebuilt`` saves.

    ``columns`` maps a name to a numpy array or a text column, one row per store;
    ``schedules`` lists the (opening hours, time zone) pair of each ``hours_code``.
    """

    columns: dict
    categories: list[str]
    schedules: list[tuple[str, str]]


def index_data(df: pd.DataFrame) -> IndexData:
    """The columns of canonical rows (see ``geo_index.catalogue``)."""
    n = len(df)
    lat = df["lat"].to_numpy(np.float64)
    lon = df["lon"].to_numpy(np.float64)
    tz = df["timezone"].astype(str).tolist()
    hours = [h if isinstance(h, str) and h else None for h in df["opening_hours"].tolist()]
    price = df["price_level"].to_numpy(np.float64, na_value=np.nan)
    ids, id_codes = SortedKeys.build(df["store_id"].astype(str).tolist())
    merchants, merchant_codes = SortedKeys.build(df["merchant_id"].astype(str).tolist())
    categories, category_codes = _codes_of(df["category"].astype(str))
    schedules = ScheduleTable()
    hours_code = _schedule_codes(schedules, hours, tz)
    cols = {
        "store_id": CodedText(id_codes, ids),
        # Row positions in store_id order (the inverse of the store_id codes): lookups by id.
        "id_order": np.argsort(id_codes, kind="stable").astype(np.int64),
        "merchant_id": CodedText(merchant_codes, merchants),
        "name": TextColumn.of(df["name"].astype(str).tolist()),
        "timezone": CodedText.of(tz),
        "opening_hours": CodedText.of(hours),
        "tags": CodedText.of([join_tags(t) for t in df["tags"].tolist()], convert=split_tags),
        "lat": lat,
        "lon": lon,
        "xyz": to_unit_xyz(lat, lon) if n else np.empty((0, 3)),
        # Cached halves of the haversine, for the hot path of every query.
        "lat_rad": np.radians(lat),
        "cos_lat": np.cos(np.radians(lat)),
        "category": category_codes,
        # 0 = unknown price level, so that integer filters stay vectorised.
        "price": np.where(np.isnan(price), 0, price).astype(np.int8),
        "rating": df["rating"].to_numpy(np.float64, na_value=np.nan),
        "popularity": df["popularity"].to_numpy(np.float64, na_value=0.0),
        "hours_code": hours_code,
        # What a merchant may edit beyond the catalogue (none of it moves a store).
        "phone": TextColumn.of(_optional(df, "phone", n)),
        "website": TextColumn.of(_optional(df, "website", n)),
        "closed_until": np.full(n, np.nan),  # epoch seconds of a temporary closure's end
        "closure_reason": TextColumn.of([None] * n),
    }
    keys = [(s.expression, s.tz) for s in schedules.schedules]
    return IndexData(cols, categories, keys)


def _codes_of(values: pd.Series) -> tuple[list[str], np.ndarray]:
    # factorize: one lookup per distinct value, not per store.
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return [str(u) for u in uniques], codes.astype(np.int32)


def _schedule_codes(table: ScheduleTable, hours: list, tz: list) -> np.ndarray:
    # Each distinct (hours, zone) pair once: factorise both, then their pair of codes.
    h_codes, h_values = pd.factorize(pd.Series([h or "" for h in hours], dtype=object), use_na_sentinel=False)
    z_codes, z_values = pd.factorize(pd.Series(tz, dtype=object), use_na_sentinel=False)
    width = max(len(z_values), 1)
    pairs, local = np.unique(h_codes.astype(np.int64) * width + z_codes, return_inverse=True)
    mapping = np.array([table.code_for(h_values[p // width], z_values[p % width]) for p in pairs.tolist()], np.int32)
    return mapping[local.reshape(-1)] if len(local) else np.empty(0, np.int32)


def memory_tree(xyz: np.ndarray) -> rtree_index.Index:
    """libspatialindex's R-tree of ``xyz`` in this process's memory (a saved index maps
    ``geo_index.packed_tree`` instead)."""
    props = rtree_index.Property(dimension=3, leaf_capacity=_LEAF_CAPACITY, index_capacity=_LEAF_CAPACITY)
    if len(xyz) == 0:
        return rtree_index.Index(properties=props, interleaved=True)
    ids = np.arange(len(xyz), dtype=np.int64)
    # Bulk (STR) load from arrays: orders of magnitude faster than one insert per row.
    return rtree_index.Index(
        (ids, np.ascontiguousarray(xyz), np.ascontiguousarray(xyz)), properties=props, interleaved=True
    )


class StoreIndex:
    """Stores in an R-tree, with their attributes in numpy columns beside it.

    Parameters
    ----------
    stores : pandas.DataFrame
        Canonical rows (see ``geo_index.catalogue``), already validated.

    ``StoreIndex(frame)`` builds in memory; ``geo_index.prebuilt`` saves one to disk and
    opens it memory-mapped (``StoreIndex.from_data``), the same class either way. The
    catalogue part is immutable: merchant edits and a model's signals are per-process
    overlays (``update_attributes``, ``set_signal``) that never write the shared arrays.
    """

    def __init__(self, stores: pd.DataFrame):
        data = index_data(stores)
        self._setup(data, memory_tree(data.columns["xyz"]))

    @classmethod
    def from_data(cls, data: IndexData, tree) -> StoreIndex:
        """An index over columns already built (e.g. memory-mapped) and a tree answering
        rtree's ``nearest_v`` and ``intersection_v`` (``memory_tree``, or ``PackedTree``)."""
        self = cls.__new__(cls)
        self._setup(data, tree)
        return self

    def _setup(self, data: IndexData, tree) -> None:
        self._lock = threading.RLock()
        #: Counts in-place attribute edits, so that what was derived from the attributes
        #: (the deal book's ``DealWindow``) knows when it is stale.
        self.generation = 0
        self._base_signals: dict[str, np.ndarray] = {}  # catalogue values under a model's overlay
        self._cols = dict(data.columns)
        self.categories = list(data.categories)
        self._category_codes = {c: i for i, c in enumerate(self.categories)}
        self.schedules = ScheduleTable()
        for code, (expression, tz) in enumerate(data.schedules):
            if self.schedules.code_for(expression, tz) != code:
                raise ValueError("schedule keys must be distinct")
        self._n = len(self._cols["lat"])
        self._ids: CodedText = self._cols["store_id"]
        self._merchants: CodedText = self._cols["merchant_id"]
        self._id_keys, self._merchant_keys = self._ids.values, self._merchants.values
        assert isinstance(self._id_keys, SortedKeys) and isinstance(self._merchant_keys, SortedKeys)
        if len(self._id_keys) != self._n:
            raise ValueError("store_id values must be unique; validate the catalogue first")
        self._tree = tree

    # ---------------------------------------------------------------- accessors
    def __len__(self) -> int:
        return self._n

    @property
    def size(self) -> int:
        """Number of row positions."""
        return self._n

    def column(self, name: str):
        """One attribute over all row positions: a read-only numpy view, or for text a
        ``geo_index.columns`` reader indexed the same way (scalar or array of positions)."""
        col = self._cols[name]
        if not isinstance(col, np.ndarray):
            return col
        view = col.view()
        view.flags.writeable = False
        return view

    def position(self, store_id: str) -> int | None:
        code = self._id_keys.find_one(str(store_id))
        return int(self._cols["id_order"][code]) if code >= 0 else None

    def positions_of(self, store_ids: list[str]) -> np.ndarray:
        """Positions of the ids, -1 for an id not in the index."""
        codes = self._id_keys.find(store_ids)
        return np.where(codes >= 0, self._cols["id_order"][np.maximum(codes, 0)], -1).astype(np.int64)

    def stores_of(self, merchant_id: str) -> np.ndarray:
        """Positions of a merchant's stores, ascending."""
        code = self._merchant_keys.find_one(str(merchant_id))
        return self._merchants.rows_with(code) if code >= 0 else np.empty(0, np.int64)

    def category_code(self, category: str) -> int | None:
        return self._category_codes.get(category)

    def record(self, pos: int) -> dict:
        """One store's canonical fields as plain Python values."""
        return self.records(np.array([pos]))[0]

    def records(self, positions: np.ndarray) -> list[dict]:
        """``record`` for many positions at once (column slices converted in bulk)."""
        pos = np.asarray(positions, dtype=np.int64)
        c = self._cols
        price = c["price"][pos].tolist()
        rating = [None if r != r else r for r in c["rating"][pos].tolist()]  # NaN: unrated
        cats = [self.categories[x] for x in c["category"][pos].tolist()]
        phone, website, reason = c["phone"][pos], c["website"][pos], c["closure_reason"][pos]
        closed_until = [_iso_utc(t) for t in c["closed_until"][pos].tolist()]
        out = []
        for i, (sid, mid, name, lat, lon, tz, hours, tags, pop) in enumerate(
            zip(
                c["store_id"][pos],
                c["merchant_id"][pos],
                c["name"][pos],
                c["lat"][pos].tolist(),
                c["lon"][pos].tolist(),
                c["timezone"][pos],
                c["opening_hours"][pos],
                c["tags"][pos],
                c["popularity"][pos].tolist(),
            )
        ):
            out.append(
                {
                    "id": sid,
                    "merchant_id": mid,
                    "name": name,
                    "category": cats[i],
                    "lat": lat,
                    "lon": lon,
                    "timezone": tz,
                    "price_level": price[i] or None,
                    "rating": rating[i],
                    "opening_hours": hours,
                    "tags": list(tags),
                    "popularity": pop,
                    "phone": phone[i],
                    "website": website[i],
                    "closed_until": closed_until[i],
                    "closure_reason": reason[i],
                }
            )
        return out

    def open_now(self, positions: np.ndarray, at: datetime) -> list[bool | None]:
        """Whether each store is open at ``at``; None where its opening hours are unknown
        (False while a temporary closure lasts, whatever its hours)."""
        pos = np.asarray(positions, dtype=np.int64)
        codes = self._cols["hours_code"][pos]
        opened = self.open_mask(pos, at).tolist()
        closed = self._closed(pos, at).tolist()
        return [o if c >= 0 or shut else None for o, c, shut in zip(opened, codes.tolist(), closed)]

    def open_mask(self, positions: np.ndarray, at: datetime) -> np.ndarray:
        """Open at ``at`` by the opening hours and no temporary closure (unknown hours: False)."""
        pos = np.asarray(positions, dtype=np.int64)
        return self.schedules.open_mask(self._cols["hours_code"][pos], at) & ~self._closed(pos, at)

    def _closed(self, pos: np.ndarray, at: datetime) -> np.ndarray:
        until = self._cols["closed_until"][pos]
        return until > at.timestamp()  # NaN: not closed

    #: What ``update_attributes`` may change; none of it moves a store.
    EDITABLE = ("opening_hours", "price_level", "tags", "closed_until", "phone", "website", "closure_reason")

    def update_attributes(self, store_id: str, changes: dict) -> bool:
        """Change a store's editable attributes (``EDITABLE``; ``closed_until`` a datetime or
        None) in this process; its position and point stay. False if no such store.

        Numeric columns are copied on their first edit (a few bytes per store: the shared,
        memory-mapped ones are read-only), text columns keep an overlay of edited rows."""
        unknown = set(changes) - set(self.EDITABLE)
        if unknown:
            raise ValueError(f"{sorted(unknown)[0]!r} is not an editable store attribute")
        with self._lock:
            pos = self.position(store_id)
            if pos is None:
                return False
            c = self._cols
            for name, value in changes.items():
                if name == "opening_hours":
                    c["opening_hours"].set(pos, value)
                    self._writable("hours_code")[pos] = self.schedules.code_for(value, str(c["timezone"][pos]))
                elif name == "price_level":
                    self._writable("price")[pos] = value or 0
                elif name == "tags":
                    c["tags"].set(pos, tuple(value or ()))
                elif name == "closed_until":
                    self._writable("closed_until")[pos] = np.nan if value is None else value.timestamp()
                else:
                    c[name].set(pos, value)
            self.generation += 1
            return True

    def _writable(self, name: str) -> np.ndarray:
        if not self._cols[name].flags.writeable:
            self._cols[name] = self._cols[name].copy()
        return self._cols[name]

    # ------------------------------------------------------------------ queries
    def nearest(
        self, lat: float, lon: float, k: int, max_distance_m: float | None = None, where: Predicate | None = None
    ) -> Hits:
        """The ``k`` nearest stores (fewer if fewer match), filters applied before the cut.

        ``where`` takes an array of positions and returns a boolean mask; it is applied to
        candidates as they come, widening the search until ``k`` pass or none are left.
        """
        if k <= 0 or self._n == 0:
            return _empty()
        q = _unit_query(lat, lon)
        max_chord = None if max_distance_m is None else chord_for_distance(max_distance_m) * (1 + _SLACK) + 1e-15
        with self._lock:
            # One more than k, so the tie check below usually passes on the first round.
            want = k + 1 if where is None else max(4 * k, 64)
            while True:
                if want >= self._n // 4 and where is not None:
                    return self._brute_nearest(lat, lon, k, max_distance_m, where)
                pos = self._tree_nearest(q, want, max_chord)
                d = self._distances(lat, lon, pos)
                exhausted = len(pos) < want
                kept_pos, kept_d = pos, d
                if where is not None or max_distance_m is not None:
                    keep = np.ones(len(pos), dtype=bool) if where is None else np.asarray(where(pos), bool)
                    if max_distance_m is not None:
                        keep &= d <= max_distance_m
                    kept_pos, kept_d = pos[keep], d[keep]
                if len(kept_pos) >= k or exhausted:
                    hits = _sorted_hits(kept_pos, kept_d, self._ids.codes)
                    if exhausted or len(hits) < k:
                        return Hits(hits.positions[:k], hits.distances_m[:k])
                    # Safe cut only if something strictly farther was seen: then nothing unseen ties.
                    kth = hits.distances_m[k - 1]
                    if d.max() > kth * (1 + _SLACK) + 1e-9:
                        return Hits(hits.positions[:k], hits.distances_m[:k])
                want *= 4

    def _distances(self, lat: float, lon: float, pos: np.ndarray) -> np.ndarray:
        c = self._cols
        return haversine_rad(lat, lon, c["lat_rad"][pos], c["cos_lat"][pos], c["lon"][pos])

    def _tree_nearest(self, q: np.ndarray, want: int, max_chord: float | None) -> np.ndarray:
        kwargs = {} if max_chord is None else {"max_dists": np.array([max_chord])}
        ids, _counts = self._tree.nearest_v(q, q, num_results=int(min(want, self._n)), **kwargs)
        return ids

    def _brute_nearest(self, lat, lon, k, max_distance_m, where) -> Hits:
        pos = np.arange(self._n, dtype=np.int64)
        pos = pos[np.asarray(where(pos), bool)]
        d = self._distances(lat, lon, pos)
        if max_distance_m is not None:
            pos, d = pos[d <= max_distance_m], d[d <= max_distance_m]
        hits = _sorted_hits(pos, d, self._ids.codes)
        return Hits(hits.positions[:k], hits.distances_m[:k])

    def within(self, lat: float, lon: float, radius_m: float, where: Predicate | None = None) -> Hits:
        """Every store within ``radius_m`` metres, nearest first."""
        if radius_m < 0 or self._n == 0:
            return _empty()
        q = to_unit_xyz([lat], [lon])[0]
        c = chord_for_distance(radius_m) * (1 + _SLACK) + 1e-15
        with self._lock:
            # The axis-aligned cube around the chord ball contains the whole spherical cap.
            pos, _ = self._tree.intersection_v((q - c)[None], (q + c)[None])
            d = self._distances(lat, lon, pos)
            keep = d <= radius_m
            pos, d = pos[keep], d[keep]
            if where is not None and len(pos):
                keep = np.asarray(where(pos), bool)
                pos, d = pos[keep], d[keep]
            return _sorted_hits(pos, d, self._ids.codes)

    def in_bbox(
        self,
        min_lon: float,
        min_lat: float,
        max_lon: float,
        max_lat: float,
        where: Predicate | None = None,
        ordered: bool = True,
    ) -> np.ndarray:
        """Positions of stores in a lon/lat box, ordered by ``store_id`` (or by position, faster,
        with ``ordered=False``).

        ``min_lon > max_lon`` means the box crosses the antimeridian (e.g. 170 to -170).
        """
        if min_lat > max_lat:
            raise ValueError("min_lat must not exceed max_lat")
        if min_lon > max_lon:
            parts = [(min_lon, 180.0), (-180.0, max_lon)]
        else:
            parts = [(min_lon, max_lon)]
        with self._lock:
            found = []
            for lo0, lo1 in parts:
                lo_box, hi_box = _cartesian_box(min_lat, max_lat, lo0, lo1)
                pos, _ = self._tree.intersection_v(lo_box[None], hi_box[None])
                la, lo = self._cols["lat"][pos], self._cols["lon"][pos]
                found.append(pos[(la >= min_lat) & (la <= max_lat) & (lo >= lo0) & (lo <= lo1)])
            # The two halves of a crossing box are disjoint (a store at lon 180 is only in the
            # first, at -180 only in the second), so no de-duplication is needed.
            pos = np.concatenate(found) if found else np.empty(0, np.int64)
            if where is not None and len(pos):
                pos = pos[np.asarray(where(pos), bool)]
            return pos[np.argsort(self._ids.codes[pos], kind="stable")] if ordered else pos

    def in_polygon(self, geojson: dict, where: Predicate | None = None) -> np.ndarray:
        """Positions of stores inside a GeoJSON Polygon or MultiPolygon, ordered by ``store_id``.

        Edges are straight lines in lon/lat, as RFC 7946 defines them; a shape that crosses
        the antimeridian must be split into a MultiPolygon, as RFC 7946 requires.
        """
        import shapely
        from shapely.geometry import shape

        geom = shape(geojson)
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise ValueError(f"expected a Polygon or MultiPolygon, got {geom.geom_type}")
        if geom.is_empty or not geom.is_valid:
            raise ValueError(f"invalid polygon: {shapely.is_valid_reason(geom)}")
        min_lon, min_lat, max_lon, max_lat = geom.bounds
        pos = self.in_bbox(max(min_lon, -180), max(min_lat, -90), min(max_lon, 180), min(max_lat, 90))
        inside = shapely.intersects_xy(geom, self._cols["lon"][pos], self._cols["lat"][pos])
        pos = pos[inside]
        if where is not None and len(pos):
            pos = pos[np.asarray(where(pos), bool)]
        return pos

    # ------------------------------------------------------------ model signals
    #: Columns that a model's signals may overlay (``set_signal``), over the catalogue's values.
    SIGNALS = ("popularity", "rating")

    def set_signal(self, name: str, store_ids, values) -> int:
        """Overlay ``name`` (popularity or rating) for ``store_ids``; NaN values and unknown ids
        keep the catalogue's value. Returns how many stores took a new value."""
        if name not in self.SIGNALS:
            raise ValueError(f"{name!r} is not a signal column; one of {self.SIGNALS}")
        vals = np.asarray(values, dtype=np.float64)
        with self._lock:
            base = self._base_signals.setdefault(name, self._cols[name])
            pos = self.positions_of([str(s) for s in store_ids])
            ok = (pos >= 0) & np.isfinite(vals)
            # A patch over the catalogue's (perhaps shared) column, 16 bytes per store it
            # covers; one swap, so a concurrent query sees the old or the new column.
            self._cols[name] = Patched(base, pos[ok], vals[ok])
            return int(ok.sum())

    def clear_signals(self) -> None:
        """Back to the catalogue's popularity and rating."""
        with self._lock:
            for name, base in self._base_signals.items():
                self._cols[name] = base
            self._base_signals.clear()


class Patched:
    """A numeric column with some rows replaced, read like the array (by position or
    positions); the base array is never written."""

    def __init__(self, base: np.ndarray, rows: np.ndarray, values: np.ndarray):
        order = np.argsort(rows, kind="stable")
        rows, values = rows[order], values[order]
        last = np.r_[rows[1:] != rows[:-1], True] if len(rows) else np.zeros(0, bool)  # a repeated id: last wins
        self.base, self.rows, self.values = base, rows[last].astype(np.int64), values[last]

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, pos):
        scalar = np.ndim(pos) == 0
        pos = np.atleast_1d(np.asarray(pos, dtype=np.int64))
        out = np.array(self.base[pos], dtype=np.float64)
        if len(self.rows):
            at = np.minimum(np.searchsorted(self.rows, pos), len(self.rows) - 1)
            hit = self.rows[at] == pos
            out[hit] = self.values[at[hit]]
        return out[0] if scalar else out


def search_text(index: StoreIndex, pos: int) -> str:
    """Lower-case text that ``q`` searches: name, category (spaces for _) and tags."""
    cat = index.categories[index.column("category")[pos]].replace("_", " ")
    return " ".join([index.column("name")[pos], cat, *index.column("tags")[pos]]).lower()


def _optional(df: pd.DataFrame, name: str, n: int) -> np.ndarray:
    """An optional text column: its values where given (empty is None), else all None."""
    if name not in df:
        return np.full(n, None, dtype=object)
    return np.array([v if isinstance(v, str) and v else None for v in df[name].tolist()], dtype=object)


def _iso_utc(epoch: float) -> str | None:
    if epoch != epoch:  # NaN
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _unit_query(lat: float, lon: float) -> np.ndarray:
    """One query point as a (1, 3) unit vector; scalar math is ~5x cheaper than numpy here."""
    la, lo = math.radians(lat), math.radians(lon)
    cl = math.cos(la)
    return np.array([[cl * math.cos(lo), cl * math.sin(lo), math.sin(la)]])


def _empty() -> Hits:
    return Hits(np.empty(0, np.int64), np.empty(0, np.float64))


def _sorted_hits(pos: np.ndarray, d: np.ndarray, ids: np.ndarray) -> Hits:
    order = np.lexsort((ids[pos], d)) if len(pos) else np.empty(0, np.int64)
    return Hits(pos[order], d[order])


def _cartesian_box(lat0: float, lat1: float, lon0: float, lon1: float):
    """Axis-aligned 3-D box around the unit-sphere patch lat0..lat1 x lon0..lon1 (degrees).

    Exact extremes, with a little slack: the patch is a product of a latitude band and a
    longitude wedge, so each coordinate's range is a product of two 1-D ranges.
    """
    la0, la1 = np.radians([lat0, lat1])
    lo0, lo1 = np.radians([lon0, lon1])
    cos_lat = [np.cos(la0), np.cos(la1)] + ([1.0] if la0 <= 0 <= la1 else [])
    cos_lon = [np.cos(lo0), np.cos(lo1)] + [np.cos(a) for a in (0.0, np.pi, -np.pi) if lo0 <= a <= lo1]
    sin_lon = [np.sin(lo0), np.sin(lo1)] + [np.sin(a) for a in (np.pi / 2, -np.pi / 2) if lo0 <= a <= lo1]
    cl = (min(cos_lat), max(cos_lat))
    xs = [a * b for a in cl for b in cos_lon]
    ys = [a * b for a in cl for b in sin_lon]
    eps = 1e-12
    lo = np.array([min(xs) - eps, min(ys) - eps, np.sin(la0) - eps])
    hi = np.array([max(xs) + eps, max(ys) + eps, np.sin(la1) + eps])
    return lo, hi
