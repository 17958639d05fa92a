"""The index against hand-placed stores whose distances are known by construction."""

import numpy as np
import pytest

from geo_index import StoreFilter, StoreIndex, validate_stores
from geo_index.report import LoadReport
from tests.support.stores import HELSINKI, M_PER_DEG, hand_placed, store


@pytest.fixture
def index():
    return StoreIndex(validate_stores(hand_placed(), LoadReport("t")))


def ids(index, positions):
    return [index.column("store_id")[p] for p in positions]


def test_nearest_known_distances_and_tie_break(index):
    hits = index.nearest(*HELSINKI, k=5)
    assert ids(index, hits.positions) == ["n100", "n250", "n400a", "n400b", "n1000"]
    assert hits.distances_m == pytest.approx([100, 250, 400, 400, 1000], abs=1e-6)


def test_nearest_max_distance(index):
    hits = index.nearest(*HELSINKI, k=10, max_distance_m=399.0)
    assert ids(index, hits.positions) == ["n100", "n250"]


def test_within_sorted_and_inclusive(index):
    hits = index.within(*HELSINKI, radius_m=400.001)
    assert ids(index, hits.positions) == ["n100", "n250", "n400a", "n400b"]


def test_filters_apply_before_the_cut(index):
    # The two nearest cafés are 100 m and 400 m away, with a restaurant and a bar between.
    where = StoreFilter(categories=("cafe",)).predicate(index)
    hits = index.nearest(*HELSINKI, k=2, where=where)
    assert ids(index, hits.positions) == ["n100", "n400b"]


def test_antimeridian_nearest(index):
    hits = index.nearest(0.0, 179.9999, k=2)
    # 0.0006 degrees east across the line, 0.0009 degrees west on this side.
    assert ids(index, hits.positions) == ["east-of-180", "west-of-180"]
    assert hits.distances_m == pytest.approx([0.0006 * M_PER_DEG, 0.0009 * M_PER_DEG], rel=1e-6)


def test_antimeridian_bbox(index):
    pos = index.in_bbox(179.9, -1, -179.9, 1)
    assert ids(index, pos) == ["east-of-180", "west-of-180"]
    normal = ids(index, index.in_bbox(-179.9, -1, 179.9, 1))
    assert "east-of-180" not in normal and "west-of-180" not in normal


def test_pole(index):
    hits = index.nearest(90.0, 0.0, k=2)
    assert ids(index, hits.positions) == ["pole", "pole-other-side"]
    assert hits.distances_m == pytest.approx([0.0001 * M_PER_DEG, 0.0002 * M_PER_DEG], rel=1e-6)
    assert ids(index, index.in_bbox(-180, 89.99, 180, 90)) == ["pole", "pole-other-side"]


def test_polygon(index):
    lat0, lon0 = HELSINKI
    square = {
        "type": "Polygon",
        "coordinates": [
            [
                [lon0 - 0.01, lat0],
                [lon0 + 0.01, lat0],
                [lon0 + 0.01, lat0 + 0.003],
                [lon0 - 0.01, lat0 + 0.003],
                [lon0 - 0.01, lat0],
            ]
        ],
    }
    # 0.003 degrees of latitude is ~333 m: n100 and n250 are inside.
    assert ids(index, index.in_polygon(square)) == ["n100", "n250"]
    with pytest.raises(ValueError):
        index.in_polygon({"type": "Point", "coordinates": [0, 0]})


def test_insert_update_delete_without_rebuild(index):
    lat0, lon0 = HELSINKI
    before = len(index)
    index.upsert(
        store(
            "new50",
            lat0 + 50 / M_PER_DEG,
            lon0,
            price_level=None,
            rating=None,
            opening_hours=None,
            tags=(),
            popularity=0.0,
        )
    )
    assert len(index) == before + 1
    assert ids(index, index.nearest(*HELSINKI, k=1).positions) == ["new50"]
    # Move it 2 km away: the old position must disappear from the tree.
    index.upsert(store("new50", lat0 + 2000 / M_PER_DEG, lon0))
    assert len(index) == before + 1
    assert ids(index, index.nearest(*HELSINKI, k=1).positions) == ["n100"]
    hits = index.within(*HELSINKI, radius_m=2000.001)
    assert ids(index, hits.positions)[-1] == "new50"
    assert index.delete("new50") and not index.delete("new50")
    assert "new50" not in ids(index, index.within(*HELSINKI, radius_m=1e7).positions)
    assert len(index) == before


def test_many_inserts_grow_the_columns():
    idx = StoreIndex(validate_stores(hand_placed().iloc[:1], LoadReport("t")))
    for i in range(100):
        idx.upsert(store(f"s{i:03d}", 10 + i * 0.001, 20, rating=None))
    hits = idx.nearest(10, 20, k=3)
    assert ids(idx, hits.positions) == ["s000", "s001", "s002"]
    assert np.all(np.diff(hits.distances_m) > 0)
