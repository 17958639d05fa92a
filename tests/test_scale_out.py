"""Two gunicorn instances (two workers each) on one Redis: rate limits, idempotency, stats and
hot reload stay consistent across workers and instances. Also CORS."""

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from app.domain.clock import local_day
from app.storage import keys
from app.storage.embedded import free_port
from recommender import TrainConfig, interaction_weights, save, train
from recommender.generator import BehaviourConfig, generate
from recommender.served import fit_from_orders
from scripts.bench.harness import request, start_gunicorn
from tests.support.apps import app_config
from tests.support.redis import connect
from tests.support.stores import HELSINKI, hand_placed

pytestmark = pytest.mark.slow  # system tier: real processes


#: The instances' clock (O2O_NOW): 22:30 UTC is already the next day in Helsinki, where the
#: stores are, so a test that asked for the machine's day instead of the store's would fail.
NOW = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)


def call(port, method, path, body=None, headers=None):
    return request(port, method, path, body, headers, timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server):
    """Instances A and B, each gunicorn with 2 workers, sharing the session's Redis (a real
    Redis Cluster with O2O_TEST_REDIS=cluster)."""
    d = tmp_path_factory.mktemp("scale")
    stores = hand_placed()
    stores.to_csv(d / "stores.csv", index=False)
    from geo_index import load_catalogue

    canon, _ = load_catalogue(d / "stores.csv", default_timezone="Europe/Helsinki")
    b = generate(canon, BehaviourConfig(n_users=60, days=20, seed=1, start="2026-11-01"))
    pairs = interaction_weights(b.orders, b.reviews)
    for version, seed in (("v1", 1), ("v2", 2)):
        cfg = TrainConfig(no_components=4, max_epochs=2, min_epochs=2, seed=seed)
        model = train(canon, pairs, None, cfg, log=lambda m: None)
        # With a second stage, so a worker forked from the master loads LightGBM on reload.
        model.second_stage = fit_from_orders(canon, b.orders, b.reviews, cfg, log=lambda m: None)
        save(model, str(d / "artifacts"), version=version)
    r = connect(redis_server)
    r.flushall()
    r.set(keys.MODEL_CURRENT, "v1")
    env = {
        "O2O_CATALOGUE": str(d / "stores.csv"),
        "REDIS_URL": redis_server,
        "O2O_ARTIFACTS": str(d / "artifacts"),
        "O2O_DEALS": "",
        "O2O_BASE_ORDERS": "",
        "O2O_ADMIN_KEY": "admin",
        "O2O_MODEL_CHECK_S": "0.5",
        "O2O_RATE_LIMIT_ANON": "20",
        "O2O_RATE_LIMIT_KEY": "1000",
        "O2O_DATA_DIR": str(d / "var"),
        "O2O_NOW": NOW.isoformat(),
    }
    procs, ports = [], []
    for _ in range(2):
        port = free_port()
        proc, _ = start_gunicorn(port, env)
        procs.append(proc)
        ports.append(port)
    yield ports, r
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def test_rate_limit_holds_across_workers_and_instances(cluster):
    ports, _r = cluster
    statuses: list = []
    lock = threading.Lock()

    def fire(port, n):
        for _ in range(n):
            status, _body, headers = call(port, "GET", f"/v1/stores/nearby?lat={HELSINKI[0]}&lon={HELSINKI[1]}")
            with lock:
                statuses.append((status, headers.get("Date"), headers.get("Retry-After")))

    # Four clients on each instance: both workers of both instances serve at once.
    threads = [threading.Thread(target=fire, args=(ports[i % 2], 40)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok_per_second = Counter(date for status, date, _ in statuses if status == 200)
    limited = [s for s in statuses if s[0] == 429]
    assert limited and all(retry == "1" for _s, _d, retry in limited)
    # One shared window per second: never more than the limit, whichever worker answered.
    # (A Date header second and the limiter's second can straddle, hence 2x at most per Date.)
    assert max(ok_per_second.values()) <= 2 * 20
    assert sum(ok_per_second.values()) <= 20 * (len(ok_per_second) + 1)
    time.sleep(1.1)


def test_events_are_idempotent_across_instances_and_stats_agree(cluster):
    ports, r = cluster
    from app.storage.apikeys import create_key

    key = create_key(r, "m-1")
    now = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    # Tokens that instance 0 handed out (a nearby list and a detail page) verify on instance 1.
    listed = call(ports[0], "GET", "/v1/stores/nearby?lat=60.1699&lon=24.9384&limit=1")[1]["stores"][0]
    page = call(ports[0], "GET", "/v1/stores/n100")[1]
    assert listed["id"] == "n100"
    kinds = [(listed, k) for k in ("click", "detail_view", "directions", "call", "website")]
    kinds += [(page, "click"), (page, "directions")]
    batch = [
        {"event_id": f"x-{uuid.uuid4().hex}", "type": k, "ts": now, "impression_token": item["impression_token"]}
        for item, k in kinds
    ]
    s1, body1, _ = call(ports[0], "POST", "/v1/events", {"events": batch})
    s2, body2, _ = call(ports[1], "POST", "/v1/events", {"events": batch})
    assert (s1, body1["accepted"]) == (200, 7) and (s2, body2["duplicates"]) == (200, 7)
    today = local_day(NOW, "Europe/Helsinki")  # stats are kept per store-local day
    assert today == "2026-11-26"
    q = f"/v1/merchants/m-1/stats?from={today}&to={today}&store_id=n100"
    # Impressions of earlier requests reach the rollups with each worker's flush (every 2 s):
    # the two instances agree once those have landed.
    deadline = time.monotonic() + 8
    while True:
        a = call(ports[0], "GET", q, headers={"Authorization": f"Bearer {key}"})[1]
        b = call(ports[1], "GET", q, headers={"Authorization": f"Bearer {key}"})[1]
        if a["stores"][0]["days"] == b["stores"][0]["days"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert a["stores"][0]["days"] == b["stores"][0]["days"]
    assert sum(d["clicks"] for d in a["stores"][0]["days"]) == 2  # one per token
    assert sum(d["directions"] for d in a["stores"][0]["days"]) == 2


def test_hot_reload_reaches_every_instance(cluster):
    ports, _r = cluster
    auth = {"Authorization": "Bearer admin"}
    assert call(ports[0], "POST", "/v1/admin/model/activate", {"version": "v2"}, auth)[0] == 200
    deadline = time.monotonic() + 10
    seen = set()
    while time.monotonic() < deadline:
        # Each call may land on either worker of either instance.
        seen = {call(p, "GET", "/healthz")[1]["model_version"] for p in ports for _ in range(4)}
        if seen == {"v2"}:
            break
        time.sleep(0.2)
    assert seen == {"v2"}
    assert call(ports[1], "POST", "/v1/admin/model/rollback", headers=auth)[1]["version"] == "v1"


def test_cors_is_explicit(tmp_path, redis_url, hand_placed_csv):
    from app import create_app

    app = create_app(
        app_config(
            tmp_path,
            redis_url,
            CATALOGUE=str(hand_placed_csv),
            ADMIN_KEY="admin",
            CORS_ORIGINS="https://shop.example, https://blog.example",
        )
    )
    c = app.test_client()
    origin = {"Origin": "https://shop.example"}
    r = c.get(f"/v1/stores/nearby?lat={HELSINKI[0]}&lon={HELSINKI[1]}", headers=origin)
    assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    r = c.get(f"/v1/stores/nearby?lat={HELSINKI[0]}&lon={HELSINKI[1]}", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = c.get(
        "/v1/merchants/m-1/stats?from=2026-11-20&to=2026-11-20", headers={**origin, "Authorization": "Bearer admin"}
    )
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
