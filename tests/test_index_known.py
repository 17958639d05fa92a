"""The index against hand-placed stores whose distances are known by construction."""

import pytest

from geo_index import StoreFilter, StoreIndex, validate_stores
from geo_index.report import LoadReport
from tests.support.stores import HELSINKI, M_PER_DEG, hand_placed


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
