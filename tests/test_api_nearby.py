"""The nearby API through the real app: paging, filters, errors, the spec."""

import math

import numpy as np
import pandas as pd
import pytest

from app import create_app
from geo_index import haversine_m
from tests.support.apps import app_config
from tests.support.stores import HELSINKI


def walk(client, params, limit):
    """All stores of a query, following next_cursor page by page."""
    seen, cursor = [], None
    for _ in range(1000):
        q = dict(params, limit=limit, **({"cursor": cursor} if cursor else {}))
        r = client.get("/v1/stores/nearby", query_string=q)
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        assert len(body["stores"]) <= limit
        seen += body["stores"]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("cursor walk did not end")


@pytest.fixture(scope="module")
def dense(tmp_path_factory, redis_server):
    """300 stores around Helsinki with repeated positions, ratings and popularity: many ties."""
    rng = np.random.default_rng(3)
    spots = np.column_stack([60.17 + rng.normal(0, 0.01, 60), 24.94 + rng.normal(0, 0.02, 60)])
    pick = rng.integers(0, 60, 300)
    frame = pd.DataFrame(
        {
            "store_id": [f"d{i:03d}" for i in rng.permutation(300)],
            "merchant_id": "m",
            "name": "s",
            "category": rng.choice(["cafe", "bar", "clothes"], 300),
            "lat": spots[pick, 0],
            "lon": spots[pick, 1],
            "timezone": "Europe/Helsinki",
            "rating": rng.choice([3.0, 4.0, 4.5, np.nan], 300),
            "price_level": rng.choice([1, 2, 3], 300),
            "popularity": rng.choice([0, 5, 10], 300),
            "opening_hours": rng.choice(["Mo-Su 08:00-20:00", "Mo-Su 18:00-02:00", "off", ""], 300),
        }
    )
    path = tmp_path_factory.mktemp("dense") / "dense.csv"
    frame.to_csv(path, index=False)
    app = create_app(app_config(path.parent, redis_server, CATALOGUE=str(path)))
    return app.test_client(), frame


def expected_ids(frame, lat, lon, sort="distance", radius=None, mask=None):
    d = haversine_m(lat, lon, frame["lat"].to_numpy(), frame["lon"].to_numpy())
    primary = {
        "distance": np.zeros(len(frame)),
        "rating": np.where(frame["rating"].isna(), 1.0, -frame["rating"].to_numpy()),
        "popularity": -frame["popularity"].to_numpy(float),
    }[sort]
    keep = np.ones(len(frame), bool) if mask is None else mask.copy()
    if radius is not None:
        keep &= d <= radius
    order = np.lexsort((frame["store_id"].to_numpy(), d, primary))
    return [frame["store_id"].iat[i] for i in order if keep[i]]


@pytest.mark.parametrize(
    "sort,radius", [("distance", None), ("distance", 1500), ("rating", 1500), ("popularity", 2500), ("rating", None)]
)
@pytest.mark.parametrize(
    "limit", [pytest.param(1, marks=pytest.mark.slow), pytest.param(7, marks=pytest.mark.slow), 50]
)
def test_cursor_walk_returns_each_store_once_in_order(dense, sort, radius, limit):
    client, frame = dense
    params = {"lat": 60.171, "lon": 24.941, "sort": sort, **({"radius_m": radius} if radius else {})}
    got = [s["id"] for s in walk(client, params, limit)]
    ranked_default = 5000 if sort != "distance" and radius is None else radius
    assert got == expected_ids(frame, 60.171, 24.941, sort, ranked_default)
    assert len(got) == len(set(got))


def test_cursor_walk_with_filters(dense):
    client, frame = dense
    params = {"lat": 60.17, "lon": 24.94, "category": "cafe,bar", "price": [1, 2], "min_rating": 4}
    got = [s["id"] for s in walk(client, params, 5)]
    mask = (
        frame["category"].isin(["cafe", "bar"]) & frame["price_level"].isin([1, 2]) & (frame["rating"] >= 4)
    ).to_numpy()
    assert got == expected_ids(frame, 60.17, 24.94, mask=mask)


def test_open_now_in_store_timezone(client):
    # FIXED_NOW is 12:00 in Helsinki: n100 (08-20) is open, n250 (18-02) and n400a (off) are not.
    body = client.get(
        "/v1/stores/nearby", query_string={"lat": HELSINKI[0], "lon": HELSINKI[1], "radius_m": 2000, "open_now": "true"}
    ).get_json()
    assert [s["id"] for s in body["stores"]] == ["n100", "n1000"]
    late = client.get(
        "/v1/stores/nearby",
        query_string={"lat": HELSINKI[0], "lon": HELSINKI[1], "radius_m": 2000, "open_at": "2026-11-26T01:00"},
    ).get_json()
    assert [s["id"] for s in late["stores"]] == ["n250", "n1000"]


def test_ten_nearest_open_cafes_are_found_past_closed_ones(client):
    body = client.get(
        "/v1/stores/nearby", query_string={"lat": HELSINKI[0], "lon": HELSINKI[1], "category": "cafe", "limit": 3}
    ).get_json()
    assert [s["id"] for s in body["stores"]] == ["n100", "n400b", "n5000"]
    assert body["stores"][0]["distance_m"] == pytest.approx(100, abs=0.01)


def test_text_query_and_fields(client):
    body = client.get(
        "/v1/stores/nearby", query_string={"lat": HELSINKI[0], "lon": HELSINKI[1], "q": "far caf", "fields": "name"}
    ).get_json()
    (store,) = body["stores"]
    assert store.pop("impression_token")
    assert store == {"id": "n5000", "name": "Far Cafe", "distance_m": pytest.approx(5000, abs=0.01)}
    by_tag = client.get(
        "/v1/stores/nearby", query_string={"lat": HELSINKI[0], "lon": HELSINKI[1], "q": "WIFI"}
    ).get_json()
    assert [s["id"] for s in by_tag["stores"]] == ["n100"]


