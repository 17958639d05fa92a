"""Merchant self-service on a real Redis: deals and store details written through the API,
versioned, audited, kept across restarts and catalogue changes, and live on other instances."""

from __future__ import annotations

import time
from datetime import timedelta

import pandas as pd
import pytest

from app import create_app
from app.storage.apikeys import create_key, key_id
from tests.support.apps import FIXED_NOW, app_config
from tests.support.redis import connect
from tests.support.stores import HELSINKI, hand_placed, store
from tests.support.users import as_user

LAT0, LON0 = HELSINKI
DAY = timedelta(days=1)


def _iso(t) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _catalogue(tmp_path, name="stores.csv", changes=None):
    frame = pd.concat(
        [hand_placed(), pd.DataFrame([store("other", LAT0 + 0.001, LON0, "cafe", merchant_id="m-2")])],
        ignore_index=True,
    )
    for (sid, column), value in (changes or {}).items():
        frame.loc[frame["store_id"] == sid, column] = value
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _app(tmp_path, redis_url, catalogue=None):
    return create_app(app_config(tmp_path, redis_url, CATALOGUE=str(catalogue or _catalogue(tmp_path))))


@pytest.fixture
def shop(tmp_path, redis_url):
    """(app, client, headers of m-1's key, headers of m-2's key, m-1's key)."""
    app = _app(tmp_path, redis_url)
    r = connect(redis_url)
    key1, key2 = create_key(r, "m-1"), create_key(r, "m-2")
    return app, app.test_client(), {"Authorization": f"Bearer {key1}"}, {"Authorization": f"Bearer {key2}"}, key1


def _deal(**fields):
    return {
        "store_id": "n100",
        "title": "Lunch -20 %",
        "discount_pct": 20,
        "starts_at": _iso(FIXED_NOW - DAY),
        "ends_at": _iso(FIXED_NOW + DAY),
        "quota": 50,
        **fields,
    }


def _create(client, headers, **fields):
    r = client.post("/v1/merchants/m-1/deals", json=_deal(**fields), headers=headers)
    assert r.status_code == 201, r.get_json()
    return r


def _recommended(client):
    body = client.get("/v1/deals/recommended", query_string={"lat": LAT0, "lon": LON0, "limit": 20}).get_json()
    return {d["deal_id"]: d for d in body["deals"]}


def _patch(client, headers, deal_id, etag, body):
    return client.patch(f"/v1/merchants/m-1/deals/{deal_id}", json=body, headers={**headers, "If-Match": etag})


# ------------------------------------------------------------------------------- deals
def test_a_created_deal_is_listed_and_recommended_at_once(shop):
    _app_, client, m1, _m2, _key = shop
    assert _recommended(client) == {}
    r = _create(client, m1, tags=["lunch"], per_user_limit=2)
    deal = r.get_json()
    assert r.headers["ETag"] == '"1"' and r.headers["Location"] == f"/v1/merchants/m-1/deals/{deal['deal_id']}"
    assert deal["status"] == "active" and deal["live"] and deal["quota_left"] == 50 and deal["redeemed"] == 0
    assert deal["tags"] == ["lunch"] and deal["per_user_limit"] == 2 and deal["version"] == 1
    assert list(_recommended(client)) == [deal["deal_id"]]
    listed = client.get("/v1/merchants/m-1/deals", headers=m1).get_json()["deals"]
    assert [d["deal_id"] for d in listed] == [deal["deal_id"]]
    # The map's has_deals filter sees the store at once too.
    feats = client.get(
        "/v1/map/stores",
        query_string={
            "bbox": f"{LON0 - 0.01},{LAT0 - 0.01},{LON0 + 0.01},{LAT0 + 0.01}",
            "zoom": 18,
            "has_deals": "true",
        },
    ).get_json()["features"]
    assert [f["properties"]["id"] for f in feats] == ["n100"]


