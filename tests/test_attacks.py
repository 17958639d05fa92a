"""The trust review's findings, one test each, tried as an attacker would against a real Redis.

Each was written to fail against the code before the fix (issue 12 shows the run); the
modules of a fix are imported inside its test, so one missing module fails one test. The
token and event-rule tests after the altered-token one were added later, for checks that
could be deleted with every test still passing (a mutation pass over those rules).
"""

from __future__ import annotations

import os
import stat
import time

import pandas as pd
import pytest

from app import create_app
from app.http import paging
from app.storage import keys
from tests.support.apps import FIXED_NOW, app_config
from tests.support.redis import connect
from tests.support.stores import HELSINKI, hand_placed
from tests.support.users import as_user, shown

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
                "quota": q,
            }
            for d, s, q in (("d-a", "n100", 1000), ("d-b", "n1000", 1000), ("d-five", "n250", 5))
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


def test_a_cursor_of_another_format_version_is_400_start_again(shop):
    """A client that keeps a cursor across a release that changed the cursor's contents gets
    told to start again, not a page read with the old meaning."""
    app, client = shop
    q = {"lat": LAT0, "lon": LON0, "limit": 2}
    data = paging.verify(SECRET, client.get("/v1/stores/nearby", query_string=q).get_json()["next_cursor"])
    assert client.get("/v1/stores/nearby", query_string={**q, "cursor": paging.sign(SECRET, data)}).status_code == 200
    older = paging.sign(SECRET, {**data, "v": data["v"] - 1})
    body = _problem(client.get("/v1/stores/nearby", query_string={**q, "cursor": older}))
    assert "older version" in str(body)


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


_MAP_Q = {"bbox": ["24.8,60.1,25.1,60.25"], "zoom": ["10"]}  # a valid query: only the forged field is wrong


@pytest.mark.parametrize(
    "data",
    [
        {"z": "x", "x": 0, "y": 0},
        {"z": 10, "x": [], "y": 0},
        {"z": 10, "x": 0, "y": 0, "q": {"zoom": 5}},
        {"z": 10**6, "x": 0, "y": 0},
        {"z": 10, "x": 2**70, "y": 0},
    ],
)
def test_forged_cluster_ids_are_400(shop, data):
    _, client = shop
    forged = paging.sign(SECRET, {"q": _MAP_Q, **data})
    _problem(client.get(f"/v1/map/clusters/{forged}/leaves"))


# ------------------------------------------------------------ 3. users are authenticated, not named
def _token(app, user, ttl_s=3600, secret=None, **claims):
    import jwt

    now = int(FIXED_NOW.timestamp())
    body = {"sub": user, "iat": now, "exp": now + ttl_s, **claims}
    return {"Authorization": "Bearer " + jwt.encode(body, secret or app.config["USER_TOKEN_SECRET"], "HS256")}


def test_a_user_id_in_the_query_selects_no_user(shop):
    """explain=true used to show any named user's past orders (ordered_at)."""
    _, client = shop
    for path in ("/v1/deals/recommended", "/v1/stores/nearby", "/v1/stores/n100", "/v1/map/stores"):
        q = {"lat": LAT0, "lon": LON0, "user_id": "u-victim", "explain": "true"}
        if path.startswith("/v1/stores/n"):
            q = {"user_id": "u-victim"}
        if path == "/v1/map/stores":
            q = {"bbox": "24.9,60.1,25.0,60.2", "zoom": 14, "user_id": "u-victim"}
        body = _problem(client.get(path, query_string=q))
        assert "Authorization: Bearer" in str(body)


def test_events_cannot_name_another_user(shop):
    """Ten redeem events with user_id=u-victim replaced that user's whole top 10."""
    app, client = shop
    ev = {"event_id": "e-1", "type": "click", "ts": _iso(FIXED_NOW), "store_id": "n100", "user_id": "u-victim"}
    ev["impression_token"] = shown(client, "n100")
    anonymous = client.post("/v1/events", json={"events": [ev]}).get_json()
    assert anonymous["rejected"] == 1 and anonymous["results"][0]["errors"][0]["field"] == "user_id"
    other = client.post("/v1/events", json={"events": [ev]}, headers=_token(app, "u-attacker")).get_json()
    assert other["rejected"] == 1
    own = client.post("/v1/events", json={"events": [ev]}, headers=_token(app, "u-victim")).get_json()
    assert own["accepted"] == 1


def _signed(app, claims: dict) -> dict:
    import jwt

    return {"Authorization": "Bearer " + jwt.encode(claims, app.config["USER_TOKEN_SECRET"], "HS256")}


@pytest.mark.parametrize(
    "case",
    ["wrong key", "expired", "no exp", "alg none", "garbage", "merchant key", "empty sub", "long sub", "not yet valid"],
)
def test_a_token_that_does_not_verify_is_401_not_anonymous(shop, case):
    import jwt

    app, client = shop
    now = int(FIXED_NOW.timestamp())
    headers = {
        "wrong key": lambda: _token(app, "u1", secret="x" * 40),
        "expired": lambda: _token(app, "u1", ttl_s=-3600),
        "no exp": lambda: {
            "Authorization": "Bearer " + jwt.encode({"sub": "u1"}, app.config["USER_TOKEN_SECRET"], "HS256")
        },
        "alg none": lambda: {
            "Authorization": "Bearer " + jwt.encode({"sub": "u1", "exp": now + 60}, None, algorithm="none")
        },
        "garbage": lambda: {"Authorization": "Bearer not-a-token"},
        "merchant key": lambda: {"Authorization": "Bearer mk_" + "a" * 43},
        # Signed with the right key, so only the claims' checks can refuse these: a user id is
        # 1 to 128 characters (it names Redis keys), and nbf is honoured with the leeway.
        "empty sub": lambda: _signed(app, {"sub": "", "exp": now + 600}),
        "long sub": lambda: _signed(app, {"sub": "u" * 129, "exp": now + 600}),
        "not yet valid": lambda: _signed(app, {"sub": "u1", "exp": now + 7200, "nbf": now + 3600}),
    }[case]()
    r = client.get("/v1/deals/recommended", query_string={"lat": LAT0, "lon": LON0}, headers=headers)
    _problem(r, 401)
    assert "WWW-Authenticate" in r.headers


