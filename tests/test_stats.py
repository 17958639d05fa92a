"""Merchant statistics against a real Redis: a brute-force recount of the raw streams,
HyperLogLog error, the exact share-of-search denominator, privacy, auth, bad ranges."""

import json
import math
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from app import create_app
from app.storage import keys
from app.storage.apikeys import create_key
from app.storage.impressions import Shown
from app.storage.keys import IMPRESSIONS
from geo_index import haversine_m
from tests.support.apps import app_config
from tests.support.redis import connect
from tests.support.stores import HELSINKI, M_PER_DEG, store
from tests.support.users import as_user, shown

LAT0, LON0 = HELSINKI
HEL = ZoneInfo("Europe/Helsinki")
DAY0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # 12:00 in Helsinki


def catalogue() -> pd.DataFrame:
    rows = [
        store("a1", LAT0, LON0, "cafe", merchant_id="mA"),
        store("a2", LAT0 + 300 / M_PER_DEG, LON0, "bar", merchant_id="mA"),
        store("b1", LAT0 + 600 / M_PER_DEG, LON0, "cafe", merchant_id="mB"),
        store("c1", LAT0 - 400 / M_PER_DEG, LON0, "cafe", merchant_id="mC"),
        store("c2", LAT0 + 3000 / M_PER_DEG, LON0, "cafe", merchant_id="mC"),
    ]
    return pd.DataFrame(rows)


class Clock:
    def __init__(self, at):
        self.at = at

    def __call__(self):
        return self.at


@pytest.fixture
def stats_app(tmp_path, redis_url):
    path = tmp_path / "stores.csv"
    catalogue().to_csv(path, index=False)
    clock = Clock(DAY0)
    app = create_app(
        app_config(tmp_path, redis_url, CATALOGUE=str(path), NOW=clock, ADMIN_KEY="admin", STATS_PRIVACY_THRESHOLD=1)
    )
    r = connect(redis_url)
    keys = {m: create_key(r, m) for m in ("mA", "mB", "mC")}
    return app, clock, keys, r


def drive(app, clock, rng, keys, days=3, requests=40, events=30):
    """The known script: nearby requests from random points by a pool of clients; client
    events from signed-in users; orders recorded by each store's merchant (a review only
    after an order there, as the service requires)."""
    c = app.test_client()
    stores = ["a1", "a2", "b1", "c1", "c2"]
    owner = dict(zip(catalogue()["store_id"], catalogue()["merchant_id"]))
    ordered = set()

    def order(user, store):
        body = {"redemption_id": uuid.uuid4().hex, "store_id": store, "ts": _iso(clock.at)}
        body.update(amount=float(rng.integers(5, 50)), user_token=as_user(app, user)["Authorization"][7:])
        r = c.post(
            f"/v1/merchants/{owner[store]}/redemptions",
            json=body,
            headers={"Authorization": f"Bearer {keys[owner[store]]}"},
        )
        assert r.status_code == 201, r.get_json()
        ordered.add((user, store))

    for d in range(days):
        for q in range(requests):
            clock.at = DAY0 + timedelta(days=d, minutes=q)
            lat = LAT0 + rng.normal(0, 700) / M_PER_DEG
            lon = LON0 + rng.normal(0, 0.01)
            c.get(
                "/v1/stores/nearby",
                query_string={"lat": lat, "lon": lon, "limit": int(rng.integers(1, 5)), "radius_m": 5000},
                environ_base={"REMOTE_ADDR": f"10.0.1.{rng.integers(12)}"},  # a pool of people
            )
        batch = []
        for _ in range(events):
            kind = str(rng.choice(["click", "detail_view", "order", "directions", "call", "website", "review"]))
            user, store = f"user-{rng.integers(8)}", str(rng.choice(stores))
            if kind == "order":
                order(user, store)
                continue
            if kind == "review" and (user, store) not in ordered:
                order(user, store)
            ev = {"event_id": uuid.uuid4().hex, "type": kind, "ts": _iso(clock.at), "store_id": store, "user_id": user}
            if kind == "review":
                ev["rating"] = int(rng.integers(1, 6))
            else:  # engagement proves an impression: the user opened the store a second ago
                clock.at += timedelta(seconds=1)
                ev["impression_token"] = shown(c, store, as_user(app, user))
            batch.append(ev)
        for user in sorted({e["user_id"] for e in batch}):  # each user posts their own, signed in
            mine = [e for e in batch if e["user_id"] == user]
            body = c.post("/v1/events", json={"events": mine}, headers=as_user(app, user)).get_json()
            assert body["accepted"] == len(mine), body
    app.extensions["o2o"].impressions.flush()


