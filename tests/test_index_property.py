"""Every query type equals a brute-force haversine scan, on random catalogues (hypothesis)."""

import numpy as np
import pandas as pd
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from geo_index import StoreFilter, StoreIndex, haversine_m, validate_stores
from geo_index.report import LoadReport
from tests.support import tiers

CATS = ["cafe", "bar", "shop"]
lat_s = st.floats(-90, 90, allow_nan=False)
lon_s = st.floats(-180, 180, allow_nan=False)
# Points near the awkward places, so they are drawn often, not once in a blue moon.
edge_point = st.one_of(
    st.tuples(st.floats(-1, 1), st.one_of(st.floats(179, 180), st.floats(-180, -179))),
    st.tuples(st.one_of(st.floats(89, 90), st.floats(-90, -89)), lon_s),
    st.tuples(st.floats(60, 60.05), st.floats(24.9, 25.0)),
)
point = st.one_of(st.tuples(lat_s, lon_s), edge_point)


@st.composite
def catalogues(draw):
    base = draw(st.lists(point, min_size=1, max_size=60))
    # Repeat some positions exactly: ties that only the store_id can break.
    picks = draw(st.lists(st.integers(0, len(base) - 1), max_size=len(base)))
    pts = base + [base[i] for i in picks]
    n = len(pts)
    ids = draw(st.permutations([f"s{i:04d}" for i in range(n)]))
    cats = draw(st.lists(st.sampled_from(CATS), min_size=n, max_size=n))
    frame = pd.DataFrame(
        {
            "store_id": ids,
            "merchant_id": "m",
            "name": ids,
            "category": cats,
            "lat": [p[0] for p in pts],
            "lon": [p[1] for p in pts],
            "timezone": "UTC",
        }
    )
    return frame


def build(frame):
    valid = validate_stores(frame, LoadReport("h"))
    assert len(valid) == len(frame)
    return StoreIndex(valid), valid


def reference_order(valid, lat, lon, mask=None):
    d = haversine_m(lat, lon, valid["lat"].to_numpy(), valid["lon"].to_numpy())
    order = np.lexsort((valid["store_id"].to_numpy(), d))
    if mask is not None:
        order = order[mask[order]]
    return order, d


def got_ids(index, positions):
    return list(index.column("store_id")[positions])


SETTINGS = settings(max_examples=tiers.examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    catalogues(),
    point,
    st.integers(1, 30),
    st.one_of(st.none(), st.floats(1, 2e7)),
    st.one_of(st.none(), st.sets(st.sampled_from(CATS), min_size=1)),
)
def test_nearest_equals_brute_force(frame, q, k, max_d, cats):
    index, valid = build(frame)
    mask = valid["category"].isin(cats).to_numpy() if cats else None
    where = StoreFilter(categories=tuple(sorted(cats))).predicate(index) if cats else None
    order, d = reference_order(valid, *q, mask)
    if max_d is not None:
        order = order[d[order] <= max_d]
    hits = index.nearest(*q, k=k, max_distance_m=max_d, where=where)
    assert got_ids(index, hits.positions) == list(valid["store_id"].to_numpy()[order[:k]])
    np.testing.assert_allclose(hits.distances_m, d[order[:k]], rtol=0, atol=1e-6)


@SETTINGS
@given(catalogues(), point, st.floats(0, 2.1e7))
def test_within_equals_brute_force(frame, q, radius):
    index, valid = build(frame)
    order, d = reference_order(valid, *q)
    order = order[d[order] <= radius]
    hits = index.within(*q, radius_m=radius)
    assert got_ids(index, hits.positions) == list(valid["store_id"].to_numpy()[order])


@SETTINGS
@given(catalogues(), lat_s, lat_s, lon_s, lon_s)
def test_bbox_equals_brute_force(frame, la0, la1, lo0, lo1):
    index, valid = build(frame)
    la0, la1 = sorted((la0, la1))
    lat, lon = valid["lat"].to_numpy(), valid["lon"].to_numpy()
    in_lat = (lat >= la0) & (lat <= la1)
    in_lon = (lon >= lo0) & (lon <= lo1) if lo0 <= lo1 else (lon >= lo0) | (lon <= lo1)
    expected = sorted(valid["store_id"].to_numpy()[in_lat & in_lon])
    assert got_ids(index, index.in_bbox(lo0, la0, lo1, la1)) == expected


@SETTINGS
@given(catalogues(), lat_s, lat_s, lon_s, lon_s)
def test_polygon_equals_brute_force(frame, la0, la1, lo0, lo1):
    index, valid = build(frame)
    la0, la1 = sorted((la0, la1))
    lo0, lo1 = sorted((lo0, lo1))
    # A triangle, so the polygon test is not just a box test in disguise.
    poly = shapely.Polygon([(lo0, la0), (lo1, la0), (lo0, la1)])
    assume(poly.is_valid and poly.area > 1e-12)  # degenerate slivers are refused, as they should be
    inside = shapely.intersects_xy(poly, valid["lon"].to_numpy(), valid["lat"].to_numpy())
    expected = sorted(valid["store_id"].to_numpy()[inside])
    got = got_ids(index, index.in_polygon(shapely.geometry.mapping(poly)))
    assert got == expected


def test_degenerate_polygon_is_refused():
    import pytest

    index, _ = build(
        pd.DataFrame(
            {
                "store_id": ["a"],
                "merchant_id": "m",
                "name": "a",
                "category": "cafe",
                "lat": [0.0],
                "lon": [0.0],
                "timezone": "UTC",
            }
        )
    )
    with pytest.raises(ValueError, match="invalid polygon"):
        index.in_polygon(shapely.geometry.mapping(shapely.Polygon([(0, 0), (1, 1), (0, 0), (1, 1)])))
