"""Evaluate deal lists offline: replay each TEST order that redeemed a deal as a deal-list request.

    python -m scripts.evaluate_deals [--stores data/stores_helsinki.csv] [--data data/generated/helsinki]
        [--split per-user-time:0.8 | --split time:0.8] [--page 20,1,3] [--points stores | hidden]
        [--seed 0] [--threads 1] [--json FILE]

Trains as ``scripts.train`` does (the LightFM hybrid, then the second stage) on the
earlier orders, then ranks the deals on offer at each later redemption
(``recommender.deal_eval``) with:

- ``nearest``: the nearest store's deals first;
- ``discount``: the biggest discount first;
- ``most_frequent``: the user's most visited stores first (then the bigger discount);
- ``served``: the second stage's score of the deal's store, ties to the bigger discount:
  the deal list as ``/v1/deals/recommended`` ranks it.

The request point is each user's most visited earlier store (``--points stores``, what any
data allow), or, on generated data, where the generator had the user at that moment
(``--points hidden``: work on weekdays 9-17 UTC, home otherwise; from
``DATA/hidden/users.csv``), as a phone would report it.

Each also as its pages show it (``<name>_paged``): ``--page LIMIT,PER_STORE,PER_CATEGORY``,
by default the service's (a page of 20, ``DEALS_PER_STORE`` 1, ``DEALS_PER_CATEGORY`` 3).

``per-user-time:F`` holds out each user's last 1 - F of orders, as ``scripts.evaluate``;
``time:F`` cuts every user at one moment (the F quantile of the order times), so that
nothing the model learns comes from the time of the held-out requests (the popularity
of a store during a deal that started later, say). Figures: docs/recommender.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

from geo_index import LoadError, load_catalogue
from recommender import DataError, TrainConfig, interaction_weights, read_table, train
from recommender.deal_eval import deal_cases, evaluate_deal_lists
from recommender.served import fit_from_orders, lightfm_scores
from recommender.training import chosen_feature_weight, split_per_user
from scripts.common import emit_json, split_share

#: The service's pages: a page of 20 (the query's default limit), DEALS_PER_STORE 1 and
#: DEALS_PER_CATEGORY 3 (app/config.py; a test keeps them equal).
SERVICE_PAGES = "20,1,3"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="data/stores_helsinki.csv")
    parser.add_argument("--data", default="data/generated/helsinki", help="folder with orders, reviews and deals")
    parser.add_argument(
        "--split", default="per-user-time:0.8", help="per-user-time:FRACTION or time:FRACTION (the train share)"
    )
    parser.add_argument(
        "--page", default=SERVICE_PAGES, help="LIMIT,PER_STORE,PER_CATEGORY of the pages (default: the service's)"
    )
    parser.add_argument("--points", choices=("stores", "hidden"), default="stores", help="the request points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    kind, share = split_share(parser, args.split, ("per-user-time", "time"))
    if args.threads < 1:
        parser.error("--threads must be positive")
    try:
        limit, per_store, per_category = (int(v) for v in args.page.split(","))
    except ValueError:
        limit = per_store = per_category = 0
    if min(limit, per_store, per_category) < 1:
        parser.error("--page must be three positive whole numbers: LIMIT,PER_STORE,PER_CATEGORY")
    hidden_users = os.path.join(args.data, "hidden", "users.csv")
    if args.points == "hidden" and not os.path.exists(hidden_users):
        parser.error(f"--points hidden needs the generator's {hidden_users}")
    started = time.perf_counter()
    try:
        stores, _ = load_catalogue(args.stores, strict=False, default_timezone="UTC")
        known = set(stores["store_id"])
        orders, _ = read_table(os.path.join(args.data, "orders.csv"), "orders", known_stores=known)
        reviews, _ = read_table(os.path.join(args.data, "reviews.csv"), "reviews", known_stores=known)
        deals, _ = read_table(os.path.join(args.data, "deals.csv"), "deals", known_stores=known)
    except (LoadError, DataError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 2
    if kind == "time":
        cut = orders["ts"].quantile(share)
        fit_orders, test_orders = orders[orders["ts"] < cut], orders[orders["ts"] >= cut]
    else:
        fit_orders, test_orders = split_per_user(orders, 1 - share, seed=args.seed, min_items=2)
    fit_reviews = _reviews_before_cut(reviews, fit_orders)
    cfg = TrainConfig(seed=args.seed, threads=args.threads)
    trained = train(stores, interaction_weights(fit_orders, fit_reviews), fit_reviews, cfg)
    stage = fit_from_orders(stores, fit_orders, fit_reviews, chosen_feature_weight(cfg, trained))
    fitted = time.perf_counter()
    users = list(stage.users)
    lightfm = lightfm_scores(trained, users)
    user_row = {u: i for i, u in enumerate(users)}
    item_col = trained.space.item_index_

    def store_score(user, lat, lon, store_ids, discount, dist):
        """The served path's: the hybrid's scores as the ``lightfm`` feature, then the ranker."""
        row = lightfm(np.array([user_row[user]]))[0]
        pref = np.array([row[item_col[s]] if s in item_col else np.nan for s in store_ids], np.float32)
        return stage.score(stage.features(user, store_ids, pref, lat, lon))

    visits = fit_orders.groupby(["user_id", "store_id"]).size().to_dict()
    rankers = {
        "nearest": lambda u, la, lo, s, disc, dist: -dist,
        "discount": lambda u, la, lo, s, disc, dist: disc * 1e7 - dist,
        "most_frequent": lambda u, la, lo, s, disc, dist: np.array([visits.get((u, x), 0) for x in s], float),
        "served": store_score,
    }
    cases = deal_cases(fit_orders, test_orders, deals)
    points = _stand_in_points(stage) if args.points == "stores" else _hidden_points(hidden_users)
    result = evaluate_deal_lists(cases, deals, stores, points, rankers, pages=(limit, per_store, per_category))
    result.update(
        {
            "split": {"kind": kind, "train_share": share},
            "points": args.points,
            "seconds": {"fit": round(fitted - started, 1), "total": round(time.perf_counter() - started, 1)},
        }
    )
    emit_json(result, args.json)
    return 0


def _stand_in_points(stage) -> dict:
    """Each user's most visited earlier store: the point the ranker's ``point_m`` was
    learned from offline (``Sources.home``)."""
    home = stage.sources.home(np.fromiter(stage.users.values(), np.int64))
    lat, lon = stage.sources.stores.lat, stage.sources.stores.lon
    return {u: (float(lat[h]), float(lon[h])) for u, h in zip(stage.users, home) if h >= 0}


def _hidden_points(users_csv: str):
    """Where the generator put each user at a moment: work on weekdays from 9 to 17 UTC (its
    clock), home otherwise (``recommender.generator``: work at 70 % of those hours)."""
    users = pd.read_csv(users_csv)
    at = {
        u: (h_la, h_lo, w_la, w_lo)
        for u, h_la, h_lo, w_la, w_lo in users[["user_id", "home_lat", "home_lon", "work_lat", "work_lon"]].itertuples(
            index=False
        )
    }

    def point(user, ts):
        if user not in at:
            return None
        h_la, h_lo, w_la, w_lo = at[user]
        t = pd.Timestamp(ts)
        return (w_la, w_lo) if t.weekday() < 5 and 9 <= t.hour < 17 else (h_la, h_lo)

    return point


def _reviews_before_cut(reviews: pd.DataFrame, fit_orders: pd.DataFrame) -> pd.DataFrame:
    """Each user's reviews up to their last TRAIN order: later ones speak of the test period."""
    if reviews is None or not len(reviews) or "ts" not in reviews:
        return reviews
    cut = fit_orders.groupby("user_id")["ts"].max()
    r = reviews[reviews["user_id"].isin(cut.index)]
    return r[r["ts"].to_numpy() <= cut.loc[r["user_id"]].to_numpy()].reset_index(drop=True)


if __name__ == "__main__":
    sys.exit(main())