def test_a_valid_token_is_checked_against_the_service_clock(shop):
    app, client = shop
    ok = client.get("/v1/deals/recommended", query_string={"lat": LAT0, "lon": LON0}, headers=_token(app, "u1"))
    assert ok.status_code == 200


def test_a_remembered_token_still_expires_and_never_crosses_keys(tmp_path, redis_url):
    """Tokens that verified are remembered across requests (``users._VERIFIED``): each use
    still compares ``exp`` with the service's clock, another key never accepts them, and a
    token that does not verify is never remembered."""
    from app.http import users

    hand_placed().to_csv(tmp_path / "stores.csv", index=False)
    clock = [FIXED_NOW]

    def app_with(name, secret):
        return create_app(
            app_config(
                tmp_path / name,
                redis_url,
                CATALOGUE=str(tmp_path / "stores.csv"),
                USER_TOKEN_SECRET=secret,
                NOW=lambda: clock[0],
            )
        )

    a, b = app_with("a", "a" * 40), app_with("b", "b" * 40)
    token = _token(a, "u1", ttl_s=60)
    q = {"lat": LAT0, "lon": LON0}
    assert a.test_client().get("/v1/deals/recommended", query_string=q, headers=token).status_code == 200
    assert a.test_client().get("/v1/deals/recommended", query_string=q, headers=token).status_code == 200
    remembered = len(users._VERIFIED)
    assert remembered >= 1
    assert "does not verify" in str(
        _problem(b.test_client().get("/v1/deals/recommended", query_string=q, headers=token), 401)
    )
    forged = _token(a, "u1", secret="c" * 40)
    _problem(a.test_client().get("/v1/deals/recommended", query_string=q, headers=forged), 401)
    assert len(users._VERIFIED) == remembered
    clock[0] = FIXED_NOW + pd.Timedelta(minutes=10)
    assert "expired" in str(_problem(a.test_client().get("/v1/deals/recommended", query_string=q, headers=token), 401))


def test_scripts_users_mints_a_token_the_service_accepts(tmp_path, redis_url, capsys, monkeypatch):
    from scripts import users

    monkeypatch.delenv("O2O_SECRET_KEY", raising=False)
    monkeypatch.delenv("O2O_USER_TOKEN_SECRET", raising=False)
    app = create_app(app_config(tmp_path, redis_url, NOW=None))  # the real clock, as scripts.users uses
    assert users.main(["token", "u-dev", "--ttl", "600", "--data-dir", app.config["DATA_DIR"]]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    r = app.test_client().get(
        "/v1/stores/nearby",
        query_string={"lat": LAT0, "lon": LON0, "sort": "personalised"},
        headers={"Authorization": "Bearer " + token},
    )
    assert r.status_code == 200


# ------------------------------------------------------------ 2. redemptions and orders come from merchants
def _merchant(redis_url, merchant="m-1"):

    from app.storage.apikeys import create_key

    return {"Authorization": "Bearer " + create_key(connect(redis_url), merchant)}


def _redemption(**fields):
    return {"redemption_id": fields.pop("rid", "r-1"), "store_id": "n100", "ts": _iso(FIXED_NOW), **fields}


def _stats(client, redis_url, store="n100"):
    day = "2026-11-25"
    body = client.get(
        "/v1/merchants/m-1/stats",
        query_string={"from": day, "to": day, "store_id": store},
        headers=_merchant(redis_url),
    ).get_json()
    return body["stores"][0]["totals"]


def test_anonymous_clients_cannot_post_orders_or_redemptions(shop, redis_url):
    """One anonymous batch took a store to an order amount of 1,000,000,000; two batches of
    500 redeem events used up a deal's quota of 1000 and it vanished for everyone."""
    _, client = shop
    orders = [
        {"event_id": f"o-{i}", "type": "order", "ts": _iso(FIXED_NOW), "store_id": "n100", "amount": 1e7}
        for i in range(100)
    ]
    redeems = [{"event_id": f"x-{i}", "type": "redeem", "ts": _iso(FIXED_NOW), "deal_id": "d-a"} for i in range(500)]
    for batch in (orders, redeems, [{**e, "event_id": "y" + e["event_id"]} for e in redeems]):
        body = client.post("/v1/events", json={"events": batch}).get_json()
        assert body["accepted"] == 0
        assert "/redemptions" in body["results"][0]["errors"][0]["message"]
    totals = _stats(client, redis_url)
    assert totals["orders"] == 0 and totals["order_amount"] == 0 and totals["redemptions"] == 0
    deals = client.get("/v1/deals/recommended", query_string={"lat": LAT0, "lon": LON0}).get_json()["deals"]
    assert "d-a" in {d["deal_id"] for d in deals}


def test_a_redemption_id_moves_the_quota_once(shop, redis_url):
    _, client = shop
    key = _merchant(redis_url)
    codes = [
        client.post("/v1/merchants/m-1/redemptions", json=_redemption(deal_id="d-five", store_id="n250"), headers=key)
        for _ in range(4)
    ]
    assert [r.status_code for r in codes] == [201, 200, 200, 200]
    assert [r.get_json()["quota_left"] for r in codes] == [4, 4, 4, 4]
    assert [r.get_json()["status"] for r in codes] == ["recorded", "duplicate", "duplicate", "duplicate"]
    assert _stats(client, redis_url, "n250")["redemptions"] == 1


def test_the_quota_holds_under_concurrent_redemptions(shop, redis_url):
    """20 tills at once on a deal with 5 left: exactly 5 are recorded, the rest get 409."""
    from concurrent.futures import ThreadPoolExecutor

    app, _ = shop
    key = _merchant(redis_url)

    def one(i):
        body = _redemption(rid=f"till-{i}", deal_id="d-five", store_id="n250")
        return app.test_client().post("/v1/merchants/m-1/redemptions", json=body, headers=key).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(one, range(20)))
    assert codes == [201] * 5 + [409] * 15
    problem = app.test_client().post(
        "/v1/merchants/m-1/redemptions", json=_redemption(rid="late", deal_id="d-five", store_id="n250"), headers=key
    )
    assert "quota" in _problem(problem, 409)["detail"]


