"""The trust review's findings, one test each, tried as an attacker would against a real Redis.

Each was written to fail against the code before the fix (issue 12 shows the run); the
modules of a fix are imported inside its test, so one missing module fails one test.
"""

from __future__ import annotations

import os
import stat
import time

import pandas as pd
import pytest

from app import create_app
from app.http import paging
from tests.support.apps import FIXED_NOW, app_config
from tests.support.stores import HELSINKI, hand_placed

SECRET = "attack-tests-secret-key-0123456789abcdef"  # a known key: the tests forge with it
DAY = pd.Timedelta(days=1)
LAT0, LON0 = HELSINKI


def _iso(t) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def shop(tmp_path, redis_url):
    """The hand-placed stores, two deals, a known secret; returns (app, client)."""
    hand_placed().to_csv(tmp_path / "stores.csv", index=False)
    pd.DataFrame(
        [
            {
                "deal_id": d,
                "store_id": s,
                "title": d,
                "discount_pct": 20,
                "starts_at": _iso(FIXED_NOW - DAY),
                "ends_at": _iso(FIXED_NOW + DAY),
                "quota": 1000,
            }
            for d, s in (("d-a", "n100"), ("d-b", "n1000"))
        ]
    ).to_csv(tmp_path / "deals.csv", index=False)
    app = create_app(
        app_config(
            tmp_path,
            redis_url,
            CATALOGUE=str(tmp_path / "stores.csv"),
            DEALS=str(tmp_path / "deals.csv"),
            SECRET_KEY=SECRET,
        )
    )
    return app, app.test_client()


def _problem(r, status=400):
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:300])
    assert r.mimetype == "application/problem+json"
    return r.get_json()


# ------------------------------------------------------------------ 4. no default secrets
def test_no_public_default_secret_a_random_one_kept_in_the_data_directory(tmp_path, redis_url):
    a = create_app(app_config(tmp_path / "a", redis_url))
    again = create_app(app_config(tmp_path / "a", redis_url))
    other = create_app(app_config(tmp_path / "b", redis_url))
    key = a.config["SECRET_KEY"]
    assert key and key != "o2o-dev-cursor-key" and len(key) >= 32
    assert again.config["SECRET_KEY"] == key  # every worker and restart on that directory agrees
    assert other.config["SECRET_KEY"] != key
    path = tmp_path / "a" / "var" / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # A cursor signed with the old public default is refused.
    forged = paging.encode("o2o-dev-cursor-key", "x", [0, 0, "", 0], FIXED_NOW.isoformat())
    r = a.test_client().get("/v1/stores/nearby", query_string={"lat": LAT0, "lon": LON0, "cursor": forged})
    _problem(r)


@pytest.mark.parametrize(
    "settings, names",
    [
        ({}, ["O2O_SECRET_KEY", "O2O_USER_TOKEN_SECRET"]),
        ({"SECRET_KEY": "short", "USER_TOKEN_SECRET": "u" * 40}, ["O2O_SECRET_KEY"]),
        ({"SECRET_KEY": "s" * 40, "USER_TOKEN_SECRET": "u" * 40, "ADMIN_KEY": "admin"}, ["O2O_ADMIN_KEY"]),
    ],
)
def test_production_refuses_to_start_with_a_missing_or_weak_secret(tmp_path, redis_url, settings, names):
    from app.secrets import WeakSecret

    with pytest.raises(WeakSecret) as err:
        create_app(app_config(tmp_path, redis_url, ENV="production", **settings))
    for name in names:
        assert name in str(err.value)
    create_app(app_config(tmp_path, redis_url, ENV="production", SECRET_KEY="s" * 40, USER_TOKEN_SECRET="u" * 40))


# ----------------------------------------------- 5. cursors and cluster ids checked after the signature
@pytest.mark.parametrize(
    "key, t",
    [
        ("x", None),
        ([], None),
        ([0.0, 0.0, "", 0], "not a time"),
        ([0.0, 0.0, "", 10**30], None),  # a rank that broke the impression flush
        ([float("nan"), 0.0, "", 0], None),
        ([0.0, 0.0, ["n100"], 0], None),
    ],
)
def test_forged_nearby_cursor_fields_are_400(shop, key, t):
    app, client = shop
    q = {"lat": LAT0, "lon": LON0, "limit": 2}
    first = client.get("/v1/stores/nearby", query_string=q).get_json()
    fp = paging.verify(SECRET, first["next_cursor"])["f"]
    forged = paging.encode(SECRET, fp, key, t or FIXED_NOW.isoformat())
    _problem(client.get("/v1/stores/nearby", query_string={**q, "cursor": forged}))


def test_a_forged_deals_cursor_far_out_is_400_at_once(shop):
    app, client = shop
    q = {"lat": LAT0, "lon": LON0, "limit": 1}
    first = client.get("/v1/deals/recommended", query_string=q).get_json()
    fp = paging.verify(SECRET, first["next_cursor"])["f"]
    for key in ([10**12, 0, ""], ["1", 0, ""], [True, 0, ""]):
        t0 = time.perf_counter()
        forged = paging.encode(SECRET, fp, key, FIXED_NOW.isoformat())
        _problem(client.get("/v1/deals/recommended", query_string={**q, "cursor": forged}))
        assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize(
    "data",
    [
        {"z": "x", "x": 0, "y": 0, "q": {}},
        {"z": 10, "x": [], "y": 0, "q": {}},
        {"z": 10, "x": 0, "y": 0, "q": {"zoom": 5}},
        {"z": 10**6, "x": 0, "y": 0, "q": {}},
    ],
)
def test_forged_cluster_ids_are_400(shop, data):
    _, client = shop
    forged = paging.sign(SECRET, data)
    _problem(client.get(f"/v1/map/clusters/{forged}/leaves"))