@pytest.mark.parametrize(
    "fields,field",
    [
        ({"ends_at": _iso(FIXED_NOW - 2 * DAY)}, "ends_at"),
        ({"discount_pct": 0}, "discount_pct"),
        ({"discount_pct": 95}, "discount_pct"),
        ({"quota": 0}, "quota"),
        ({"valid_hours": "lunchtime"}, "valid_hours"),
        ({"store_id": "other"}, "store_id"),
        ({"store_id": "no-such-store"}, "store_id"),
        ({"colour": "red"}, "colour"),
        ({"title": ""}, "title"),
    ],
)
def test_invalid_deals_are_400s_naming_the_field(shop, fields, field):
    _app_, client, m1, _m2, _key = shop
    r = client.post("/v1/merchants/m-1/deals", json=_deal(**fields), headers=m1)
    assert r.status_code == 400 and r.content_type == "application/problem+json"
    assert field in [e["field"] for e in r.get_json()["errors"]]
    assert client.get("/v1/merchants/m-1/deals", headers=m1).get_json()["deals"] == []


def test_another_merchant_is_refused(shop):
    _app_, client, m1, m2, _key = shop
    deal_id = _create(client, m1).get_json()["deal_id"]
    assert client.post("/v1/merchants/m-1/deals", json=_deal(), headers=m2).status_code == 403
    assert client.get("/v1/merchants/m-1/deals", headers=m2).status_code == 403
    assert _patch(client, m2, deal_id, '"1"', {"title": "x"}).status_code == 403
    # Its own URL does not reach another merchant's deal or store either.
    assert client.get(f"/v1/merchants/m-2/deals/{deal_id}", headers=m2).status_code == 403
    r = client.patch("/v1/merchants/m-2/stores/n100", json={"phone": "123"}, headers={**m2, "If-Match": '"0"'})
    assert r.status_code == 403
    assert client.get("/v1/merchants/m-1/changes", headers=m2).status_code == 403


def test_every_merchant_operation_wants_the_merchants_own_key(shop):
    """Each operation under /v1/merchants/{merchant_id} in the served spec (so a new one is
    covered the day it is documented): no key is a 401, another merchant's key a 403, for
    reads and writes alike, and nothing of m-1's changes. Removing the key check from any
    one view, where the store or deal check alone would still pass, fails this test."""
    _app_, client, m1, m2, _key = shop
    deal_id = _create(client, m1).get_json()["deal_id"]
    before = (_store(client, m1).get_json(), client.get(f"/v1/merchants/m-1/deals/{deal_id}", headers=m1).get_json())
    ids = {"merchant_id": "m-1", "store_id": "n100", "deal_id": deal_id}
    bodies = {"post": _deal(), "patch": {"title": "x", "phone": "123"}}
    operations = [
        (method, path.format(**ids))
        for path, item in client.get("/openapi.json").get_json()["paths"].items()
        if path.startswith("/v1/merchants/{merchant_id}")
        for method in item
        if method in ("get", "post", "patch", "put", "delete")
    ]
    assert len(operations) >= 12, operations
    for method, url in operations:
        for headers, status in (({}, 401), (m2, 403)):
            r = client.open(url, method=method.upper(), json=bodies.get(method), headers={**headers, "If-Match": '"1"'})
            assert r.status_code == status, (method, url, status, r.status_code, r.get_json())
    after = (_store(client, m1).get_json(), client.get(f"/v1/merchants/m-1/deals/{deal_id}", headers=m1).get_json())
    assert after == before


def test_pause_edit_resume_and_end(shop):
    _app_, client, m1, _m2, _key = shop
    deal_id = _create(client, m1).get_json()["deal_id"]
    r = _patch(client, m1, deal_id, '"1"', {"status": "paused"})
    assert r.status_code == 200 and r.headers["ETag"] == '"2"' and r.get_json()["live"] is False
    assert deal_id not in _recommended(client)
    r = _patch(client, m1, deal_id, '"2"', {"title": "Lunch -30 %", "discount_pct": 30, "status": "active"})
    assert r.status_code == 200 and r.headers["ETag"] == '"3"'
    shown = _recommended(client)[deal_id]
    assert shown["title"] == "Lunch -30 %" and shown["discount_pct"] == 30
    r = client.delete(f"/v1/merchants/m-1/deals/{deal_id}", headers={**m1, "If-Match": '"3"'})
    assert r.status_code == 200 and r.get_json()["status"] == "ended" and r.headers["ETag"] == '"4"'
    assert deal_id not in _recommended(client)
    assert client.get("/v1/merchants/m-1/deals", headers=m1).get_json()["deals"][0]["status"] == "ended"
    r = _patch(client, m1, deal_id, '"4"', {"status": "active"})
    assert r.status_code == 409  # an ended deal is history