def test_a_merchant_records_only_at_its_own_stores(shop, redis_url):
    _, client = shop
    theirs = _merchant(redis_url, "m-other")
    r = client.post("/v1/merchants/m-other/redemptions", json=_redemption(), headers=theirs)
    _problem(r, 403)  # n100 belongs to m-1
    _problem(client.post("/v1/merchants/m-1/redemptions", json=_redemption(), headers=theirs), 403)
    _problem(client.post("/v1/merchants/m-1/redemptions", json=_redemption()), 401)
    bad = client.post(
        "/v1/merchants/m-1/redemptions", json=_redemption(deal_id="d-b"), headers=_merchant(redis_url)
    )  # d-b is a deal of n1000
    assert _problem(bad)["errors"][0]["field"] == "deal_id"


def test_a_review_needs_a_signed_in_user_who_bought_there(shop, redis_url):
    """A rating-1 review from anyone would have reached the served ratings after retraining."""
    app, client = shop
    review = {"event_id": "rv-1", "type": "review", "ts": _iso(FIXED_NOW), "store_id": "n100", "rating": 1}
    assert client.post("/v1/events", json={"events": [review]}).get_json()["rejected"] == 1
    signed_in = _token(app, "u-customer")
    assert client.post("/v1/events", json={"events": [review]}, headers=signed_in).get_json()["rejected"] == 1
    order = _redemption(rid="o-1", amount=12.0, user_token=signed_in["Authorization"][7:])
    assert client.post("/v1/merchants/m-1/redemptions", json=order, headers=_merchant(redis_url)).status_code == 201
    assert client.post("/v1/events", json={"events": [review]}, headers=signed_in).get_json()["accepted"] == 1
    by_deal = {"event_id": "rv-2", "type": "review", "ts": _iso(FIXED_NOW), "deal_id": "d-a", "rating": 4}
    assert client.post("/v1/events", json={"events": [by_deal]}, headers=signed_in).get_json()["accepted"] == 1
    totals = _stats(client, redis_url)
    assert (totals["orders"], totals["order_amount"], totals["reviews"]) == (1, 12.0, 2)


# ------------------------------------------------------------------ 1. impression tokens
def _click(**fields):
    return {
        "event_id": fields.pop("event_id", f"c-{time.perf_counter_ns()}"),
        "type": "click",
        "ts": _iso(FIXED_NOW),
        **fields,
    }


def test_every_surface_hands_out_tokens_that_verify(shop):
    from app.domain import impression_tokens

    app, client = shop
    now = FIXED_NOW.timestamp()
    nearby = client.get("/v1/stores/nearby", query_string={"lat": LAT0, "lon": LON0, "limit": 3}).get_json()["stores"]
    deals = client.get("/v1/deals/recommended", query_string={"lat": LAT0, "lon": LON0}).get_json()["deals"]
    detail = client.get("/v1/stores/n250").get_json()
    points = [
        f["properties"]
        for f in client.get("/v1/map/stores", query_string={"bbox": "24.93,60.16,24.95,60.22", "zoom": 18}).get_json()[
            "features"
        ]
    ]
    cases = [("nearby", s["id"], None, i + 1, s) for i, s in enumerate(nearby)]
    cases += [("recommended", d["store_id"], d["deal_id"], i + 1, d) for i, d in enumerate(deals)]
    cases += [("detail", "n250", None, 1, detail)]
    cases += [("map", p["id"], None, i + 1, p) for i, p in enumerate(points)]
    assert len(deals) == 3 and len(points) >= 3
    for surface, store, deal, rank, item in cases:
        imp = impression_tokens.verify(SECRET, item["impression_token"], now)
        assert (imp.surface, imp.store_id, imp.deal_id, imp.rank) == (surface, store, deal, rank)


def test_impression_tokens_are_rfc_2104_hmacs_for_any_item():
    """The signer writes HMAC out from its two pad states; the standard library's hmac (which
    verify uses) must agree, for odd items and for keys shorter, as long as and longer than
    a block."""
    import hashlib
    import hmac

    from app.domain import impression_tokens

    sign = impression_tokens.Signer(SECRET, "recommended", "v0123456789abcdef", 1_700_000_000)
    for store, deal in [("n1", None), ("kahvila-ä|ö", "d|50%"), ("x" * 128, "d-1")]:
        imp = impression_tokens.verify(SECRET, sign.token(store, 3, deal), 1_700_000_000)
        assert not isinstance(imp, str), imp
        assert (imp.store_id, imp.deal_id, imp.rank) == (store, deal, 3)
    for key in (b"k", b"k" * 64, b"k" * 65, b"k" * 200):
        inner, outer = (state.copy() for state in impression_tokens._hmac_states(key))
        inner.update(b"message")
        outer.update(inner.digest())
        assert outer.digest() == hmac.new(key, b"message", hashlib.sha256).digest()


