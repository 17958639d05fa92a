"""How high can a ranker go on generated behaviour? A Monte Carlo oracle for `repeat`.

    python -m scripts.generator_oracle [--users 1000] [--runs 50] [--no-deals] [--json FILE]
        [--taste-from-orders ALPHA] [--no-places]
        [--generated data/generated/helsinki] [--stores data/stores_helsinki.csv]
        [--days 120] [--orders-per-month 5] [--world-seed 0] [--start FIRST_DAY]

The Helsinki orders that set-up writes come from ``recommender.generator``
(``scripts.data.generate_behaviour``, whose defaults these flags repeat), so its hidden
world (each user's tastes, home, workplace, price level and walking scale, each store's
quality, each deal's lift) can be rebuilt exactly: the same catalogue, size and seed. The
first day is the first order's unless ``--start`` says otherwise. For every user, the oracle
simulates the generator forward from the user's TRAIN history (the evaluate command's
``--split per-user-time:0.8``) as many times as ``--runs``: as many orders as the user's
TEST holds, at times drawn as the generator draws them after the last TRAIN order. It
ranks stores by the share of runs in which they appear, and scores NDCG@10 against TEST
as ``--protocol repeat`` does, beside ``most_frequent`` on the same users, the oracle's
order of the user's known stores alone (new stores after them, by popularity), and the
known stores' visits weighted by how due their category is (the generator's true
repurchase intervals, with 0, 5 or 10 days to the next order): a ranker that knew recency
perfectly and nothing else.

Not a model: it knows what no ranker can. It says how much room the data leaves, and
which knowledge makes it: ``--taste-from-orders ALPHA`` swaps each user's true taste over
categories for the category shares of their TRAIN orders (plus ALPHA per category), and
``--no-places`` every store's utility from home and work (distance, price level, quality)
for 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

from geo_index import load_catalogue
from recommender.data import read_table
from recommender.evaluation import evaluate
from recommender.generator import BehaviourConfig, _World
from recommender.training import split_per_user
from scripts.common import emit_json


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="the first N users with TEST orders")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--no-deals", action="store_true", help="simulate as if no deal ran")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--taste-from-orders", type=float, default=None, metavar="ALPHA", help="tastes from TRAIN orders, smoothed"
    )
    parser.add_argument("--no-places", action="store_true", help="no store utility from home and work")
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument("--generated", default="data/generated/helsinki", help="generate_behaviour's --out")
    parser.add_argument("--stores", default="data/stores_helsinki.csv")
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--orders-per-month", type=float, default=5.0)
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument("--start", default=None)
    args = parser.parse_args(argv)

    orders_path = os.path.join(args.generated, "orders.csv")
    hidden_path = os.path.join(args.generated, "hidden", "users.csv")
    if not os.path.exists(hidden_path):
        print(f"{hidden_path} is missing: run python -m scripts.data.generate_behaviour first", file=sys.stderr)
        return 2
    stores, _ = load_catalogue(args.stores, strict=False, default_timezone="UTC")
    hidden = pd.read_csv(hidden_path)
    start = args.start or pd.Timestamp(pd.read_csv(orders_path, usecols=["ts"])["ts"].min()).date().isoformat()
    cfg = BehaviourConfig(
        n_users=len(hidden),
        days=args.days,
        start=start,
        orders_per_user_month=args.orders_per_month,
        seed=args.world_seed,
    )
    world = _World(stores.reset_index(drop=True), cfg, np.random.default_rng(cfg.seed))
    if not np.allclose(hidden["home_lat"], world._users["home"][:, 0]):
        print("the rebuilt world is not the one that made the orders (other --world-seed?)", file=sys.stderr)
        return 2
    deals = world.make_deals()
    written = pd.read_csv(os.path.join(args.generated, "deals.csv"), usecols=["deal_id", "starts_at"])
    starts = deals["starts_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    if deals["deal_id"].tolist() != written["deal_id"].tolist() or starts != written["starts_at"].tolist():
        print("the rebuilt deals are not the ones written (other --days or --start?)", file=sys.stderr)
        return 2
    deal_days = world._deal_index(deals)
    if args.no_deals:
        deal_days = [(np.zeros_like(lift), ids) for lift, ids in deal_days]

    rows, _ = read_table(orders_path, "interactions", strict=False, known_stores=set(stores["store_id"]))
    train, test = split_per_user(rows, 0.2, seed=0, min_items=2)
    pos = {s: i for i, s in enumerate(world.store_ids)}
    popularity = np.bincount(train["store_id"].map(pos), minlength=len(pos)).astype(float)
    after = 0.999 * np.log1p(popularity) / np.log1p(popularity).max()  # below any known store
    world.rng = np.random.default_rng(args.seed)  # the simulations draw from the oracle's own stream
    history = dict(tuple(train.groupby("user_id")))
    held_out = list(test.groupby("user_id"))[: args.users]
    # One row of scores per user and ranking, scored by the evaluation's own metric.
    scores: dict[str, np.ndarray] = {}
    known, relevant = sp.lil_matrix((len(held_out), len(pos))), sp.lil_matrix((len(held_out), len(pos)))
    t0 = time.perf_counter()
    for n, (user, held) in enumerate(held_out):
        past = history[user]
        stores_past, days_past = past["store_id"].map(pos).to_numpy(), _days(past["ts"], world.t0)
        favourites, last = _state(world, stores_past, days_past)
        u = int(user[1:])
        if args.taste_from_orders is not None:
            shares = np.bincount(world.cat_of[stores_past], minlength=len(world.cats)) + args.taste_from_orders
            world._users["taste"][u] = shares / shares.sum()
        hits = _simulate(world, u, favourites, last, days_past.max(), len(held), deal_days, args.runs, args.no_places)
        visits = np.bincount(stores_past, minlength=len(pos)).astype(float)
        rankings = {
            "oracle": hits + 1e-6 * after,
            "oracle_known_stores_only": np.where(visits > 0, 1 + hits, after),
            "most_frequent": visits + after,
        }
        for gap in (0, 5, 10):
            # How due each store's category is gap days after the last order (the generator's rule).
            due = np.clip((days_past.max() + gap - last) / world.interval, 0.05, 1.0)[world.cat_of]
            rankings[f"visits_times_due_{gap}d"] = np.where(visits > 0, 1 + visits * due + 1e-6 * after, after)
        for name, row in rankings.items():
            scores.setdefault(name, np.zeros((len(held_out), len(pos))))[n] = row
        known[n, np.unique(stores_past)] = 1
        relevant[n, [pos[s] for s in held["store_id"]]] = 1
    known, relevant = known.tocsr(), relevant.tocsr()
    out = {
        name: evaluate(lambda rows, m=m: m[rows], known, relevant, k=10, exclude_train=False)["ndcg"]
        for name, m in scores.items()
    }
    knows = {"taste_from_orders": args.taste_from_orders, "places": not args.no_places}
    result = {"users": len(held_out), "runs": args.runs, "deals": not args.no_deals, **knows, **out}
    emit_json({**result, "seconds": round(time.perf_counter() - t0, 1)}, args.json)
    return 0


def _days(ts: pd.Series, t0: pd.Timestamp) -> np.ndarray:
    return ((pd.to_datetime(ts, utc=True) - t0).dt.total_seconds() / 86400).to_numpy()


def _state(world, stores_past, days_past) -> tuple[dict, np.ndarray]:
    """What the generator keeps of a user's orders (``_World.remember``, replayed in time
    order): visits per store per category (the favourites) and each category's last order day."""
    favourites: dict[int, dict[int, int]] = {}
    last = np.full(len(world.cats), -1e9)
    for i in np.argsort(days_past, kind="stable").tolist():
        world.remember(int(stores_past[i]), float(days_past[i]), last, favourites)
    return favourites, last


def _simulate(world, u, favourites0, last0, after, n_orders, deal_days, runs, no_places=False) -> np.ndarray:
    """Per store, the share of ``runs`` in which the user orders there at least once in
    ``n_orders`` orders after day ``after``, chosen by the generator's own rules (drawn
    from ``world.rng``); ``no_places``: as if every store were as good from anywhere."""
    flat = np.zeros(len(world.store_ids))
    base = {a: flat if no_places else world._utility(u, world._users[a][u]) for a in ("home", "work")}
    hits = np.zeros(len(world.store_ids))
    for _ in range(runs):
        favourites = {c: dict(d) for c, d in favourites0.items()}
        last, seen = last0.copy(), set()
        for when in world.order_times(n_orders, after):
            s, _deal = world.next_order(u, when, base, last, favourites, deal_days)
            if s >= 0:
                seen.add(s)
        for s in seen:
            hits[s] += 1
    return hits / runs


if __name__ == "__main__":
    sys.exit(main())
