"""End to end: serve, record traffic, export, retrain, hot-reload, and watch lists move.

    python -m scripts.demo.loop [--users 5] [--category clothes]

1. Starts gunicorn (2 workers, 127.0.0.1, a fresh embedded Redis under a temp folder) on
   the bundled catalogue, deals and the newest model artifact.
2. Five new users near Helsinki centre look at their deal lists (they are unknown to the
   model: popular nearby), then order and redeem repeatedly at stores of one category
   and review them 5 stars: orders through the stores' redemptions endpoint (as their points
   of sale would), reviews through POST /v1/events signed in.
3. Exports the events, retrains on base data + events, activates the new version through
   the admin endpoint, and waits until /healthz reports it (no restart).
4. Prints each user's top deals before and after, and the share of that category.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

import pandas as pd

from app.storage.embedded import free_port
from scripts import export_events
from scripts import train as train_cmd
from scripts.bench.harness import request, start_gunicorn
from scripts.users import token

LAT, LON = 60.1699, 24.9384
ADMIN = "demo-admin-key"


def call(port, method, path, body=None, headers=None):
    status, data, _headers = request(port, method, path, body, headers)
    return status, data


def top_deals(port, user_token, k=20):
    status, body = call(
        port,
        "GET",
        "/v1/deals/recommended?" + urlencode({"lat": LAT, "lon": LON, "limit": k, "radius_m": 3000}),
        None,
        {"Authorization": f"Bearer {user_token}"} if user_token else None,
    )
    assert status == 200, body
    return body["deals"], body["model_version"]


def _best_rank(deals, stores) -> int:
    ranks = [i + 1 for i, d in enumerate(deals) if d["store_id"] in stores]
    return min(ranks) if ranks else len(deals) + 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument(
        "--category",
        default=None,
        help="category the users take to (default: the one with the most running deals within 3 km)",
    )
    parser.add_argument("--orders-per-user", type=int, default=25)
    args = parser.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    work = tempfile.mkdtemp(prefix="o2o-demo-")
    artifacts = os.path.join(work, "artifacts")
    shutil.copytree(os.path.join(root, "artifacts"), artifacts)
    env = {
        "O2O_DATA_DIR": os.path.join(work, "var"),
        "O2O_ARTIFACTS": artifacts,
        "O2O_ADMIN_KEY": ADMIN,
        "O2O_MODEL_CHECK_S": "1",
    }
    port = free_port()
    proc, startup = start_gunicorn(port, env)
    try:
        print(f"service up in {startup:.1f} s on 127.0.0.1:{port}")
        users = [f"demo-{uuid.uuid4().hex[:6]}" for _ in range(args.users)]
        tokens = {u: token(u, environ={**os.environ, **env}) for u in users}
        before = {u: top_deals(port, tokens[u]) for u in users}
        version0 = before[users[0]][1]
        category = args.category or pd.Series([d["category"] for d in top_deals(port, None, 50)[0]]).mode().iat[0]
        _, cat_deals = call(
            port,
            "GET",
            "/v1/deals/recommended?"
            + urlencode({"lat": LAT, "lon": LON, "limit": 50, "radius_m": 3000, "category": category}),
        )
        targets = [d for d in cat_deals["deals"]][:6]
        print(f"model {version0}; the users take to '{category}' ({len(targets)} stores with deals)")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        owner = {d["store_id"]: call(port, "GET", f"/v1/stores/{d['store_id']}")[1]["merchant_id"] for d in targets}
        admin = {"Authorization": f"Bearer {ADMIN}"}  # the platform admin records for every merchant here
        sent = 0
        for u in users:
            # The users' orders, as each store's point of sale records them (with the user's token).
            for i in range(args.orders_per_user):
                d = targets[i % len(targets)]
                order = {"redemption_id": uuid.uuid4().hex, "store_id": d["store_id"], "amount": 20.0, "ts": now}
                order["user_token"] = tokens[u]
                status, body = call(port, "POST", f"/v1/merchants/{owner[d['store_id']]}/redemptions", order, admin)
                assert status == 201, body
                sent += 1
            review = {"event_id": uuid.uuid4().hex, "type": "review", "ts": now, "store_id": targets[0]["store_id"]}
            review.update(rating=5, text="lovely")
            status, body = call(
                port, "POST", "/v1/events", {"events": [review]}, {"Authorization": f"Bearer {tokens[u]}"}
            )
            assert status == 200 and body["rejected"] == 0, body
            sent += body["accepted"]
        print(f"{sent} orders and reviews recorded")
        out = os.path.join(work, "events")
        export_events.main(["--data-dir", env["O2O_DATA_DIR"], "--out", out])
        base = os.path.join(root, "data", "generated", "helsinki")
        t = time.perf_counter()
        train_cmd.main(
            [
                "--orders",
                os.path.join(base, "orders.csv"),
                os.path.join(out, "orders.csv"),
                "--reviews",
                os.path.join(base, "reviews.csv"),
                os.path.join(out, "reviews.csv"),
                "--out",
                artifacts,
            ]
        )
        new_version = sorted(v for v in os.listdir(artifacts) if not v.startswith("."))[-1]
        print(f"retrained in {time.perf_counter() - t:.1f} s -> {new_version}")
        status, body = call(
            port, "POST", "/v1/admin/model/activate", {"version": new_version}, {"Authorization": f"Bearer {ADMIN}"}
        )
        assert status == 200, body
        for _ in range(100):
            if call(port, "GET", "/healthz")[1]["model_version"] == new_version:
                break
            time.sleep(0.2)
        after = {u: top_deals(port, tokens[u]) for u in users}
        print(f"served model: {version0} -> {after[users[0]][1]}")
        mine = {d["store_id"] for d in targets}
        moved = []
        for u in users:
            rb = _best_rank(before[u][0], mine)
            ra = _best_rank(after[u][0], mine)
            moved.append((rb, ra))
            print(
                f"{u}: best rank of a deal at a store they ordered at: {rb} -> {ra}; "
                f"'{category}' deals in top {len(after[u][0])}: "
                f"{sum(d['category'] == category for d in before[u][0])} -> "
                f"{sum(d['category'] == category for d in after[u][0])}"
            )
        mean_b = sum(m[0] for m in moved) / len(moved)
        mean_a = sum(m[1] for m in moved) / len(moved)
        print(
            f"mean best rank of their stores' deals: {mean_b:.1f} before, {mean_a:.1f} after (lower is better; "
            f"{len(before[users[0]][0]) + 1} = not in the list)"
        )
        return 0 if mean_a < mean_b and after[users[0]][1] == new_version else 1
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