def test_clicks_without_a_valid_token_are_rejected_and_never_counted(shop, redis_url):
    """400 anonymous clicks once took a store from 0 to 400 clicks."""
    _, client = shop
    token = shown(client, "n100")
    other = shown(client, "n250")
    body, sig = token.split(".")
    altered = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + sig
    batch = [_click(event_id=f"bare-{i}", store_id="n100") for i in range(400)]
    batch += [
        _click(event_id="other", store_id="n100", impression_token=other),
        _click(event_id="altered", store_id="n100", impression_token=altered),
        _click(event_id="garbage", store_id="n100", impression_token="x" * 80),
    ]
    body = client.post("/v1/events", json={"events": batch[:400]}).get_json()
    assert body["accepted"] == 0 and body["results"][0]["errors"][0]["field"] == "impression_token"
    body = client.post("/v1/events", json={"events": batch[400:]}).get_json()
    assert body["accepted"] == 0
    assert all(r["errors"][0]["field"] == "impression_token" for r in body["results"])
    assert _stats(client, redis_url)["clicks"] == 0
    ok = client.post("/v1/events", json={"events": [_click(event_id="real", impression_token=token)]}).get_json()
    assert ok["accepted"] == 1  # the token alone names the store
    assert _stats(client, redis_url)["clicks"] == 1


def _b64(raw: bytes) -> str:
    from app.domain import b64url

    return b64url.encode(raw).decode()


def _payload(token: str) -> list[str]:
    from app.domain import b64url

    return b64url.decode(token.split(".")[0], 1000).decode().split("|")


