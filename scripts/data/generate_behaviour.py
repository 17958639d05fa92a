"""Generate seeded users, deals, orders and reviews on top of a store catalogue.

    python -m scripts.data.generate_behaviour [--stores data/stores_helsinki.csv] [--users 3000] [--days 120]
                                         [--seed 0] [--out data/generated/helsinki]

Writes users.csv, deals.csv, orders.csv, reviews.csv (the canonical interaction files)
and, under hidden/, the generator's secret parameters (store quality, homes, tastes) for
analysis only: nothing in recommender/ reads that folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta

from geo_index import LoadError, load_catalogue
from recommender.generator import BehaviourConfig, generate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="data/stores_helsinki.csv")
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--orders-per-month", type=float, default=5.0)
    parser.add_argument(
        "--start",
        default=None,
        help="first simulated day (default: --days before today in UTC, so the data end now and "
        "the newest deals are running)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="data/generated/helsinki")
    args = parser.parse_args(argv)
    if not 1 <= args.users <= 2_000_000 or not 1 <= args.days <= 3660:
        parser.error("--users must be 1..2,000,000 and --days 1..3660")
    try:
        stores, report = load_catalogue(args.stores, strict=False, default_timezone="UTC")
    except LoadError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not report.ok:
        print(report.summary(), file=sys.stderr)
    t0 = time.perf_counter()
    # The UTC date, as the service's clock: a machine far east of UTC must not make orders in the future.
    start = args.start or (datetime.now(UTC).date() - timedelta(days=args.days)).isoformat()
    cfg = BehaviourConfig(
        n_users=args.users, days=args.days, start=start, seed=args.seed, orders_per_user_month=args.orders_per_month
    )
    b = generate(stores, cfg)
    os.makedirs(os.path.join(args.out, "hidden"), exist_ok=True)
    for name in ("users", "deals", "orders", "reviews"):
        getattr(b, name).to_csv(os.path.join(args.out, f"{name}.csv"), index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    for name, frame in b.hidden.items():
        frame.to_csv(os.path.join(args.out, "hidden", f"{name}.csv"), index=False)
    print(
        f"{len(b.users)} users, {len(b.deals)} deals, {len(b.orders)} orders, {len(b.reviews)} reviews "
        f"-> {args.out} in {time.perf_counter() - t0:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