def test_a_stale_or_missing_etag_changes_nothing(shop):
    _app_, client, m1, _m2, _key = shop
    deal_id = _create(client, m1).get_json()["deal_id"]
    assert _patch(client, m1, deal_id, '"1"', {"title": "first editor"}).status_code == 200
    r = _patch(client, m1, deal_id, '"1"', {"title": "second editor, from an old page"})
    assert r.status_code == 412 and r.headers["ETag"] == '"2"' and '"2"' in r.get_json()["detail"]
    r = client.patch(f"/v1/merchants/m-1/deals/{deal_id}", json={"title": "no precondition"}, headers=m1)
    assert r.status_code == 428
    assert _patch(client, m1, deal_id, "2", {"title": "x"}).status_code == 400  # not an ETag
    assert _recommended(client)[deal_id]["title"] == "first editor"


def test_lunch_only_deals_show_in_their_hours(shop):
    _app_, client, m1, _m2, _key = shop  # FIXED_NOW is Wednesday 12:00 in Helsinki
    lunch = _create(client, m1, valid_hours="Mo-Fr 11:00-14:00").get_json()
    evening = _create(client, m1, valid_hours="Mo-Fr 17:00-19:00").get_json()
    assert lunch["live"] and not evening["live"]
    assert set(_recommended(client)) == {lunch["deal_id"]}


# ------------------------------------------------------------------------------- stores
def _store(client, headers, sid="n100"):
    r = client.get(f"/v1/merchants/m-1/stores/{sid}", headers=headers)
    assert r.status_code == 200
    return r


def _patch_store(client, headers, etag, body, sid="n100"):
    return client.patch(f"/v1/merchants/m-1/stores/{sid}", json=body, headers={**headers, "If-Match": etag})


def test_store_details_change_what_search_shows(shop):
    _app_, client, m1, _m2, _key = shop
    assert _store(client, m1).headers["ETag"] == '"0"'
    detail = client.get("/v1/stores/n100").get_json()
    assert detail["open_now"] is True and detail["opening_hours"] == "Mo-Su 08:00-20:00"
    r = _patch_store(client, m1, '"0"', {"opening_hours": "Mo-Su 14:00-20:00", "phone": "+358 9 123 456"})
    assert r.status_code == 200 and r.headers["ETag"] == '"1"'
    detail = client.get("/v1/stores/n100").get_json()
    assert detail["open_now"] is False and detail["phone"] == "+358 9 123 456"
    assert detail["next_open"].startswith("2026-11-25T14:00")
    open_now = client.get(
        "/v1/stores/nearby", query_string={"lat": LAT0, "lon": LON0, "radius_m": 150, "open_now": "true"}
    ).get_json()["stores"]
    assert open_now == []
    # Closed for renovation until Monday: closed whatever the hours say, and the reason shows.
    monday = _iso(FIXED_NOW + 5 * DAY)
    r = _patch_store(
        client,
        m1,
        '"1"',
        {"opening_hours": "Mo-Su 08:00-20:00", "closure": {"closed_until": monday, "reason": "Renovation"}},
    )
    assert r.status_code == 200
    detail = client.get("/v1/stores/n100").get_json()
    assert detail["open_now"] is False and detail["closed_until"] == monday and detail["closure_reason"] == "Renovation"
    r = _patch_store(client, m1, '"2"', {"closure": None})
    assert client.get("/v1/stores/n100").get_json()["open_now"] is True and r.get_json()["closed_until"] is None


@pytest.mark.parametrize(
    "body,field",
    [
        ({"opening_hours": "whenever"}, "opening_hours"),
        ({"lat": 60.2}, "lat"),
        ({"category": "bar"}, "category"),
        ({"price_level": 7}, "price_level"),
        ({"website": "javascript:alert(1)"}, "website"),
        ({"closure": {"reason": "no end"}}, "closure.closed_until"),
    ],
)
def test_invalid_store_changes_are_400s(shop, body, field):
    _app_, client, m1, _m2, _key = shop
    r = _patch_store(client, m1, '"0"', body)
    assert r.status_code == 400
    errors = r.get_json()["errors"]
    assert field in [e["field"] for e in errors]
    if field in ("lat", "category"):
        assert "openstreetmap" in errors[0]["hint"].lower()
    assert _store(client, m1).headers["ETag"] == '"0"'