def _respelled(part: str) -> list[str]:
    """Other spellings of the same bytes: base64's last character has unused low bits when
    the length is not a multiple of three bytes, and a decoder that ignores them reads any
    of these as the original."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = {2: 4, 3: 2}.get(len(part) % 4, 0)  # unused bits in the last character
    last = alphabet.index(part[-1])
    return [part[:-1] + alphabet[last | low] for low in range(1, 2**spare)]


def test_a_token_has_one_spelling(shop):
    """Tokens and cursors decoded with base64's leniency: another spelling of the same bytes
    (the last character's unused bits set) verified as the token the service wrote, and
    characters outside the alphabet were skipped. Now each has the one spelling it was given."""
    from app.domain import impression_tokens

    _, client = shop
    now = 1_700_000_000
    for store in ("n100", "n1000", "n10000"):  # payload lengths with 0, 2 and 4 unused bits
        token = impression_tokens.Signer(SECRET, "nearby", "v0123456789abcdef", now).token(store, 1)
        body, sig = token.split(".")
        assert not isinstance(impression_tokens.verify(SECRET, token, now), str)
        for other in [*_respelled(body), body[:5] + "=" + body[5:], body[:5] + "\n" + body[5:]]:
            assert isinstance(impression_tokens.verify(SECRET, other + "." + sig, now), str), other
    q = {"lat": LAT0, "lon": LON0, "limit": 1}
    cursor = client.get("/v1/stores/nearby", query_string=q).get_json()["next_cursor"]
    body, sig = cursor.split(".")
    assert paging.verify(SECRET, cursor) is not None
    others = [*_respelled(body), body + "==", body[:3] + "+" + body[4:]]
    assert others and all(paging.verify(SECRET, other + "." + sig) is None for other in others)
    assert client.get("/v1/stores/nearby", query_string={**q, "cursor": others[0] + "." + sig}).status_code == 400


def test_a_well_formed_token_with_a_signature_of_its_own_is_rejected(shop, redis_url):
    """A client that has read the token format still cannot mint tokens: each field as the
    service writes it, a real store, any signature but the service's. (The altered token
    above fails on its store as well; these fail on the signature alone.)"""
    _, client = shop
    real = shown(client, "n100")
    fields = _payload(real)
    forged = []
    for rank in (2, 3, 4):  # other ranks of the same store, viewer and issue time
        fields[4] = str(rank)
        forged.append(_b64("|".join(fields).encode()) + "." + _b64(bytes([rank]) * 12))
    sig = real.split(".")[1]
    fields[4] = "2"
    forged.append(_b64("|".join(fields).encode()) + "." + sig)  # the real token's signature, moved
    batch = [_click(event_id=f"forged-{i}", impression_token=t) for i, t in enumerate(forged)]
    out = client.post("/v1/events", json={"events": batch}).get_json()
    assert out["accepted"] == 0, out
    assert all("altered" in r["errors"][0]["message"] for r in out["results"]), out
    assert _stats(client, redis_url)["clicks"] == 0
    ok = client.post("/v1/events", json={"events": [_click(event_id="real", impression_token=real)]}).get_json()
    assert ok["accepted"] == 1 and _stats(client, redis_url)["clicks"] == 1


@pytest.mark.parametrize(
    "field, value",
    [(0, "i0"), (1, "z"), (3, "soon"), (4, "-1"), (4, "1.5")],
    ids=["old version", "unknown surface", "issue time not a number", "negative rank", "fractional rank"],
)
def test_a_signed_token_in_another_shape_is_refused_not_a_crash(field, value):
    """Tokens the service signed in some other format (an older version, a surface it does
    not know, fields that are not whole numbers) are refused with a reason: the signature
    alone does not make a token readable."""
    import hashlib
    import hmac

    from app.domain import impression_tokens

    now = 1_700_000_000
    good = impression_tokens.Signer(SECRET, "nearby", "v0123456789abcdef", now).token("n100", 1)
    fields = _payload(good)
    assert not isinstance(impression_tokens.verify(SECRET, good, now), str)
    fields[field] = value
    payload = "|".join(fields).encode()
    mac = hmac.new(impression_tokens._token_key(SECRET), payload, hashlib.sha256).digest()[:12]
    got = impression_tokens.verify(SECRET, _b64(payload) + "." + _b64(mac), now)
    assert got == "not an impression token issued by this service"


def test_an_event_must_match_the_deal_and_the_time_its_token_names(shop, redis_url):
    """A token binds its deal and when it was shown: a click on another deal of the same
    store, or one dated before the item was on screen, is refused field by field."""
    from app.domain import impression_tokens

    _, client = shop
    issued = int(FIXED_NOW.timestamp())
    retired = impression_tokens.Signer(SECRET, "recommended", "v0123456789abcdef", issued).token("n100", 1, "d-old")
    other_deal = client.post(
        "/v1/events", json={"events": [_click(event_id="deal", deal_id="d-a", impression_token=retired)]}
    ).get_json()
    assert other_deal["accepted"] == 0
    assert other_deal["results"][0]["errors"] == [
        {"field": "impression_token", "message": "names another deal than 'd-a'"}
    ]
    early = {**_click(event_id="early", impression_token=shown(client, "n100")), "ts": _iso(FIXED_NOW - DAY / 24)}
    before = client.post("/v1/events", json={"events": [early]}).get_json()
    assert before["accepted"] == 0
    assert before["results"][0]["errors"] == [{"field": "ts", "message": "before the item was shown"}]
    assert _stats(client, redis_url)["clicks"] == 0
    fine = client.post("/v1/events", json={"events": [{**early, "ts": _iso(FIXED_NOW)}]}).get_json()
    assert fine["accepted"] == 1  # the same event, dated when it was shown


def test_an_event_id_twice_in_one_batch_is_refused_the_second_time(shop, redis_url):
    _, client = shop
    batch = [_click(event_id="same", impression_token=shown(client, store)) for store in ("n100", "n250")]
    out = client.post("/v1/events", json={"events": batch}).get_json()
    assert out["accepted"] == 1 and out["rejected"] == 1, out
    assert out["results"][1]["errors"] == [{"field": "event_id", "message": "repeated within this batch"}]
    assert _stats(client, redis_url, "n100")["clicks"] == 1 and _stats(client, redis_url, "n250")["clicks"] == 0


def test_a_token_counts_once_per_event_type(shop, redis_url):
    _, client = shop
    token = shown(client, "n100")
    first = client.post("/v1/events", json={"events": [_click(event_id="a", impression_token=token)]}).get_json()
    again = client.post("/v1/events", json={"events": [_click(event_id="b", impression_token=token)]}).get_json()
    retry = client.post("/v1/events", json={"events": [_click(event_id="a", impression_token=token)]}).get_json()
    directions = {**_click(event_id="c", impression_token=token), "type": "directions"}
    other_type = client.post("/v1/events", json={"events": [directions]}).get_json()
    assert (first["accepted"], again["rejected"], retry["duplicates"], other_type["accepted"]) == (1, 1, 1, 1)
    assert "already used" in again["results"][0]["errors"][0]["message"]
    totals = _stats(client, redis_url)
    assert (totals["clicks"], totals["directions"]) == (1, 1)


def test_a_token_is_valid_for_24_hours(shop, tmp_path, redis_url):
    app, client = shop
    token = shown(client, "n100")
    later = create_app(
        app_config(
            tmp_path / "later",
            redis_url,
            CATALOGUE=app.config["CATALOGUE"],
            SECRET_KEY=SECRET,
            NOW=lambda: FIXED_NOW + pd.Timedelta(hours=25),
        )
    ).test_client()
    ev = {**_click(impression_token=token), "ts": _iso(FIXED_NOW + pd.Timedelta(hours=25))}
    body = later.post("/v1/events", json={"events": [ev]}).get_json()
    assert body["rejected"] == 1 and "expired" in body["results"][0]["errors"][0]["message"]


def test_unique_viewers_come_from_what_the_service_saw_not_a_header(shop, redis_url):
    """Thirty GETs, each with its own X-Client-Id, once gave 31 unique viewers."""
    app, client = shop
    app.config["STATS_PRIVACY_THRESHOLD"] = 1
    for i in range(30):
        client.get("/v1/stores/n100", headers={"X-Client-Id": f"fake-{i}"})
    app.extensions["o2o"].impressions.flush()
    assert _stats(client, redis_url)["unique_viewers"] == 1
    for i in range(3):  # three people: three addresses
        client.get("/v1/stores/n100", environ_base={"REMOTE_ADDR": f"10.9.0.{i}"})
    app.extensions["o2o"].impressions.flush()
    assert _stats(client, redis_url)["unique_viewers"] == 4


def test_a_redemption_is_attributed_to_the_impression_it_came_from(shop, redis_url):
    import json

    _, client = shop
    deals = client.get("/v1/deals/recommended", query_string={"lat": LAT0, "lon": LON0}).get_json()["deals"]
    five = next(d for d in deals if d["deal_id"] == "d-five")
    key = _merchant(redis_url)
    wrong = _redemption(rid="w", deal_id="d-a", impression_token=five["impression_token"])
    assert _problem(client.post("/v1/merchants/m-1/redemptions", json=wrong, headers=key))["errors"][0]["field"] == (
        "impression_token"
    )
    right = _redemption(rid="r", deal_id="d-five", store_id="n250", impression_token=five["impression_token"])
    assert client.post("/v1/merchants/m-1/redemptions", json=right, headers=key).status_code == 201
    (_id, fields), *_ = connect(redis_url).xrevrange(keys.EVENTS, count=1)
    body = json.loads(fields[b"body"])
    assert (body["surface"], body["rank"], body["type"]) == ("recommended", deals.index(five) + 1, "redeem")


# ------------------------------------------------------------------ 10. the smaller findings
def test_open_at_far_in_the_past_is_400_not_500(shop):
    _, client = shop
    for when in ("0001-01-01T00:00:00", "9999-12-31T23:59:59+14:00"):
        r = client.get("/v1/stores/nearby", query_string={"lat": LAT0, "lon": LON0, "open_at": when})
        assert _problem(r)["errors"][0]["field"] == "open_at"


def test_the_dashboard_cannot_be_framed_but_the_widget_can(shop):
    _, client = shop
    dashboard = client.get("/merchant")
    assert "frame-ancestors 'none'" in dashboard.headers["Content-Security-Policy"]
    assert dashboard.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors *" in client.get("/widget/map").headers["Content-Security-Policy"]


def test_a_rejected_event_id_is_not_echoed_at_full_length(shop):
    _, client = shop
    body = client.post("/v1/events", json={"events": [{"event_id": "x" * 1500, "type": "click"}]}).get_json()
    assert len(body["results"][0]["event_id"]) <= 128


def test_a_key_is_revoked_by_its_id_without_the_plaintext(shop, redis_url, capsys):
    import redis

    from scripts import merchants

    _, client = shop
    url = redis_url
    assert merchants.main(["create-key", "m-1", "--redis-url", url]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    key, kid = lines[-1], lines[0].split()[1]
    auth = {"Authorization": f"Bearer {key}"}
    q = {"from": "2026-11-25", "to": "2026-11-25"}
    assert client.get("/v1/merchants/m-1/stats", query_string=q, headers=auth).status_code == 200
    assert merchants.main(["list-keys", "m-1", "--redis-url", url]) == 0
    assert kid in capsys.readouterr().out and key not in redis.Redis.from_url(url).hkeys(keys.API_KEYS)[0].decode()
    assert merchants.main(["revoke-key", kid, "--redis-url", url]) == 0
    _problem(client.get("/v1/merchants/m-1/stats", query_string=q, headers=auth), 401)


# ------------------------------------------------------------------ 6. rate limits that hold
@pytest.fixture
def limited(tmp_path, redis_url):
    """A server with small limits: 5 a second per address, 8 per verified key; one proxy in front."""
    hand_placed().to_csv(tmp_path / "stores.csv", index=False)
    app = create_app(
        app_config(
            tmp_path,
            redis_url,
            CATALOGUE=str(tmp_path / "stores.csv"),
            SECRET_KEY=SECRET,
            RATE_LIMIT_ANON=5,
            RATE_LIMIT_KEY=8,
            TRUSTED_PROXIES=1,
        )
    )
    return app, app.test_client()


def _within_one_second(fn):
    """Run ``fn`` at the start of a fresh second (the limiter's windows are whole seconds)."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)
    return fn()


def test_a_made_up_bearer_gets_no_bucket_of_its_own(limited):
    """Any made-up 'Authorization: Bearer …' once got a fresh 200/s bucket."""
    _, client = limited

    def burst():
        return [
            client.get("/v1/stores/n100", headers={"Authorization": f"Bearer made-up-{i}"}).status_code
            for i in range(10)
        ]

    codes = _within_one_second(burst)
    assert codes.count(429) >= 5  # the made-up keys all count against the address


def test_the_address_comes_through_trusted_proxies_only(limited):
    """Behind a proxy every client shared one address; X-Forwarded-For from the proxy is believed."""
    _, client = limited

    def two_clients():
        out = {}
        for who in ("10.1.1.1", "10.2.2.2"):
            out[who] = [client.get("/v1/stores/n100", headers={"X-Forwarded-For": who}).status_code for _ in range(5)]
        return out

    codes = _within_one_second(two_clients)
    assert codes == {"10.1.1.1": [200] * 5, "10.2.2.2": [200] * 5}  # 5 each: two people, not one address


def test_events_count_one_by_one(limited):
    """One address could post 50,000 events a second in batches of 500."""
    _, client = limited
    batch = [{"event_id": f"e-{i}", "type": "click", "ts": _iso(FIXED_NOW), "store_id": "n100"} for i in range(20)]
    r = _within_one_second(lambda: client.post("/v1/events", json={"events": batch}))
    assert _problem(r, 429)["detail"].startswith("Too many requests")


def test_a_verified_key_gets_its_own_bucket(limited, redis_url):
    app, client = limited
    key = _merchant(redis_url)
    q = {"from": "2026-11-25", "to": "2026-11-25"}
    path = "/v1/merchants/m-1/stats/viewers"
    codes = _within_one_second(lambda: [client.get(path, query_string=q, headers=key).status_code for _ in range(10)])
    assert codes == [200] * 8 + [429] * 2


def test_many_signed_in_users_from_one_address_share_its_bucket(limited):
    """Each verified caller has a bucket, and its address still counts them all (at the
    larger of the two limits): accounts are cheap, so two users' tokens from one address
    get 8 a second between them, not 8 each."""
    app, client = limited
    users = [_token(app, "u-one"), _token(app, "u-two")]
    q = {"lat": LAT0, "lon": LON0, "limit": 1}
    codes = _within_one_second(
        lambda: [client.get("/v1/stores/nearby", query_string=q, headers=users[i % 2]).status_code for i in range(12)]
    )
    assert codes == [200] * 8 + [429] * 4


def test_recommended_deals_count_their_hit_in_the_user_state_read(limited, monkeypatch):
    """The deals view sends its rate-limit hit with its own Redis read, not in a round trip
    before it: still 8 a second for a signed-in user (5 per address without), refused
    requests count too, and no deals request makes the limiter's own round trip."""
    from app.http import ratelimit

    app, client = limited
    path, here = "/v1/deals/recommended", {"lat": LAT0, "lon": LON0}
    own_trips: list[list[str]] = []
    count_hits = ratelimit.count_hits
    monkeypatch.setattr(ratelimit, "count_hits", lambda r, who, *a: own_trips.append(who) or count_hits(r, who, *a))
    user = {"X-Forwarded-For": "10.3.3.3", **as_user(app, "u-rate")}
    codes = _within_one_second(
        lambda: [client.get(path, query_string=here, headers=user).status_code for _ in range(10)]
    )
    assert codes == [200] * 8 + [429] * 2
    assert own_trips == []  # every hit rode on the user-state read
    assert client.get("/v1/stores/n100").status_code == 200 and len(own_trips) == 1  # other views: their own

    def bad_then_good():
        bad = {"X-Forwarded-For": "10.4.4.4"}
        codes = [client.get(path, query_string={"lat": 600, "lon": LON0}, headers=bad).status_code for _ in range(5)]
        return codes + [client.get(path, query_string=here, headers=bad).status_code]

    assert _within_one_second(bad_then_good) == [400] * 5 + [429]


def test_a_server_error_in_a_deals_request_counts_but_stays_a_500(limited, monkeypatch):
    """A deals request that fails before its Redis read is counted on the way out, and over
    the limit it stays the 500 it was (its log line is the one to see), not a 429."""
    import app.views.deals as view

    _, client = limited
    path, here, who = "/v1/deals/recommended", {"lat": LAT0, "lon": LON0}, {"X-Forwarded-For": "10.5.5.5"}

    def broken(*args, **kwargs):
        raise RuntimeError("ranking broke")

    def burst():
        with monkeypatch.context() as patched:
            patched.setattr(view, "rank_deals", broken)
            codes = [client.get(path, query_string=here, headers=who).status_code for _ in range(6)]
        return codes + [client.get(path, query_string=here, headers=who).status_code]

    assert _within_one_second(burst) == [500] * 6 + [429]  # limit 5: the six failures counted


def _client_whose_redis_died(tmp_path, **settings):
    """A test client of an app over the hand-placed stores whose Redis was killed after it started."""
    from app.storage.embedded import start_on_port

    proc, port = start_on_port(data_dir=str(tmp_path / "r"))
    hand_placed().to_csv(tmp_path / "stores.csv", index=False)
    url = f"redis://127.0.0.1:{port}/0"
    app = create_app(app_config(tmp_path, url, CATALOGUE=str(tmp_path / "stores.csv"), REDIS_TIMEOUT_S=0.2, **settings))
    proc.kill()
    proc.wait()
    return app.test_client()


@pytest.mark.parametrize(
    "path, query",
    [("/v1/stores/n100", {}), ("/v1/deals/recommended", {"lat": LAT0, "lon": LON0})],
    ids=["own-round-trip", "deals-hit-in-its-read"],
)
def test_with_redis_down_a_per_process_limit_holds(tmp_path, path, query):
    """The limiter failed open when Redis was gone (the deals view's hit, which rides on its
    own read, is counted by the per-process limiter too)."""
    client = _client_whose_redis_died(tmp_path, RATE_LIMIT_ANON=5)
    codes = _within_one_second(lambda: [client.get(path, query_string=query).status_code for _ in range(8)])
    assert codes.count(429) >= 2 and set(codes) <= {200, 429}


def test_a_flood_of_addresses_cannot_grow_or_reset_the_per_process_limiter(tmp_path, monkeypatch):
    """With Redis out, each worker counted every (address, second) it saw and pruned only past
    seconds: a flood from many addresses within one second grew the table without bound. Now
    a full table refuses newcomers until the next second, and keeps the counts it holds."""
    from app.http import ratelimit

    monkeypatch.setattr(ratelimit, "_local", {})
    monkeypatch.setattr(ratelimit, "LOCAL_WINDOWS_MAX", 4)
    client = _client_whose_redis_died(tmp_path, RATE_LIMIT_ANON=3, TRUSTED_PROXIES=1)

    def get(address):
        return client.get("/v1/stores/n100", headers={"X-Forwarded-For": address}).status_code

    client.get("/livez")  # exempt: nothing counted
    get("10.9.9.9")  # the first request meets the dead Redis and opens the breaker

    def flood():
        steady = [get("10.0.0.1"), get("10.0.0.1")]
        newcomers = [get(f"10.1.0.{i}") for i in range(10)]
        size = len(ratelimit._local)
        return steady + [get("10.0.0.1"), get("10.0.0.1")], newcomers, size

    steady, newcomers, size = _within_one_second(flood)
    assert size <= 4
    # 10.9.9.9 may hold a window of this second too (if it fell in it): 2 or 3 newcomers fit.
    assert newcomers[:2] == [200, 200] and set(newcomers[3:]) == {429}
    assert steady == [200, 200, 200, 429]  # its count survived the flood: the limit is 3
    time.sleep(1.0 - time.time() % 1.0 + 0.01)
    assert get("10.2.0.1") == 200  # a new second: past windows make room


def test_verified_merchant_keys_are_remembered_within_a_bound(limited, redis_url, monkeypatch):
    """Each worker remembers the merchant keys it verified, not the made-up ones, and no more
    than its bound of them."""
    from app.http import ratelimit

    _, client = limited
    monkeypatch.setattr(ratelimit, "_known", {})
    monkeypatch.setattr(ratelimit, "KNOWN_KEYS_MAX", 2)
    sizes = []
    for i in range(5):
        header = _merchant(redis_url)  # a fresh key of m-1 each time
        path, q = "/v1/merchants/m-1/stats", {"from": "2026-11-25", "to": "2026-11-25"}
        assert client.get(path, query_string=q, headers={**header, "X-Forwarded-For": f"10.7.0.{i}"}).status_code == 200
        sizes.append(len(ratelimit._known))
    assert sizes[:2] == [1, 2] and max(sizes) <= 2
    made_up = {"Authorization": "Bearer mk_made-up", "X-Forwarded-For": "10.7.1.1"}
    assert client.get(path, query_string=q, headers=made_up).status_code == 401
    assert len(ratelimit._known) == sizes[-1]


# ------------------------------------------------------------------ 7. Redis bounded
def test_viewer_cells_are_bounded_per_store_day(shop, redis_url):
    """A viewer-cell hash gained a field for every query cell on Earth, kept 410 days."""
    import numpy as np

    app, _ = shop
    svc = app.extensions["o2o"]
    rng = np.random.default_rng(7)
    for lat, lon in zip(rng.uniform(-60, 70, 300), rng.uniform(-180, 180, 300)):
        svc.impressions.log("nearby", "v", float(lat), float(lon), [("n100", 1, None)], FIXED_NOW)
    for _ in range(3):  # the flusher thread's job, done now
        svc.impressions.flush()
    fields = connect(redis_url).hgetall(keys.vc("n100", "2026-11-25"))
    assert sum(int(v) for v in fields.values()) == 300
    assert len(fields) <= 5  # the far ones in one field ("far"), plus a few near cells
    assert fields[b"far"] >= b"290"


def test_user_state_expires(shop, redis_url):
    """User sets had no TTL: every user ever seen stayed in Redis forever."""

    app, client = shop
    order = _redemption(rid="ttl-1", user_token=_token(app, "u-ttl")["Authorization"][7:])
    assert client.post("/v1/merchants/m-1/redemptions", json=order, headers=_merchant(redis_url)).status_code == 201
    r = connect(redis_url)
    assert 0 < r.ttl(keys.user_stores("u-ttl")) <= keys.USER_TTL_S


def test_the_embedded_redis_is_bounded_and_health_warns(tmp_path):
    hand_placed().to_csv(tmp_path / "stores.csv", index=False)
    app = create_app(app_config(tmp_path, None, CATALOGUE=str(tmp_path / "stores.csv"), REDIS_MAXMEMORY_MB=64))
    svc = app.extensions["o2o"]
    try:
        assert svc.redis.config_get("maxmemory")["maxmemory"] == str(64 * 2**20)
        assert svc.redis.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        memory = app.test_client().get("/healthz").get_json()["redis_memory"]
        assert memory["max_mb"] == 64 and memory["near_full"] is False
    finally:
        svc.redis_server.stop()


def test_event_text_is_capped(shop):
    _, client = shop
    review = {"event_id": "long", "type": "review", "ts": _iso(FIXED_NOW), "store_id": "n100", "text": "x" * 1600}
    body = client.post("/v1/events", json={"events": [review]}).get_json()
    assert body["results"][0]["errors"][0]["field"] == "text"


@pytest.mark.slow  # 100,000 events through the app
def test_100k_hostile_events_stay_inside_the_caps_and_every_acknowledged_one_is_kept(tmp_path):
    """Max-length ids and text, every engagement type, into a Redis capped at 16 MB: it fills."""
    import redis

    from app.domain.impression_tokens import Signer
    from app.storage.embedded import start_on_port

    proc, port = start_on_port(data_dir=str(tmp_path / "r"))
    url = f"redis://127.0.0.1:{port}/0"
    r = redis.Redis.from_url(url)
    r.config_set("maxmemory", "16mb")
    r.config_set("maxmemory-policy", "noeviction")
    hand_placed().to_csv(tmp_path / "stores.csv", index=False)
    app = create_app(
        app_config(tmp_path, url, CATALOGUE=str(tmp_path / "stores.csv"), SECRET_KEY=SECRET, STREAM_MAXLEN=5000)
    )
    client = app.test_client()
    sign = Signer(SECRET, "nearby", "attacker", int(FIXED_NOW.timestamp()))
    kinds = ("click", "detail_view", "directions", "call", "website")
    acked, statuses = [], []
    try:
        for b in range(200):
            batch = []
            for j in range(100):
                token = sign.token("n100", b * 100 + j + 1)
                for kind in kinds:
                    eid = f"{b}-{j}-{kind}-".ljust(128, "x")
                    batch.append(
                        {
                            "event_id": eid,
                            "type": kind,
                            "ts": _iso(FIXED_NOW),
                            "impression_token": token,
                            "anon_id": "a" * 128,
                            "text": "t" * 500,
                        }
                    )
            resp = client.post("/v1/events", json={"events": batch})
            statuses.append(resp.status_code)
            if resp.status_code == 200:
                acked += [x["event_id"] for x in resp.get_json()["results"] if x["status"] != "rejected"]
        info = r.info("memory")
        assert info["used_memory"] <= 1.02 * info["maxmemory"]
        assert set(statuses) <= {200, 503} and 503 in statuses  # full means 503, never a 500
        assert r.xlen(keys.EVENTS) <= 5000 + 200  # trimmed by length (approximately, in whole nodes)
        pipe = r.pipeline(transaction=False)
        for eid in acked:
            pipe.exists(keys.event_claim("n100", eid))
        assert all(pipe.execute())  # every acknowledged event is kept
        counted = int(r.hget(keys.sd("n100", "2026-11-25"), "ev:click") or 0)
        assert counted >= sum(e.split("-")[2] == "click" for e in acked) > 1000
    finally:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------ 8. the embedded Redis is supervised
def test_a_killed_embedded_redis_is_back_within_5_s_with_its_data(tmp_path):
    """After the embedded redis-server was killed, events and stats answered 503 until
    gunicorn restarted."""
    import os
    import signal

    from app.storage.embedded import _read_pid

    hand_placed().to_csv(tmp_path / "stores.csv", index=False)
    app = create_app(app_config(tmp_path, None, CATALOGUE=str(tmp_path / "stores.csv"), SECRET_KEY=SECRET))
    svc = app.extensions["o2o"]
    client = app.test_client()
    try:
        before = {**_click(event_id="before"), "impression_token": shown(client, "n100")}
        assert client.post("/v1/events", json={"events": [before]}).get_json()["accepted"] == 1
        time.sleep(1.1)  # appendfsync everysec
        os.kill(_read_pid(os.path.join(svc.redis_server.data_dir, "redis.pid")), signal.SIGKILL)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            time.sleep(0.2)
            if client.get("/healthz").get_json()["redis"] == "up":
                break
        assert time.monotonic() - t0 < 5.0
        after = {**_click(event_id="after"), "impression_token": shown(client, "n250")}
        assert client.post("/v1/events", json={"events": [after]}).get_json()["accepted"] == 1
        assert svc.redis.exists(keys.event_claim("n100", "before"))  # the append-only file kept it
    finally:
        svc.redis_server.stop()
