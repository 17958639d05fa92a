"""Generate a co-visitation world: visits from taste communities, where place says nothing.

    python -m scripts.data.community_world [--users 2000] [--stores 5000] [--communities 40]
        [--repeat 0.3] [--seed 0] [--out var/community-world]

The kept-back check-in sets on which a plain user-KNN or a random walk beat the first
ranker are ruled by co-visitation; the bundled Helsinki behaviour and Foursquare NYC are
ruled by place. This world asks how the served ranker does when place carries nothing:

- each store belongs to one of ``--communities`` communities and has a lognormal appeal;
  its coordinates are uniform over a 20 x 20 km box, unrelated to anything;
- each user has a sparse Dirichlet mixture over communities and a lognormal number of
  visits (median 25) at uniform times over 120 days;
- a visit returns to one of the user's earlier stores with probability ``--repeat``;
  otherwise it picks a community from the user's mixture, then a store in it by appeal.

Writes stores.csv and orders.csv (``user_id, store_id, ts``) for
``python -m scripts.evaluate --stores OUT/stores.csv --interactions OUT/orders.csv
--split per-user-time:0.8``. Figures: docs/recommender.md.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pandas as pd

CATEGORIES = np.array(["cafe", "restaurant", "bar", "clothes", "books", "museum", "park", "gym", "bakery", "pub"])


def generate(users: int, stores: int, communities: int, repeat: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    community = rng.integers(0, communities, stores)
    appeal = rng.lognormal(0, 1.2, stores)
    catalogue = pd.DataFrame(
        {
            "store_id": [f"s{i}" for i in range(stores)],
            "name": [f"Store {i}" for i in range(stores)],
            "lat": 40.6 + 0.18 * rng.random(stores),
            "lon": -74.1 + 0.24 * rng.random(stores),
            "category": CATEGORIES[community % len(CATEGORIES)],
        }
    )
    members = [np.flatnonzero(community == k) for k in range(communities)]
    chance = [appeal[m] / appeal[m].sum() if len(m) else m for m in members]
    user_col, store_col, day_col = [], [], []
    for u in range(users):
        mixture = rng.dirichlet(np.full(communities, 0.08))
        n = max(3, int(rng.lognormal(np.log(25), 0.8)))
        seen: list[int] = []
        for day in np.sort(rng.uniform(0, 120, n)):
            if seen and rng.random() < repeat:
                s = seen[rng.integers(len(seen))]
            else:
                k = rng.choice(communities, p=mixture)
                if not len(members[k]):
                    continue
                s = int(members[k][rng.choice(len(members[k]), p=chance[k])])
            seen.append(s)
            user_col.append(f"u{u}")
            store_col.append(f"s{s}")
            day_col.append(day)
    ts = pd.Timestamp("2026-06-01", tz="UTC") + pd.to_timedelta(np.round(np.array(day_col) * 86400), unit="s")
    orders = pd.DataFrame({"user_id": user_col, "store_id": store_col, "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ")})
    return catalogue, orders


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--stores", type=int, default=5000)
    parser.add_argument("--communities", type=int, default=40)
    parser.add_argument("--repeat", type=float, default=0.3, help="chance that a visit returns to a known store")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="var/community-world")
    args = parser.parse_args(argv)
    if not (1 <= args.users <= 1_000_000 and 1 <= args.stores <= 1_000_000 and 1 <= args.communities <= args.stores):
        parser.error("--users and --stores must be 1..1,000,000, and --communities 1..--stores")
    if not 0 <= args.repeat < 1:
        parser.error("--repeat must be in [0, 1)")
    stores, orders = generate(args.users, args.stores, args.communities, args.repeat, args.seed)
    os.makedirs(args.out, exist_ok=True)
    stores.to_csv(os.path.join(args.out, "stores.csv"), index=False)
    orders.to_csv(os.path.join(args.out, "orders.csv"), index=False)
    print(f"{len(orders)} visits of {orders['user_id'].nunique()} users at {orders['store_id'].nunique()} stores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
