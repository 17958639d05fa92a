"""The two web pages in headless Chromium (Debian's package, driven by Playwright).

Skipped with a reason when Chromium or Playwright is missing; CI installs both. Screenshots
land in test-artifacts/.
"""

import json
import os
import shutil
import threading
import time

import pytest
import redis

from app.storage.keys import EVENTS
from tests.support.apps import app_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "test-artifacts")
WEB_LIBS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "app", "web", "node_modules", "leaflet")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); CI installs it"),
    pytest.mark.skipif(not os.path.isdir(WEB_LIBS), reason="browser libraries missing: npm ci --prefix app/web"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory, redis_server):
    from werkzeug.serving import make_server

    from app import create_app
    from app.storage.apikeys import create_key
    from geo_index import load_catalogue
    from recommender.generator import BehaviourConfig, generate

    d = tmp_path_factory.mktemp("site")
    stores, _ = load_catalogue("data/stores_helsinki.csv")
    behaviour = generate(
        stores,
        BehaviourConfig(
            n_users=200,
            days=40,
            seed=3,
            start=(__import__("datetime").date.today() - __import__("datetime").timedelta(days=40)).isoformat(),
        ),
    )
    behaviour.deals.to_csv(d / "deals.csv", index=False)
    r = redis.Redis.from_url(redis_server)
    r.flushdb()
    app = create_app(
        app_config(d, redis_server, DEALS=str(d / "deals.csv"), TILE_URL="/no-tiles/{z}/{x}/{y}.png", NOW=None)
    )
    keys = {m: create_key(r, m) for m in ("m-unicafe", "m-restamax")}
    client = app.test_client()
    unicafe = stores[stores["merchant_id"] == "m-unicafe"]
    tokens: dict[str, list[str]] = {}
    for i, row in enumerate(unicafe.itertuples()):
        for k in range(6):  # replayed traffic: searches near each Unicafe store by several people
            body = client.get(
                "/v1/stores/nearby",
                query_string={"lat": row.lat + 0.0005 * k, "lon": row.lon, "limit": 10},
                environ_base={"REMOTE_ADDR": f"10.{i}.0.{k}"},
            ).get_json()
            for shown in body["stores"]:
                tokens.setdefault(shown["id"], []).append(shown["impression_token"])
    for i, sid in enumerate(unicafe["store_id"]):  # someone opens each store's page too
        page = client.get(f"/v1/stores/{sid}", environ_base={"REMOTE_ADDR": f"10.{i}.1.1"}).get_json()
        tokens.setdefault(sid, []).append(page["impression_token"])
    now = __import__("datetime").datetime.now(__import__("datetime").timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Two people click each store and one asks for directions, each with what they were shown.
    events = [
        {"event_id": f"e{i}-{j}", "type": kind, "ts": now, "store_id": sid, "impression_token": tokens[sid][-1 - j % 2]}
        for i, sid in enumerate(unicafe["store_id"])
        for j, kind in enumerate(("click", "click", "directions"))
    ]
    assert client.post("/v1/events", json={"events": events}).get_json()["accepted"] == len(events)
    for i, sid in enumerate(unicafe["store_id"]):  # an order each, from the store's point of sale
        order = {"redemption_id": f"o{i}", "store_id": sid, "amount": 12.5, "ts": now}
        r = client.post(
            "/v1/merchants/m-unicafe/redemptions", json=order, headers={"Authorization": f"Bearer {keys['m-unicafe']}"}
        )
        assert r.status_code == 201, r.get_json()
    app.extensions["o2o"].impressions.flush()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", keys, stores
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    pw = pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")
    os.makedirs(ARTIFACTS, exist_ok=True)
    with pw.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield b
        b.close()


def _wait_loaded(page, since="0"):
    page.wait_for_function(f"() => Number(document.body.dataset.loaded || 0) > {since}", timeout=15000)
    return page.evaluate("() => document.body.dataset.loaded")


def test_widget_shows_markers_filters_and_details(site, browser, redis_server):
    base, _keys, _stores = site
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    page.goto(f"{base}/widget/map?lat=60.1699&lon=24.9384&zoom=16")
    stamp = _wait_loaded(page)
    stores_all = page.locator("#map .store").count()
    clusters_all = page.locator("#map .cluster").count()
    assert stores_all + clusters_all > 10
    status_all = page.locator("#status").inner_text()
    page.screenshot(path=os.path.join(ARTIFACTS, "widget-all.png"))
    page.select_option("select[name=category]", "cafe")
    stamp = _wait_loaded(page, stamp)
    status_cafe = page.locator("#status").inner_text()
    assert int(status_cafe.split()[0]) < int(status_all.split()[0])
    page.screenshot(path=os.path.join(ARTIFACTS, "widget-cafes.png"))
    marker = page.locator("#map .store").first
    name, store_id = marker.get_attribute("title"), marker.get_attribute("data-id")
    marker.click(force=True)
    page.wait_for_selector(".popup h3")
    assert page.locator(".popup h3").inner_text() == name
    page.screenshot(path=os.path.join(ARTIFACTS, "widget-popup.png"))
    # The widget sent the click and the detail view back with their impression tokens.
    r = redis.Redis.from_url(redis_server)
    sent = set()
    for _ in range(50):
        sent = {
            (b["type"], b.get("surface"))
            for _id, f in r.xrange(EVENTS)
            for b in [json.loads(f[b"body"])]
            if b["store_id"] == store_id
        }
        if {("click", "map"), ("detail_view", "detail")} <= sent:
            break
        time.sleep(0.1)
    assert {("click", "map"), ("detail_view", "detail")} <= sent
    page.close()


def test_dashboard_signs_in_and_draws_real_stats(site, browser):
    base, keys, stores = site
    page = browser.new_page(viewport={"width": 1200, "height": 1100})
    page.goto(f"{base}/merchant")
    page.fill("input[name=merchant]", "m-unicafe")
    page.fill("input[name=key]", keys["m-unicafe"])
    page.click("button[type=submit]")
    page.wait_for_function("() => document.body.dataset.drawn", timeout=15000)
    summary = page.locator("#summary").inner_text()
    own = set(stores.loc[stores["merchant_id"] == "m-unicafe", "name"])
    assert summary.startswith(f"{len(own)} store(s)")
    assert " 0 impressions" not in summary and " 0 clicks" not in summary
    assert page.locator("canvas").count() == 5
    assert page.locator("#viewers-map path.leaflet-interactive").count() >= 1
    # The key never reaches persistent storage.
    assert page.evaluate("() => localStorage.length + sessionStorage.length + document.cookie.length") == 0
    page.screenshot(path=os.path.join(ARTIFACTS, "dashboard-unicafe.png"), full_page=True)
    page.close()


def test_another_merchant_sees_only_its_own_stores(site, browser):
    base, keys, stores = site
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{base}/merchant")
    page.fill("input[name=merchant]", "m-unicafe")
    page.fill("input[name=key]", keys["m-restamax"])
    page.click("button[type=submit]")
    page.wait_for_selector("#message.error")
    assert "another merchant" in page.locator("#message").inner_text()
    page.fill("input[name=merchant]", "m-restamax")
    page.fill("input[name=key]", keys["m-restamax"])
    page.click("button[type=submit]")
    page.wait_for_function("() => document.body.dataset.drawn", timeout=15000)
    summary = page.locator("#summary").inner_text()
    theirs = stores.loc[stores["merchant_id"] == "m-restamax", "name"]
    unicafe = stores.loc[stores["merchant_id"] == "m-unicafe", "name"]
    assert all(n in summary for n in theirs) and not any(n in summary for n in unicafe)
    page.screenshot(path=os.path.join(ARTIFACTS, "dashboard-other-merchant.png"), full_page=True)
    page.close()


def test_dashboard_starts_pauses_and_edits_deals_and_store_details(site, browser):
    base, keys, stores = site
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{base}/merchant")
    page.fill("input[name=merchant]", "m-unicafe")
    page.fill("input[name=key]", keys["m-unicafe"])
    page.click("#signin button[type=submit]")
    page.wait_for_function("() => document.body.dataset.deals", timeout=15000)
    page.click("#tabs button[data-tab=deals]")
    form = page.locator("#deal-form")
    form.locator("input[name=title]").fill("Lunch -25 % for students")
    form.locator("input[name=discount_pct]").fill("95")
    form.locator("input[name=quota]").fill("40")
    form.locator("input[name=valid_hours]").fill("lunchtime")
    form.locator("button[type=submit]").click()
    # The server's validation, shown beside each field it names.
    page.wait_for_selector("#deal-form label.invalid")
    assert "90" in form.locator('.field-error[data-for="discount_pct"]').inner_text()
    assert "opening_hours" in form.locator('.field-error[data-for="valid_hours"]').inner_text()
    page.screenshot(path=os.path.join(ARTIFACTS, "dashboard-deal-errors.png"), full_page=True)
    form.locator("input[name=discount_pct]").fill("25")
    form.locator("input[name=valid_hours]").fill("Mo-Su 11:00-14:00")
    stamp = page.evaluate("() => document.body.dataset.deals")
    form.locator("button[type=submit]").click()
    page.wait_for_function(f"() => document.body.dataset.deals > '{stamp}'", timeout=15000)
    row = page.locator("#deal-list tbody tr", has_text="Lunch -25 % for students")
    assert row.count() == 1 and "active" in row.inner_text()
    assert page.locator("#deal-form label.invalid").count() == 0
    stamp = page.evaluate("() => document.body.dataset.deals")
    row.locator("button", has_text="Pause").click()
    page.wait_for_function(f"() => document.body.dataset.deals > '{stamp}'", timeout=15000)
    assert "paused" in page.locator("#deal-list tbody tr", has_text="Lunch -25 % for students").inner_text()
    page.screenshot(path=os.path.join(ARTIFACTS, "dashboard-deals.png"), full_page=True)

    page.click("#tabs button[data-tab=details]")
    details = page.locator("#store-form")
    details.locator("input[name=opening_hours]").fill("whenever we like")
    details.locator("button[type=submit]").click()
    page.wait_for_selector("#store-form label.invalid")
    assert "opening_hours" in details.locator('.field-error[data-for="opening_hours"]').inner_text()
    details.locator("input[name=opening_hours]").fill("Mo-Su 10:00-18:00")
    details.locator("input[name=phone]").fill("+358 9 123 456")
    stamp = page.evaluate("() => document.body.dataset.saved || '0'")
    details.locator("button[type=submit]").click()
    page.wait_for_function(f"() => (document.body.dataset.saved || '0') > '{stamp}'", timeout=15000)
    assert page.locator("#store-form label.invalid").count() == 0
    assert "version 1" in page.locator("#store-version").inner_text()
    page.screenshot(path=os.path.join(ARTIFACTS, "dashboard-store-details.png"), full_page=True)
    store_id = details.locator("select[name=store]").input_value()
    import urllib.request

    with urllib.request.urlopen(f"{base}/v1/stores/{store_id}") as resp:
        shown = json.load(resp)
    assert shown["opening_hours"] == "Mo-Su 10:00-18:00" and shown["phone"] == "+358 9 123 456"
    page.close()