def test_store_detail_has_next_open_and_close(client):
    body = client.get("/v1/stores/n250").get_json()
    assert body["open_now"] is False
    assert body["next_open"] == "2026-11-25T18:00:00+02:00"
    assert body["next_close"] == "2026-11-26T02:00:00+02:00"
    assert client.get("/v1/stores/n5000").get_json()["next_open"] is None


BAD = [
    ({}, "lat"),
    ({"lat": "", "lon": "1"}, "lat"),
    ({"lat": "91", "lon": "0"}, "lat"),
    ({"lat": "-90.0001", "lon": "0"}, "lat"),
    ({"lat": "0", "lon": "180.5"}, "lon"),
    ({"lat": "nan", "lon": "0"}, "lat"),
    ({"lat": "0", "lon": "-inf"}, "lon"),
    ({"lat": "1e999", "lon": "0"}, "lat"),
    ({"lat": "abc", "lon": "0"}, "lat"),
    ({"lat": "0", "lon": "0", "radius_m": "0"}, "radius_m"),
    ({"lat": "0", "lon": "0", "radius_m": "-5"}, "radius_m"),
    ({"lat": "0", "lon": "0", "radius_m": "100001"}, "radius_m"),
    ({"lat": "0", "lon": "0", "limit": "0"}, "limit"),
    ({"lat": "0", "lon": "0", "limit": "51"}, "limit"),
    ({"lat": "0", "lon": "0", "limit": "2.5"}, "limit"),
    ({"lat": "0", "lon": "0", "sort": "cheapest"}, "sort"),
    ({"lat": "0", "lon": "0", "category": "Coffee Shop"}, "category.0"),
    ({"lat": "0", "lon": "0", "price": "5"}, "price.0"),
    ({"lat": "0", "lon": "0", "price": "cheap"}, "price.0"),
    ({"lat": "0", "lon": "0", "min_rating": "6"}, "min_rating"),
    ({"lat": "0", "lon": "0", "open_now": "maybe"}, "open_now"),
    ({"lat": "0", "lon": "0", "open_at": "tomorrow"}, "open_at"),
    ({"lat": "0", "lon": "0", "fields": "password"}, "fields.0"),
    ({"lat": "0", "lon": "0", "cursor": "garbage"}, "cursor"),
    ({"lat": "0", "lon": "0", "cursor": "eyJ2IjoxfQ.AAAA"}, "cursor"),
    ({"lat": "0", "lon": "0", "q": "x" * 101}, "q"),
    ({"lat": "0", "lon": "0", "radius": "5"}, "radius"),
    ({"lat": ["1", "2"], "lon": "0"}, "lat"),
]


@pytest.mark.parametrize("params,field", BAD)
def test_bad_input_is_a_400_problem_naming_the_field(client, params, field):
    r = client.get("/v1/stores/nearby", query_string=params)
    assert r.status_code == 400
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["status"] == 400 and body["title"] and body["detail"]
    assert field in [e["field"] for e in body["errors"]], body


def test_foreign_cursor_is_refused(client):
    first = client.get("/v1/stores/nearby", query_string={"lat": 60.17, "lon": 24.94, "limit": 1}).get_json()
    other = client.get(
        "/v1/stores/nearby", query_string={"lat": 60.17, "lon": 24.95, "limit": 1, "cursor": first["next_cursor"]}
    )
    assert other.status_code == 400
    assert "different query" in other.get_json()["errors"][0]["message"]
    # Changing only the page size keeps the cursor valid.
    same = client.get(
        "/v1/stores/nearby", query_string={"lat": 60.17, "lon": 24.94, "limit": 3, "cursor": first["next_cursor"]}
    )
    assert same.status_code == 200


def test_unknown_store_and_path_are_404_problems(client):
    for url in ("/v1/stores/nope", "/v1/nothing"):
        r = client.get(url)
        assert r.status_code == 404 and r.mimetype == "application/problem+json"
    r = client.post("/v1/stores/nearby")
    assert r.status_code == 405 and r.mimetype == "application/problem+json"


def test_every_endpoint_is_in_the_spec(app, client):
    from app.http.openapi import undocumented_endpoints

    assert undocumented_endpoints(app) == []
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    params = {p["name"] for p in spec["paths"]["/v1/stores/nearby"]["get"]["parameters"]}
    assert {"lat", "lon", "radius_m", "limit", "cursor", "category", "open_now", "sort", "fields"} <= params
    assert client.get("/docs").status_code == 200


def test_healthz(client):
    body = client.get("/healthz").get_json()
    memory = body.pop("redis_memory")
    assert body == {
        "status": "ok",
        "stores": 10,
        "catalogue": "stores.csv",
        "model_version": None,
        "redis": "up",
        "deals": 0,
        "impressions_dropped": 0,
    }
    assert memory["used_mb"] > 0 and memory["near_full"] is False  # the test Redis has no maxmemory


def test_bundled_catalogue_serves_by_default(tmp_path, redis_url):
    app = create_app({"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path)})
    body = app.test_client().get("/v1/stores/nearby", query_string={"lat": 60.1699, "lon": 24.9384}).get_json()
    assert len(body["stores"]) == 20
    assert all(math.isfinite(s["distance_m"]) for s in body["stores"])
    assert len(app.extensions["o2o"].index) > 800