def test_a_stale_store_etag_is_412(shop):
    _app_, client, m1, _m2, _key = shop
    assert _patch_store(client, m1, '"0"', {"price_level": 2}).status_code == 200
    assert _patch_store(client, m1, '"0"', {"price_level": 4}).status_code == 412
    assert client.get("/v1/stores/n100").get_json()["price_level"] == 2


def test_the_audit_log_names_keys_by_id(shop):
    _app_, client, m1, _m2, key = shop
    deal_id = _create(client, m1).get_json()["deal_id"]
    _patch(client, m1, deal_id, '"1"', {"status": "paused"})
    _patch_store(client, m1, '"0"', {"tags": ["terrace"]})
    body = client.get("/v1/merchants/m-1/changes", headers=m1).get_json()
    changes = body["changes"]
    assert [(c["entity"], c["action"], c["version"]) for c in changes] == [
        ("store:n100", "edit", 1),
        (f"deal:{deal_id}", "pause", 2),
        (f"deal:{deal_id}", "create", 1),
    ]
    assert {c["key_id"] for c in changes} == {key_id(key)} and key not in str(body)
    assert changes[0]["fields"] == {"tags": ["terrace"]} and changes[0]["at"] == "2026-11-25T10:00:00Z"
    page = client.get("/v1/merchants/m-1/changes", query_string={"limit": 2}, headers=m1).get_json()
    rest = client.get("/v1/merchants/m-1/changes", query_string={"before": page["next_before"]}, headers=m1).get_json()
    assert [c["change_id"] for c in page["changes"] + rest["changes"]] == [c["change_id"] for c in changes]
    assert client.get("/v1/merchants/m-1/changes", query_string={"before": "x"}, headers=m1).status_code == 400


# ------------------------------------------------------------------ restarts and instances
def test_a_restart_keeps_the_writes(shop, tmp_path, redis_url):
    _app_, client, m1, _m2, _key = shop
    deal_id = _create(client, m1).get_json()["deal_id"]
    _patch_store(client, m1, '"0"', {"opening_hours": "Mo-Su 14:00-20:00"})
    again = _app(tmp_path, redis_url).test_client()
    assert deal_id in _recommended(again)
    assert again.get("/v1/stores/n100").get_json()["opening_hours"] == "Mo-Su 14:00-20:00"
    assert again.get("/v1/merchants/m-1/stores/n100", headers=m1).headers["ETag"] == '"1"'


def test_a_new_catalogue_file_replays_the_edits(shop, tmp_path, redis_url):
    _app_, client, m1, _m2, _key = shop
    _patch_store(client, m1, '"0"', {"opening_hours": "Mo-Su 14:00-20:00"})
    deal_id = _create(client, m1).get_json()["deal_id"]
    # Next week's import: the store renamed, its catalogue hours changed; the merchant's edit wins.
    new = _catalogue(tmp_path, "stores-v2.csv", {("n100", "name"): "Cafe Renamed", ("n100", "opening_hours"): "24/7"})
    client2 = _app(tmp_path, redis_url, new).test_client()
    detail = client2.get("/v1/stores/n100").get_json()
    assert detail["name"] == "Cafe Renamed" and detail["opening_hours"] == "Mo-Su 14:00-20:00"
    assert deal_id in _recommended(client2)


def test_another_instance_sees_a_write_within_the_bound(shop, tmp_path, redis_url):
    _app_, client, m1, _m2, _key = shop
    other = _app(tmp_path, redis_url).test_client()
    assert _recommended(other) == {}  # its first request starts its change feed
    t0 = time.monotonic()
    deal_id = _create(client, m1).get_json()["deal_id"]
    _patch_store(client, m1, '"0"', {"price_level": 4})
    while deal_id not in _recommended(other) or other.get("/v1/stores/n100").get_json()["price_level"] != 4:
        assert time.monotonic() - t0 < 2.0, "not visible on the other instance within 2 s"
        time.sleep(0.05)


