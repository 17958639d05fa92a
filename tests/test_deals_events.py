"""Personalised deals and events against a real Redis: business rules, idempotency,
impressions, Redis outages and hot reload."""

import json
import threading
import uuid
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from app import create_app
from app.domain.impression_tokens import viewer_of
from app.storage import keys
from app.storage.apikeys import create_key
from app.storage.keys import IMPRESSIONS
from recommender import TrainConfig, interaction_weights, save, train
from recommender.generator import BehaviourConfig, generate
from recommender.served import fit_from_orders
from tests.support.apps import FIXED_NOW, app_config
from tests.support.redis import connect
from tests.support.stores import HELSINKI, M_PER_DEG, hand_placed, store
from tests.support.users import as_user, shown

LAT0, LON0 = HELSINKI
DAY = timedelta(days=1)


def _iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def world_catalogue() -> pd.DataFrame:
    """The hand-placed stores plus 'fresh', a store no one has ever ordered from."""
    fresh = store("fresh", LAT0 + 300 / M_PER_DEG, LON0, "bakery", opening_hours="Mo-Su 07:00-19:00")
    return pd.concat([hand_placed(), pd.DataFrame([fresh])], ignore_index=True).fillna(
        {"tags": "", "opening_hours": ""}
    )


DEALS = [
    # deal_id, store, starts, ends, quota
    ("d-open", "n100", FIXED_NOW - DAY, FIXED_NOW + DAY, 10),
    ("d-second-n100", "n100", FIXED_NOW - DAY, FIXED_NOW + DAY, 10),
    ("d-expired", "n100", FIXED_NOW - 5 * DAY, FIXED_NOW - DAY, 10),
    ("d-future", "n250", FIXED_NOW + DAY, FIXED_NOW + 5 * DAY, 10),
    ("d-closed", "n250", FIXED_NOW - DAY, FIXED_NOW + DAY, 10),  # opens 18:00 today
    ("d-off", "n400a", FIXED_NOW - DAY, FIXED_NOW + DAY, 10),  # hours "off": never opens
    ("d-unknown", "n400b", FIXED_NOW - DAY, FIXED_NOW + DAY, 10),  # no hours known
    ("d-quota", "n1000", FIXED_NOW - DAY, FIXED_NOW + DAY, 1),
    ("d-far", "n5000", FIXED_NOW - DAY, FIXED_NOW + DAY, 10),
    ("d-fresh", "fresh", FIXED_NOW - DAY, FIXED_NOW + DAY, 10),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    catalogue = world_catalogue()
    catalogue.to_csv(d / "stores.csv", index=False)
    pd.DataFrame(
        [
            {
                "deal_id": i,
                "store_id": s,
                "title": f"{i} offer",
                "discount_pct": 20,
                "starts_at": _iso(a),
                "ends_at": _iso(b),
                "quota": q,
            }
            for i, s, a, b, q in DEALS
        ]
    ).to_csv(d / "deals.csv", index=False)
    from geo_index import load_catalogue

    stores, _ = load_catalogue(d / "stores.csv", default_timezone="Europe/Helsinki")
    known = stores[stores["store_id"] != "fresh"]
    b = generate(known, BehaviourConfig(n_users=120, days=30, seed=4, start="2026-10-20"))
    pairs = interaction_weights(b.orders, b.reviews)
    cfg = TrainConfig(no_components=8, max_epochs=3, patience=1)
    v1 = save(train(known, pairs, b.reviews, cfg, log=lambda m: None), str(d / "artifacts"), version="v1")
    v2 = save(
        train(
            known, pairs, b.reviews, TrainConfig(no_components=8, max_epochs=3, patience=1, seed=9), log=lambda m: None
        ),
        str(d / "artifacts"),
        version="v2",
    )
    two = train(known, pairs, b.reviews, cfg, log=lambda m: None)
    two.second_stage = fit_from_orders(known, b.orders, b.reviews, cfg, log=lambda m: None)
    v3 = save(two, str(d / "artifacts"), version="v3")
    b.orders.to_csv(d / "orders.csv", index=False)
    user = b.orders["user_id"].value_counts().index[0]
    return {"dir": d, "user": user, "versions": (v1, v2, v3), "orders": b.orders, "reviews": b.reviews}


@pytest.fixture
def world_app(world, tmp_path, redis_url):
    d = world["dir"]
    connect(redis_url).set(keys.MODEL_CURRENT, "v1")
    return create_app(
        app_config(
            tmp_path,
            redis_url,
            CATALOGUE=str(d / "stores.csv"),
            DEALS=str(d / "deals.csv"),
            ARTIFACTS=str(d / "artifacts"),
            BASE_ORDERS=str(d / "orders.csv"),
            MODEL_CHECK_S=0.0,
            ADMIN_KEY="admin-secret",
        )
    )


@pytest.fixture
def wclient(world_app):
    return world_app.test_client()


def recommended(client, user=None, **params):
    q = {"lat": LAT0, "lon": LON0, "limit": 50, **params}
    r = client.get("/v1/deals/recommended", query_string=q, headers=as_user(client.application, user))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def all_pages(client, user=None, **params):
    out, cursor = [], None
    for _ in range(20):
        body = recommended(client, user, **params, **({"cursor": cursor} if cursor else {}))
        out.append(body["deals"])
        cursor = body["next_cursor"]
        if not cursor:
            return out
    raise AssertionError("no last page")


def ids(deals):
    return [d["deal_id"] for d in deals]


def post(client, *events, user=None):
    r = client.post("/v1/events", json={"events": list(events)}, headers=as_user(client.application, user))
    return r.status_code, r.get_json()


def event(kind, **fields):
    return {"event_id": fields.pop("event_id", str(uuid.uuid4())), "type": kind, "ts": _iso(FIXED_NOW), **fields}


# --------------------------------------------------------------------------- business rules
def test_only_eligible_deals_each_once_with_per_store_diversity(wclient, world):
    pages = all_pages(wclient, user=world["user"], limit=3)
    seen = [d for page in pages for d in ids(page)]
    assert sorted(seen) == sorted(["d-open", "d-second-n100", "d-closed", "d-unknown", "d-quota", "d-far", "d-fresh"])
    for page in pages:
        stores = [d["store_id"] for d in page]
        assert len(stores) == len(set(stores)), "two deals of one store on a page"


def test_per_category_diversity_defers_deals_to_later_pages(world_app, world):
    """With one deal of a category per page, no page repeats a category, and every deal still
    comes on some page (deferred, not dropped)."""
    client = world_app.test_client()
    everything = [d for page in all_pages(client, user=world["user"], limit=3) for d in page]
    categories = [d["category"] for d in everything]
    assert len(set(categories)) < len(categories), "the world needs two deals of one category"
    world_app.config["DEALS_PER_CATEGORY"] = 1
    pages = all_pages(client, user=world["user"], limit=3)
    for page in pages:
        on_page = [d["category"] for d in page]
        assert len(on_page) == len(set(on_page)), f"two deals of one category on a page: {on_page}"
    assert sorted(d for page in pages for d in ids(page)) == sorted(ids(everything))


def test_the_last_page_a_cursor_may_reach_hands_out_no_cursor(wclient, monkeypatch):
    """Deal lists stop at MAX_PAGES (each page walks the ones before it): the last page says
    there is no next one, rather than handing out a cursor the service would refuse."""
    from app.views import deals as deals_view

    monkeypatch.setattr(deals_view, "MAX_PAGES", 2)
    first = recommended(wclient, limit=1)
    second = recommended(wclient, limit=1, cursor=first["next_cursor"])
    assert first["next_cursor"] and len(second["deals"]) == 1
    assert second["next_cursor"] is None  # more deals remain (7 in this world), past the bound


def test_opening_rules(wclient):
    deals = {d["deal_id"]: d for page in all_pages(wclient) for d in page}
    assert "d-off" not in deals  # a store that never opens
    assert deals["d-closed"]["open_now"] is False
    assert deals["d-closed"]["opens_at"] == "2026-11-25T18:00:00+02:00"
    assert deals["d-unknown"]["open_now"] is None
    assert deals["d-open"]["open_now"] is True and deals["d-open"]["opens_at"] is None


def test_radius_limits_candidates(wclient):
    got = {d for page in all_pages(wclient, radius_m=2000) for d in ids(page)}
    assert "d-far" not in got and "d-open" in got


def redeem(client, redis_url, deal, store, user=None, redemption_id=None):
    """A redemption recorded by the store's merchant (m-1 owns every hand-placed store)."""
    key = create_key(connect(redis_url), "m-1")
    body = {"redemption_id": redemption_id or uuid.uuid4().hex, "store_id": store, "deal_id": deal}
    body["ts"] = _iso(FIXED_NOW)
    if user is not None:
        body["user_token"] = as_user(client.application, user)["Authorization"][7:]
    return client.post("/v1/merchants/m-1/redemptions", json=body, headers={"Authorization": f"Bearer {key}"})


def test_quota_and_redeemed_deals_drop_out(wclient, world, redis_url):
    user = world["user"]
    assert redeem(wclient, redis_url, "d-quota", "n1000", user="someone-else").status_code == 201
    assert redeem(wclient, redis_url, "d-open", "n100", user=user).status_code == 201
    mine = {d for page in all_pages(wclient, user=user) for d in ids(page)}
    theirs = {d for page in all_pages(wclient, user="another-user") for d in ids(page)}
    assert "d-quota" not in mine and "d-quota" not in theirs  # quota of 1 is used up
    assert "d-open" not in mine and "d-open" in theirs  # only the redeemer loses it


def test_cold_user_gets_popular_nearby_and_new_store_ranks(wclient):
    deals = [d for page in all_pages(wclient, explain="true") for d in page]
    assert all(np.isfinite(d["score"]) for d in deals)
    assert all(any(r["because"] == "popular_nearby" for r in d["reasons"]) for d in deals)
    fresh = next(d for d in deals if d["deal_id"] == "d-fresh")
    assert any(r["because"] == "new_store" for r in fresh["reasons"])


def test_explain_parts_add_up_and_order_follows_score(wclient, world):
    deals = recommended(wclient, user=world["user"], explain="true", limit=50)["deals"]
    scores = [d["score"] for d in deals]
    assert scores == sorted(scores, reverse=True)
    for d in deals:
        part = next(r for r in d["reasons"] if r["because"] == "score")
        assert part["score"] == pytest.approx(
            part["preference_term"] + part["distance_weight"] * part["distance_term"], abs=1e-5
        )
        assert part["score"] == pytest.approx(d["score"], abs=1e-5)
    assert not any(r["because"] == "popular_nearby" for d in deals for r in d["reasons"])


@pytest.fixture
def ranked_client(world_app, redis_url):
    """The app serving v3, the model with a second stage."""
    connect(redis_url).set(keys.MODEL_CURRENT, "v3")
    return world_app.test_client()


def test_the_second_stage_ranks_and_explains_by_its_own_contributions(ranked_client, world):
    body = recommended(ranked_client, user=world["user"], explain="true", limit=50)
    assert body["model_version"] == "v3"
    deals = body["deals"]
    scores = [d["score"] for d in deals]
    assert len(deals) >= 3 and scores == sorted(scores, reverse=True)
    for d in deals:
        part = next(r for r in d["reasons"] if r["because"] == "score")
        assert part["model"] == "two_stage"
        assert part["base"] + sum(part["parts"].values()) == pytest.approx(d["score"], abs=1e-4)
        assert {"place", "neighbourhood", "repeat"} <= set(part["parts"])


def test_the_second_stage_scores_are_the_offline_ranker_s(ranked_client, world):
    """What the endpoint returns is the saved ranker's score of the same features: the model
    that the evaluation measures, not a look-alike."""
    from recommender import load

    stage = load(str(world["dir"] / "artifacts" / "v3")).second_stage
    user = world["user"]
    deals = recommended(ranked_client, user=user, limit=50)["deals"]
    from recommender.serving import Scorer

    scorer = Scorer.load(str(world["dir"] / "artifacts" / "v3"))
    scorer.add_items(world_catalogue().to_dict("records"))  # as the app does for 'fresh' on first sight
    ids = [d["store_id"] for d in deals]
    feats = stage.features(user, ids, scorer.score(user, ids), LAT0, LON0)
    assert [d["score"] for d in deals] == pytest.approx(list(stage.score(feats)), abs=1e-6)
    # A user the model never saw is ranked too (cold: no history features).
    cold = recommended(ranked_client, user="nobody-yet", limit=50)["deals"]
    assert cold and all(np.isfinite(d["score"]) for d in cold)


def test_the_loop_s_popularity_and_ratings_are_served_by_the_active_model(wclient, ranked_client, world):
    def nearby(sort):
        q = {"lat": LAT0, "lon": LON0, "radius_m": 6000, "sort": sort, "limit": 50}
        r = ranked_client.get("/v1/stores/nearby", query_string=q)
        assert r.status_code == 200
        return {s["id"]: s for s in r.get_json()["stores"]}, [s["id"] for s in r.get_json()["stores"]]

    before, _ = nearby("popularity")
    catalogue = world_catalogue().set_index("store_id")["popularity"].fillna(0.0)
    assert {sid: s["popularity"] for sid, s in before.items()} == catalogue[list(before)].to_dict()
    recommended(ranked_client)  # the worker notices v3 on a request
    after, order = nearby("popularity")
    # Known answer, by hand: orders decayed with a half-life of a quarter of the data's span.
    o = world["orders"]
    age = (o["ts"].max() - o["ts"]).dt.total_seconds() / 86400
    want = np.log1p((0.5 ** (age / (0.25 * age.max()))).groupby(o["store_id"]).sum())
    for sid, s in after.items():
        assert s["popularity"] == pytest.approx(want.get(sid, 0.0), rel=1e-4, abs=1e-6)
    assert [after[i]["popularity"] for i in order] == sorted((s["popularity"] for s in after.values()), reverse=True)
    # Ratings: each store's review mean shrunk toward the mean of all reviews by the median count.
    rv = world["reviews"].groupby("store_id")["rating"]
    mean, n = rv.mean(), rv.size()
    prior, m = (mean * n).sum() / n.sum(), n.median()
    rated, _ = nearby("rating")
    assert len(set(rated) & set(n.index)) >= 3
    for sid in set(rated) & set(n.index):
        assert rated[sid]["rating"] == pytest.approx((n[sid] * mean[sid] + m * prior) / (n[sid] + m), abs=0.01)


def test_personalised_nearby_uses_the_scorer(wclient, world):
    r = wclient.get(
        "/v1/stores/nearby",
        query_string={"lat": LAT0, "lon": LON0, "radius_m": 2000, "sort": "personalised"},
        headers=as_user(wclient.application, world["user"]),
    )
    assert r.status_code == 200
    assert {s["id"] for s in r.get_json()["stores"]} == {"n100", "n250", "n400a", "n400b", "n1000", "fresh"}


# --------------------------------------------------------------------------------- events
def test_duplicate_event_ids_count_once(wclient, redis_url):
    stores = ("n100", "n250", "n400a", "n400b", "n1000")
    batch = [event("click", store_id=s, event_id=f"e-{s}", impression_token=shown(wclient, s)) for s in stores]
    r = connect(redis_url)
    assert post(wclient, *batch)[1]["accepted"] == 5
    length = r.xlen(keys.EVENTS)
    status, body = post(wclient, *batch)
    assert status == 200 and body["duplicates"] == 5 and body["accepted"] == 0
    assert r.xlen(keys.EVENTS) == length


def test_a_write_cut_short_is_finished_by_the_retry_and_counted_once(wclient, redis_url):
    """The store's step (claim, statistics) done, the stream and user steps not (a crash
    between them): the retry finishes them, and the statistics do not move twice."""
    r = connect(redis_url)
    ev = event("click", store_id="n100", event_id="e-cut", impression_token=shown(wclient, "n100"))
    assert post(wclient, ev)[1]["accepted"] == 1
    day = FIXED_NOW.date().isoformat()
    clicks = r.hget(keys.sd("n100", day), "ev:click")
    # The state a crash after the first step leaves: claimed but pending, nothing in the stream.
    r.set(keys.event_claim("n100", "e-cut"), "pending")
    r.delete(keys.EVENTS)
    status, body = post(wclient, ev)
    assert status == 200 and body["duplicates"] == 1 and body["accepted"] == 0
    assert [json.loads(f[b"body"])["event_id"] for _id, f in r.xrange(keys.EVENTS)] == ["e-cut"]
    assert r.get(keys.event_claim("n100", "e-cut")) == b"done"
    assert r.hget(keys.sd("n100", day), "ev:click") == clicks
    post(wclient, ev)  # done: nothing more
    assert r.xlen(keys.EVENTS) == 1


def test_bad_events_are_reported_and_good_ones_kept(wclient):
    status, body = post(
        wclient,
        event("click", store_id="n100", impression_token=shown(wclient, "n100")),
        event("click", store_id="no-such-store", impression_token=shown(wclient, "n100")),
        event("review", store_id="n100", rating=6),
        event("review", store_id="n100"),
        event("redeem", store_id="n100"),
        {**event("order", store_id="n100"), "ts": _iso(FIXED_NOW + 10 * DAY)},
        "not an object",
        event("teleport", store_id="n100"),
        event("order", store_id="n100", amount=12.5),
    )
    assert status == 200
    assert (body["accepted"], body["rejected"]) == (1, 8)
    by_index = {x["index"]: x for x in body["results"]}
    fields = {i: [e["field"] for e in x.get("errors") or []] for i, x in by_index.items()}
    assert set(fields[1]) == {"store_id", "impression_token"}  # unknown, and not the token's store
    assert fields[2] == ["rating"]
    assert fields[3] == ["rating", "type"]  # no rating, and an anonymous review
    # Redemptions and orders come from merchants; the reason names the endpoint.
    assert fields[4] == ["type"] and "/redemptions" in by_index[4]["errors"][0]["message"]
    assert set(fields[5]) == {"type", "ts"}
    assert by_index[6]["status"] == "rejected" and fields[7] == ["type"] and fields[8] == ["type"]


@pytest.mark.parametrize("body", [None, [], {"events": []}, {"events": [{}] * 501}, {"evnts": []}])
def test_malformed_batches_are_400(wclient, body):
    r = wclient.post("/v1/events", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 400 and r.mimetype == "application/problem+json"


def _wait_len(r, n, timeout_s=10.0):
    """Impressions reach Redis from a background flush (every FLUSH_S, 2 s): wait for them."""
    import time

    deadline = time.monotonic() + timeout_s
    while r.xlen(IMPRESSIONS) < n:
        assert time.monotonic() < deadline, f"impressions not flushed within {timeout_s} s"
        time.sleep(0.02)


def test_impressions_of_a_response_appear_in_redis(wclient, redis_url, world):
    r = connect(redis_url)
    before = r.xlen(IMPRESSIONS)
    body = wclient.get("/v1/stores/nearby", query_string={"lat": LAT0, "lon": LON0, "limit": 4}).get_json()
    _wait_len(r, before + 1)
    ((_id, fields),) = r.xrevrange(IMPRESSIONS, count=1)
    assert fields[b"surface"] == b"nearby"
    assert json.loads(fields[b"items"]) == [[s["id"], i + 1, None] for i, s in enumerate(body["stores"])]
    deals = recommended(wclient, user=world["user"], limit=3)["deals"]
    _wait_len(r, before + 2)
    ((_id, fields),) = r.xrevrange(IMPRESSIONS, count=1)
    # The viewer is a keyed hash of the signed-in user, never the user id in the clear.
    viewer = viewer_of(
        wclient.application.config["SECRET_KEY"], world["user"], "127.0.0.1", FIXED_NOW.date().isoformat()
    )
    assert fields[b"surface"] == b"recommended" and fields[b"viewer"] == viewer.encode()
    assert world["user"].encode() not in fields[b"viewer"]
    assert [x[2] for x in json.loads(fields[b"items"])] == ids(deals)


def test_redis_down_mid_test_keeps_search_answering(world, tmp_path):
    from app.storage.embedded import start_on_port

    proc, port = start_on_port(data_dir=str(tmp_path / "r"))
    url = f"redis://127.0.0.1:{port}/0"
    d = world["dir"]
    app = create_app(
        app_config(
            tmp_path,
            url,
            CATALOGUE=str(d / "stores.csv"),
            DEALS=str(d / "deals.csv"),
            ARTIFACTS=str(d / "artifacts"),
            REDIS_TIMEOUT_S=0.2,
        )
    )
    c = app.test_client()
    assert c.get("/healthz").get_json()["redis"] == "up"
    proc.kill()
    proc.wait()
    for _ in range(3):
        shown = c.get("/v1/stores/nearby", query_string={"lat": LAT0, "lon": LON0})
        assert shown.status_code == 200
        assert c.get("/v1/deals/recommended", query_string={"lat": LAT0, "lon": LON0}).status_code == 200
    app.extensions["o2o"].impressions.flush()  # what the flusher thread would do
    health = c.get("/healthz").get_json()
    assert health["redis"] == "down" and health["impressions_dropped"] >= 1
    first = shown.get_json()["stores"][0]
    status, body = post(c, event("click", store_id=first["id"], impression_token=first["impression_token"]))
    assert status == 503 and body["status"] == 503


# ----------------------------------------------------------------------------- hot reload
def test_hot_reload_under_concurrent_requests(world_app, redis_url):
    client_versions, failures = [], []
    stop = threading.Event()

    def hammer():
        c = world_app.test_client()
        while not stop.is_set():
            r = c.get("/v1/deals/recommended", query_string={"lat": LAT0, "lon": LON0, "limit": 5})
            if r.status_code != 200:
                failures.append(r.status_code)
            else:
                client_versions.append(r.get_json()["model_version"])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    admin = world_app.test_client()
    auth = {"Authorization": "Bearer admin-secret"}
    try:
        for _ in range(3):
            assert admin.post("/v1/admin/model/activate", json={"version": "v2"}, headers=auth).status_code == 200
            _wait_for(admin, "v2")
            assert admin.post("/v1/admin/model/rollback", headers=auth).get_json()["version"] == "v1"
            _wait_for(admin, "v1")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert {"v1", "v2"} <= set(client_versions)


def _wait_for(client, version):
    for _ in range(200):
        if client.get("/healthz").get_json()["model_version"] == version:
            return
    raise AssertionError(f"workers did not switch to {version}")


def test_admin_needs_the_key(wclient):
    assert wclient.post("/v1/admin/model/rollback").status_code == 401
    assert wclient.post("/v1/admin/model/rollback", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = wclient.post(
        "/v1/admin/model/activate", json={"version": "nope"}, headers={"Authorization": "Bearer admin-secret"}
    )
    assert r.status_code == 400