def _iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def recount(r, cat, radius_m=1000.0):
    """Every figure, recomputed by brute force from the raw impression and event streams."""
    where = cat.set_index("store_id")[["lat", "lon"]]
    out = defaultdict(lambda: defaultdict(float))
    viewers = defaultdict(set)
    people = defaultdict(set)
    ranks = defaultdict(list)
    for _id, f in r.xrange(IMPRESSIONS):
        lat, lon = float(f[b"lat"]), float(f[b"lon"])
        day = datetime.fromisoformat(f[b"ts"].decode()).astimezone(HEL).date().isoformat()
        surface = f[b"surface"].decode()
        assert surface in ("nearby", "detail")
        local = surface == "nearby"  # a local search; a detail view is not one
        # The denominator: local searches whose fine cell's centre is within radius of each store.
        c_lat, c_lon = ((math.floor(v / 0.001) + 0.5) * 0.001 for v in (lat, lon))
        for s in cat["store_id"]:
            if local and haversine_m(c_lat, c_lon, where.loc[s, "lat"], where.loc[s, "lon"]) <= radius_m:
                out[(s, day)]["local_requests"] += 1
        for s, rank, _deal in json.loads(f[b"items"]):
            key = (s, day)
            out[key]["impressions"] += 1
            ranks[key].append(rank)
            viewers[key].add(f[b"viewer"])
            if local and haversine_m(lat, lon, where.loc[s, "lat"], where.loc[s, "lon"]) <= radius_m:
                out[key]["local_appeared"] += 1
    names = {
        "click": "clicks",
        "detail_view": "detail_views",
        "order": "orders",
        "directions": "directions",
        "call": "calls",
        "website": "website",
        "review": "reviews",
        "redeem": "redemptions",
    }
    for _id, f in r.xrange(keys.EVENTS):
        e = json.loads(f[b"body"])
        day = datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).astimezone(HEL).date().isoformat()
        key = (e["store_id"], day)
        out[key][names[e["type"]]] += 1
        out[key]["order_amount"] += e.get("amount", 0.0) if e["type"] == "order" else 0.0
        people[(key, e["type"])].add(e.get("viewer") or e["user_id"])  # the token's viewer when it had one
    return out, viewers, people, ranks


def test_figures_equal_a_brute_force_recount(stats_app):
    app, clock, keys, r = stats_app
    # Viewers are keyed hashes and unique viewers HyperLogLogs, exact only while no two
    # share a register: ~4 % of random keys collide among a total's ~40 viewers (38 == 39
    # once under faketime). A fixed key makes the counts deterministic, and exact with this one.
    app.config["SECRET_KEY"] = "brute-force-recount-test-key-0123456789abcdef"
    drive(app, clock, np.random.default_rng(11), keys)
    expected, viewers, people, ranks = recount(r, catalogue())
    c = app.test_client()
    checked = 0
    for merchant, stores in (("mA", ["a1", "a2"]), ("mC", ["c1", "c2"])):
        body = c.get(
            f"/v1/merchants/{merchant}/stats",
            query_string={"from": "2026-11-20", "to": "2026-11-22"},
            headers={"Authorization": f"Bearer {keys[merchant]}"},
        ).get_json()
        assert [s["store_id"] for s in body["stores"]] == stores
        for s in body["stores"]:
            for d in s["days"]:
                key = (s["store_id"], d["date"])
                want = expected.get(key, {})
                for metric in (
                    "impressions",
                    "clicks",
                    "detail_views",
                    "orders",
                    "directions",
                    "calls",
                    "website",
                    "reviews",
                    "local_requests",
                    "local_appeared",
                ):
                    assert d[metric] == want.get(metric, 0), (key, metric)
                assert d["order_amount"] == pytest.approx(want.get("order_amount", 0.0))
                assert d["unique_viewers"] == len(viewers[key])  # tiny sets: HLL is exact here
                assert d["unique_clickers"] == len(people[(key, "click")])
                assert d["unique_orderers"] == len(people[(key, "order")])
                rk = ranks[key]
                assert d["rank"]["mean"] == (pytest.approx(np.mean(rk), abs=1e-3) if rk else None)
                assert d["rank"]["median"] == (np.median(rk) if rk else None)
                lr = want.get("local_requests", 0)
                assert d["local_search_share"] == (round(want.get("local_appeared", 0) / lr, 4) if lr else None)
                if d["impressions"]:
                    assert d["funnel"]["click_rate"] == round(d["clicks"] / d["impressions"], 4)
                checked += 1
            totals = s["totals"]
            assert totals["impressions"] == sum(d["impressions"] for d in s["days"])
            all_viewers = set().union(*(viewers[(s["store_id"], d["date"])] for d in s["days"]))
            assert totals["unique_viewers"] == len(all_viewers)
    assert checked == 12
    assert sum(v["impressions"] for v in expected.values()) > 100  # the script really produced traffic