def test_per_user_limit_and_ended_deals_at_the_point_of_sale(shop):
    app, client, m1, _m2, _key = shop
    deal_id = _create(client, m1, per_user_limit=1).get_json()["deal_id"]

    def redeem(rid, user):
        token = as_user(app, user)["Authorization"][7:]
        body = {
            "redemption_id": rid,
            "store_id": "n100",
            "deal_id": deal_id,
            "ts": _iso(FIXED_NOW),
            "user_token": token,
        }
        return client.post("/v1/merchants/m-1/redemptions", json=body, headers=m1)

    assert redeem("r1", "u1").status_code == 201
    r = redeem("r2", "u1")
    assert r.status_code == 409 and "limit" in r.get_json()["detail"]
    assert redeem("r1", "u1").status_code == 200  # the same redemption again: a duplicate, not a refusal
    assert redeem("r3", "u2").status_code == 201
    assert client.get(f"/v1/merchants/m-1/deals/{deal_id}", headers=m1).get_json()["redeemed"] == 2
    client.delete(f"/v1/merchants/m-1/deals/{deal_id}", headers={**m1, "If-Match": '"1"'})
    r = redeem("r4", "u3")
    assert r.status_code == 409 and "ended" in r.get_json()["detail"]


def test_the_merchant_reads_its_write_on_an_instance_that_has_not_applied_it_yet(shop, tmp_path, redis_url):
    _app_, client, m1, _m2, _key = shop
    other = _app(tmp_path, redis_url)  # no request yet: its change follower has not run
    assert _patch_store(client, m1, '"0"', {"phone": "+358 1"}).status_code == 200
    deal_id = _create(client, m1).get_json()["deal_id"]
    assert _patch(client, m1, deal_id, '"1"', {"title": "renamed"}).status_code == 200
    c2 = other.test_client()
    r = c2.get("/v1/merchants/m-1/stores/n100", headers=m1)
    assert r.headers["ETag"] == '"1"' and r.get_json()["phone"] == "+358 1"
    listed = {d["deal_id"]: d for d in c2.get("/v1/merchants/m-1/deals", headers=m1).get_json()["deals"]}
    assert listed[deal_id]["title"] == "renamed" and listed[deal_id]["version"] == 2


def test_a_closed_store_shows_only_deals_that_outlast_the_closure(shop):
    _app_, client, m1, _m2, _key = shop  # (one deal per store on a page: each checked alone)
    short = _create(client, m1, ends_at=_iso(FIXED_NOW + DAY)).get_json()["deal_id"]
    assert set(_recommended(client)) == {short}
    closure = {"closed_until": _iso(FIXED_NOW + 5 * DAY), "reason": "Renovation"}
    assert _patch_store(client, m1, '"0"', {"closure": closure}).status_code == 200
    assert set(_recommended(client)) == set()  # it ends before the store reopens
    long = _create(client, m1, ends_at=_iso(FIXED_NOW + 10 * DAY)).get_json()["deal_id"]
    assert set(_recommended(client)) == {long}
    client.delete(f"/v1/merchants/m-1/deals/{long}", headers={**m1, "If-Match": '"1"'})
    _patch_store(client, m1, '"1"', {"closure": None})
    assert set(_recommended(client)) == {short}


def test_what_one_merchant_can_make_the_server_keep_is_bounded(shop):
    app, client, m1, _m2, _key = shop
    app.config.update(MERCHANT_OPEN_DEALS=2, MERCHANT_WRITES_PER_DAY=4)
    first = _create(client, m1).get_json()["deal_id"]
    _create(client, m1)
    r = client.post("/v1/merchants/m-1/deals", json=_deal(), headers=m1)
    assert r.status_code == 409 and "end some first" in r.get_json()["detail"]
    client.delete(f"/v1/merchants/m-1/deals/{first}", headers={**m1, "If-Match": '"1"'})  # third change
    _create(client, m1)  # room again; the fourth change
    r = _patch_store(client, m1, '"0"', {"phone": "+358 1"})
    assert r.status_code == 429 and "00:00 UTC" in r.get_json()["detail"] and int(r.headers["Retry-After"]) > 0
    assert client.get("/v1/stores/n100").get_json()["phone"] is None  # refused means not written
