"""Replay a few days of generated traffic through the real HTTP API and print a merchant's funnel.

    python -m scripts.demo.stats [--merchant m-unicafe] [--days 3] [--users 300]

Starts gunicorn (2 workers, a fresh embedded Redis), creates a key for the merchant with
``scripts.merchants``, then for each day: users near the merchant's stores search nearby
and ask for deals (impressions, logged by the server), and send the clicks, directions,
calls and orders that follow (``POST /v1/events``, stamped with that day). Impressions
are stamped by the server clock, so they all land on today; events land on their day.
Prints the merchant's daily funnel from GET /v1/merchants/<id>/stats.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import uuid
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import numpy as np
import pandas as pd

from app.storage.embedded import free_port
from scripts import merchants
from scripts.bench.harness import request, start_gunicorn
from scripts.users import token


def _call(port, method, path, body=None, headers=None):
    status, data, _headers = request(port, method, path, body, headers)
    return status, data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchant", default="m-unicafe")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    stores = pd.read_csv("data/stores_helsinki.csv")
    mine = stores[stores["merchant_id"] == args.merchant]
    if mine.empty:
        parser.error(f"no stores of {args.merchant} in data/stores_helsinki.csv")
    data_dir = tempfile.mkdtemp(prefix="o2o-stats-demo-")
    port = free_port()
    proc, _ = start_gunicorn(port, {"O2O_DATA_DIR": data_dir})
    rng = np.random.default_rng(args.seed)
    try:
        out = io.StringIO()
        with redirect_stdout(out):
            merchants.main(["create-key", args.merchant, "--data-dir", data_dir])
        key = out.getvalue().strip().splitlines()[-1]
        today = datetime.now(UTC)
        for d in range(args.days - 1, -1, -1):
            day = today - timedelta(days=d)
            events: dict[str, list] = {}
            for u in range(args.users):
                s = mine.sample(1, random_state=int(rng.integers(1 << 30))).iloc[0]
                lat, lon = s["lat"] + rng.normal(0, 0.004), s["lon"] + rng.normal(0, 0.008)
                user = f"demo-{u}"
                signed_in = {"Authorization": "Bearer " + token(user, data_dir=data_dir)}
                where = urlencode({"lat": round(lat, 6), "lon": round(lon, 6), "limit": 10})
                _, body = _call(port, "GET", "/v1/stores/nearby?" + where, headers=signed_in)
                _call(port, "GET", "/v1/deals/recommended?" + where, headers=signed_in)
                shown = [x["id"] for x in body["stores"] if x["id"] in set(mine["store_id"])]
                for store in shown:
                    ts = (day - timedelta(minutes=int(rng.integers(0, 600)))).strftime("%Y-%m-%dT%H:%M:%SZ")
                    for kind, p in (("click", 0.35), ("directions", 0.1), ("call", 0.03), ("order", 0.08)):
                        if rng.random() < p:
                            ev = {
                                "event_id": uuid.uuid4().hex,
                                "type": kind,
                                "ts": ts,
                                "store_id": store,
                            }
                            if kind == "order":
                                ev["amount"] = round(float(rng.lognormal(2.8, 0.4)), 2)
                            events.setdefault(user, []).append(ev)
            for user, theirs in events.items():  # each user posts their own events, signed in
                signed_in = {"Authorization": "Bearer " + token(user, data_dir=data_dir)}
                for i in range(0, len(theirs), 500):
                    status, res = _call(port, "POST", "/v1/events", {"events": theirs[i : i + 500]}, signed_in)
                    assert status == 200 and res["rejected"] == 0, res
        first = (today - timedelta(days=args.days - 1)).date().isoformat()
        status, stats = _call(
            port,
            "GET",
            f"/v1/merchants/{args.merchant}/stats?" + urlencode({"from": first, "to": today.date().isoformat()}),
            headers={"Authorization": f"Bearer {key}"},
        )
        assert status == 200, stats
        print(f"merchant {args.merchant}: {len(stats['stores'])} stores, {first} .. {today.date()}")
        print(
            f"{'date':<12}{'impr':>7}{'viewers':>9}{'clicks':>8}{'orders':>8}{'amount':>9}{'CTR':>7}"
            f"{'order/click':>12}{'rank':>6}{'local share':>12}"
        )
        for i in range(args.days):
            rows = [s["days"][i] for s in stats["stores"]]
            imp = sum(r["impressions"] for r in rows)
            clicks = sum(r["clicks"] for r in rows)
            orders = sum(r["orders"] for r in rows)
            amount = sum(r["order_amount"] for r in rows)
            viewers = sum(r["unique_viewers"] if isinstance(r["unique_viewers"], int) else 0 for r in rows)
            ranks = [r["rank"]["mean"] for r in rows if r["rank"]["mean"] is not None]
            lreq = sum(r["local_requests"] for r in rows)
            lapp = sum(r["local_appeared"] for r in rows)
            print(
                f"{rows[0]['date']:<12}{imp:>7}{viewers:>9}{clicks:>8}{orders:>8}{amount:>9.2f}"
                f"{(clicks / imp if imp else 0):>7.1%}{(orders / clicks if clicks else 0):>12.1%}"
                f"{(np.mean(ranks) if ranks else float('nan')):>6.1f}{(lapp / lreq if lreq else 0):>12.1%}"
            )
        t = stats["stores"][0]
        headline = {k: t["totals"][k] for k in ("impressions", "unique_viewers", "clicks", "orders")}
        print(
            f"store {t['store_id']} ({t['name']}): totals {json.dumps(headline)}; "
            f"peers ({t['peers']['stores']} same-category stores within {t['peers']['radius_m']:.0f} m): "
            f"median impressions {t['peers']['median'] and t['peers']['median']['impressions']}"
        )
        return 0
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