@pytest.mark.slow  # 20,000 viewers
def test_unique_viewers_within_hyperloglog_error(stats_app):
    app, clock, keys, r = stats_app
    svc = app.extensions["o2o"]
    for i in range(20_000):
        svc.impressions.add(Shown("nearby", f"a:{i}", LAT0, LON0, DAY0, [("a1", 1, None)]))
    svc.impressions.flush()
    svc.impressions.flush()
    svc.impressions.flush()
    svc.impressions.flush()
    body = (
        app.test_client()
        .get(
            "/v1/merchants/mA/stats",
            query_string={"from": "2026-11-20", "to": "2026-11-20", "store_id": "a1"},
            headers={"Authorization": "Bearer admin"},
        )
        .get_json()
    )
    day = body["stores"][0]["days"][0]
    assert day["impressions"] == 20_000
    # Redis HLL: standard error 0.81 %; 3 % is beyond three standard errors.
    assert abs(day["unique_viewers"] - 20_000) / 20_000 < 0.03


def test_share_of_search_denominator_counts_the_requests_near_the_store_within_its_error_bound(stats_app):
    """Local searches are counted per fine cell and summed around the store when read: every
    request farther than FINE_ERROR_M from the 1 km circle is on the right side of it."""
    from app.domain.grid import FINE_ERROR_M

    app, clock, keys, r = stats_app
    c = app.test_client()
    inside, outside = 1000 - FINE_ERROR_M - 1, 1000 + FINE_ERROR_M + 1

    def local_requests():
        app.extensions["o2o"].impressions.flush()
        body = c.get(
            "/v1/merchants/mA/stats",
            query_string={"from": "2026-11-20", "to": "2026-11-20", "store_id": "a1"},
            headers={"Authorization": f"Bearer {keys['mA']}"},
        ).get_json()
        return body["stores"][0]["days"][0]

    for metres in (0, 500, inside, outside, 2000):
        for bearing in (0, 90, 180, 270):  # south, east, north, west of a1
            dlat = -metres * math.cos(math.radians(bearing)) / M_PER_DEG
            dlon = metres * math.sin(math.radians(bearing)) / (M_PER_DEG * math.cos(math.radians(LAT0)))
            c.get("/v1/stores/nearby", query_string={"lat": LAT0 + dlat, "lon": LON0 + dlon, "radius_m": 1})
    day = local_requests()
    assert day["local_requests"] == 12  # 0, 500 and 1000 - 80 m, four ways; not 1080 or 2000
    assert day["local_appeared"] == 4  # radius 1 m: only the requests on top of it showed a1
    assert day["local_search_share"] == round(4 / 12, 4)
    for metres in (999, 1001):  # inside the error band: either side
        c.get("/v1/stores/nearby", query_string={"lat": LAT0 - metres / M_PER_DEG, "lon": LON0, "radius_m": 1})
    assert 12 <= local_requests()["local_requests"] <= 14


