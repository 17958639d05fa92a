"""Map clustering: counts conserved, leaves exact, antimeridian, filters first, bad input."""

import numpy as np
import pandas as pd
import pytest

from app import create_app
from app.domain.clusters import CELL_PX, world_px
from tests.support.apps import app_config


@pytest.fixture(scope="module")
def map_client(tmp_path_factory, redis_server):
    rng = np.random.default_rng(8)
    n = 600
    # Two towns, one of them straddling the antimeridian (Fiji-like), plus scattered stores.
    lat = np.r_[60.17 + rng.normal(0, 0.02, 300), -17.0 + rng.normal(0, 0.3, 200), rng.uniform(-60, 70, 100)]
    lon = np.r_[24.94 + rng.normal(0, 0.04, 300), rng.normal(180, 0.4, 200), rng.uniform(-180, 180, 100)]
    lon = (lon + 180) % 360 - 180
    frame = pd.DataFrame(
        {
            "store_id": [f"m{i:04d}" for i in range(n)],
            "merchant_id": "m",
            "name": "s",
            "category": rng.choice(["cafe", "bar", "shop"], n),
            "lat": lat,
            "lon": lon,
            "timezone": "UTC",
            "rating": rng.choice([2.0, 3.5, 4.5], n),
        }
    )
    d = tmp_path_factory.mktemp("map")
    frame.to_csv(d / "stores.csv", index=False)
    app = create_app(app_config(d, redis_server, CATALOGUE=str(d / "stores.csv")))
    return app.test_client(), frame


def in_bbox(frame, min_lon, min_lat, max_lon, max_lat):
    lat_ok = frame["lat"].between(min_lat, max_lat)
    lon_ok = (
        frame["lon"].between(min_lon, max_lon)
        if min_lon <= max_lon
        else (frame["lon"] >= min_lon) | (frame["lon"] <= max_lon)
    )
    return frame[lat_ok & lon_ok]


CASES = [((24.80, 60.10, 25.10, 60.25), z, {}) for z in (3, 8, 11, 13, 15, 17)] + [
    ((179.0, -18.5, -179.0, -15.5), 9, {}),  # across the antimeridian
    ((-180, -85, 180, 85), 2, {}),  # the whole world
    ((24.80, 60.10, 25.10, 60.25), 12, {"category": "cafe"}),
    ((179.0, -18.5, -179.0, -15.5), 10, {"min_rating": "4"}),
]


@pytest.mark.parametrize("bbox,zoom,filters", CASES)
def test_counts_are_conserved_and_leaves_are_exact(map_client, bbox, zoom, filters):
    client, frame = map_client
    expected = in_bbox(frame, *bbox)
    if "category" in filters:
        expected = expected[expected["category"] == filters["category"]]
    if "min_rating" in filters:
        expected = expected[expected["rating"] >= float(filters["min_rating"])]
    body = client.get(
        "/v1/map/stores", query_string={"bbox": ",".join(map(str, bbox)), "zoom": zoom, **filters}
    ).get_json()
    assert body["type"] == "FeatureCollection" and body["total"] == len(expected)
    clusters = [f for f in body["features"] if f["properties"]["cluster"]]
    points = [f["properties"]["id"] for f in body["features"] if not f["properties"]["cluster"]]
    assert sum(f["properties"]["point_count"] for f in clusters) + len(points) == len(expected)
    seen = list(points)
    for f in clusters:
        leaves = client.get(
            f"/v1/map/clusters/{f['properties']['cluster_id']}/leaves", query_string={"limit": 500}
        ).get_json()
        ids = [x["properties"]["id"] for x in leaves["features"]]
        assert leaves["total"] == f["properties"]["point_count"] == len(ids)
        # The members are exactly the filtered stores of that world cell.
        members = expected[_cell_mask(expected, zoom, ids[0], frame)]
        assert sorted(ids) == sorted(members["store_id"])
        assert f["properties"]["expansion_zoom"] > zoom
        seen += ids
    assert sorted(seen) == sorted(expected["store_id"])
    if zoom >= 17:
        assert not clusters


def _cell_mask(expected, zoom, member_id, frame):
    row = frame.set_index("store_id").loc[member_id]
    x0, y0 = world_px(np.array([row["lat"]]), np.array([row["lon"]]), zoom)
    x, y = world_px(expected["lat"].to_numpy(), expected["lon"].to_numpy(), zoom)
    return (np.floor(x / CELL_PX) == np.floor(x0 / CELL_PX)) & (np.floor(y / CELL_PX) == np.floor(y0 / CELL_PX))


def test_clusters_stay_put_when_the_map_pans(map_client):
    client, _frame = map_client

    def clusters(bbox):
        body = client.get("/v1/map/stores", query_string={"bbox": bbox, "zoom": 12}).get_json()
        return {
            tuple(f["geometry"]["coordinates"]): f["properties"]["point_count"]
            for f in body["features"]
            if f["properties"]["cluster"]
        }

    a = clusters("24.70,60.00,25.20,60.35")
    b = clusters("24.72,60.01,25.22,60.36")  # panned a little: interior cells are unchanged
    common = set(a) & set(b)
    assert len(common) >= 3 and all(a[k] == b[k] for k in common)


@pytest.mark.parametrize(
    "params",
    [
        {"bbox": "1,2,3", "zoom": 5},
        {"bbox": "a,b,c,d", "zoom": 5},
        {"bbox": "0,10,1,5", "zoom": 5},
        {"bbox": "0,0,1,91", "zoom": 5},
        {"bbox": "-181,0,1,1", "zoom": 5},
        {"bbox": "0,0,1,nan", "zoom": 5},
        {"bbox": "0,0,1,1", "zoom": 23},
        {"bbox": "0,0,1,1", "zoom": -1},
        {"bbox": "0,0,1,1"},
        {"zoom": 3},
    ],
)
def test_bad_bbox_or_zoom_is_a_400_problem(map_client, params):
    r = map_client[0].get("/v1/map/stores", query_string=params)
    assert r.status_code == 400 and r.mimetype == "application/problem+json"


def test_unknown_or_altered_cluster_is_400(map_client):
    client, _ = map_client
    body = client.get("/v1/map/stores", query_string={"bbox": "24.8,60.1,25.1,60.25", "zoom": 10}).get_json()
    cid = next(f["properties"]["cluster_id"] for f in body["features"] if f["properties"]["cluster"])
    assert client.get(f"/v1/map/clusters/{cid}/leaves").status_code == 200
    assert client.get(f"/v1/map/clusters/{cid[:-2]}xx/leaves").status_code == 400
    assert client.get("/v1/map/clusters/garbage/leaves").status_code == 400