def test_privacy_threshold_hides_small_unique_counts(stats_app, tmp_path, redis_url):
    app, clock, keys, r = stats_app
    app.config["STATS_PRIVACY_THRESHOLD"] = 5
    # Viewers are keyed hashes, and unique viewers a HyperLogLog, exact at this size unless
    # two of the 8 share a register (~0.2 % with a random key; it happened once on the
    # cluster run): a fixed key makes the count deterministic, and with this one it is 8.
    app.config["SECRET_KEY"] = "privacy-threshold-test-key-0123456789abcdef"
    c = app.test_client()
    for client in range(3):
        c.get(
            "/v1/stores/nearby",
            query_string={"lat": LAT0, "lon": LON0, "limit": 1},
            environ_base={"REMOTE_ADDR": f"10.0.0.{client}"},  # distinct people: distinct addresses
        )
    app.extensions["o2o"].impressions.flush()
    q = {"from": "2026-11-20", "to": "2026-11-20", "store_id": "a1"}
    auth = {"Authorization": f"Bearer {keys['mA']}"}
    day = c.get("/v1/merchants/mA/stats", query_string=q, headers=auth).get_json()["stores"][0]["days"][0]
    assert day["impressions"] == 3 and day["unique_viewers"] == "<5"
    viewers = c.get("/v1/merchants/mA/stats/viewers", query_string=q, headers=auth).get_json()
    assert viewers["cells"] == [] and viewers["other"] == 3  # 3 impressions in one cell: under 5, merged
    for client in range(3, 8):
        c.get(
            "/v1/stores/nearby",
            query_string={"lat": LAT0, "lon": LON0, "limit": 1},
            environ_base={"REMOTE_ADDR": f"10.0.0.{client}"},  # distinct people: distinct addresses
        )
    app.extensions["o2o"].impressions.flush()
    day = c.get("/v1/merchants/mA/stats", query_string=q, headers=auth).get_json()["stores"][0]["days"][0]
    assert day["unique_viewers"] == 8
    viewers = c.get("/v1/merchants/mA/stats/viewers", query_string=q, headers=auth).get_json()
    assert [x["impressions"] for x in viewers["cells"]] == [8] and viewers["other"] == 0


def test_viewer_cells_count_people_not_impressions(stats_app):
    """One person's many impressions located a cell that only they viewed from."""
    app, _clock, keys, _r = stats_app
    app.config["STATS_PRIVACY_THRESHOLD"] = 5
    c = app.test_client()
    for _ in range(12):  # one person (one address, one day), twelve searches
        c.get("/v1/stores/nearby", query_string={"lat": LAT0, "lon": LON0, "limit": 1})
    app.extensions["o2o"].impressions.flush()
    q = {"from": "2026-11-20", "to": "2026-11-20", "store_id": "a1"}
    auth = {"Authorization": f"Bearer {keys['mA']}"}
    viewers = c.get("/v1/merchants/mA/stats/viewers", query_string=q, headers=auth).get_json()
    assert viewers["cells"] == [] and viewers["other"] == 12
    for client in range(4):  # four more people from the same cell: five in all
        c.get(
            "/v1/stores/nearby",
            query_string={"lat": LAT0, "lon": LON0, "limit": 1},
            environ_base={"REMOTE_ADDR": f"10.0.1.{client}"},
        )
    app.extensions["o2o"].impressions.flush()
    viewers = c.get("/v1/merchants/mA/stats/viewers", query_string=q, headers=auth).get_json()
    assert [x["impressions"] for x in viewers["cells"]] == [16] and viewers["other"] == 0


ROUTES = ["/v1/merchants/{m}/stats", "/v1/merchants/{m}/stats/viewers", "/v1/merchants/{m}/stats?format=csv"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("who,status", [(None, 401), ("bad", 401), ("mB", 403), ("admin", 200), ("mA", 200)])
def test_auth_on_every_stats_route(stats_app, route, who, status):
    app, _clock, keys, _r = stats_app
    headers = (
        {}
        if who is None
        else {"Authorization": "Bearer " + {"bad": "mk_nope", "admin": "admin"}.get(who, keys.get(who, ""))}
    )
    sep = "&" if "?" in route else "?"
    r = app.test_client().get(route.format(m="mA") + sep + "from=2026-11-20&to=2026-11-21", headers=headers)
    assert r.status_code == status
    if status != 200:
        assert r.mimetype == "application/problem+json"


def test_a_merchant_cannot_reach_another_merchants_store(stats_app):
    app, _clock, keys, _r = stats_app
    c = app.test_client()
    auth = {"Authorization": f"Bearer {keys['mA']}"}
    q = "from=2026-11-20&to=2026-11-21"
    assert c.get(f"/v1/merchants/mA/stats?{q}&store_id=b1", headers=auth).status_code == 404
    assert c.get(f"/v1/merchants/mB/stats?{q}&store_id=b1", headers=auth).status_code == 403
    body = c.get(f"/v1/merchants/mA/stats?{q}", headers=auth).get_json()
    assert {s["store_id"] for s in body["stores"]} == {"a1", "a2"}
    # Peers are medians over other merchants' stores, never their figures one by one.
    assert set(body["stores"][0]["peers"]) == {"stores", "radius_m", "median"}


def test_revoked_key_is_refused(stats_app):
    from app.storage.apikeys import revoke_key

    app, _clock, keys, r = stats_app
    assert revoke_key(r, keys["mA"])
    resp = app.test_client().get(
        "/v1/merchants/mA/stats?from=2026-11-20&to=2026-11-20", headers={"Authorization": f"Bearer {keys['mA']}"}
    )
    assert resp.status_code == 401


@pytest.mark.parametrize(
    "q",
    [
        "from=2026-11-22&to=2026-11-20",
        "from=2025-01-01&to=2026-11-20",
        "from=yesterday&to=2026-11-20",
        "to=2026-11-20",
        "from=2026-02-30&to=2026-03-01",
        "from=2026-11-20&to=2026-11-20&surface=tv",
        "from=2026-11-20&to=2026-11-20&x=1",
        "from=0001-01-01&to=0001-01-01",
        "from=9999-12-30&to=9999-12-31",
    ],
)
def test_bad_dates_and_ranges_are_400(stats_app, q):
    app, _clock, _keys, _r = stats_app
    r = app.test_client().get(f"/v1/merchants/mA/stats?{q}", headers={"Authorization": "Bearer admin"})
    assert r.status_code == 400 and r.mimetype == "application/problem+json"


def test_csv_has_the_daily_rows(stats_app):
    app, clock, keys, _r = stats_app
    drive(app, clock, np.random.default_rng(2), keys, days=2, requests=10, events=10)
    r = app.test_client().get(
        "/v1/merchants/mA/stats?from=2026-11-20&to=2026-11-21",
        headers={"Authorization": "Bearer admin", "Accept": "text/csv"},
    )
    assert r.mimetype == "text/csv"
    lines = r.get_data(as_text=True).strip().splitlines()
    assert lines[0].startswith("store_id,date,impressions") and len(lines) == 1 + 2 * 2


def test_funnel_rates_changes_and_peer_medians_by_hand():
    """What merchants read off the figures, on numbers worked out by hand: each rate over its
    own base, people's rates withheld once a count they divide is under the privacy
    threshold, the change over the previous period, and the peers' median (not mean)."""
    from app.domain import stats

    fig = {
        "impressions": 200,
        "clicks": 40,
        "redemptions": 10,
        "orders": 8,
        "unique_viewers": 50,
        "unique_clickers": 20,
        "unique_orderers": 5,
        "unique_redeemers": 6,
        "_rank_sum": 30.0,
        "_rank_n": 10,
        "_rank_median": 2.5,
        "local_appeared": 30,
        "local_requests": 120,
    }
    out = stats.finish(fig, threshold=5)
    assert out["funnel"] == {
        "click_rate": 0.2,  # 40 clicks / 200 impressions
        "redeem_rate": 0.25,  # 10 redemptions / 40 clicks
        "order_rate": 0.2,  # 8 orders / 40 clicks
        "people": {"click_rate": 0.4, "order_rate": 0.25},  # 20 / 50 viewers, 5 / 20 clickers
    }
    assert out["rank"] == {"mean": 3.0, "median": 2.5} and out["local_search_share"] == 0.25
    hidden = stats.finish(fig, threshold=10)  # 5 orderers and 6 redeemers are under 10
    assert (hidden["unique_orderers"], hidden["unique_redeemers"], hidden["unique_viewers"]) == ("<10", "<10", 50)
    assert hidden["funnel"]["people"] == {"click_rate": None, "order_rate": None}
    assert hidden["funnel"]["click_rate"] == 0.2  # counts of events are not people: still shown

    now = {"impressions": 120, "clicks": 0, "orders": 3, "unique_viewers": "<5"}
    before = {"impressions": 100, "clicks": 10, "orders": 0, "unique_viewers": 7}
    moved = stats.change(now, before)
    assert (moved["impressions"], moved["clicks"]) == (0.2, -1.0)  # relative to the previous period
    assert moved["orders"] is None and moved["unique_viewers"] is None and moved["reviews"] is None

    peers = [{"impressions": 1, "unique_viewers": 9}, {"impressions": 2, "unique_viewers": "<5"}, {"impressions": 100}]
    median = stats.peer_median(peers)
    assert median["impressions"] == 2.0 and median["unique_viewers"] == 9.0 and median["clicks"] is None
