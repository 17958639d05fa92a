"""Train the LightFM hybrid and the second-stage ranker; write a versioned artifact folder.

    python -m scripts.train [--stores data/stores_helsinki.csv] [--data data/generated/helsinki]
                            [--orders FILE ...] [--reviews FILE ...] [--out artifacts] [--seed 0] [--threads 1]

Reads the canonical orders and reviews (several files each may be given: the base data
plus exported events), reports bad rows, weights the interactions, trains with early
stopping on a validation split carved from the data, fits the second stage (the served
ranker, ``recommender.served``) on the orders in time with ratings from the reviews, and
prints the new artifact's path as the last line. Deterministic for a given seed with --threads 1, whatever
OMP_NUM_THREADS says (BLAS runs on one thread while fitting: recommender/threads.py); with more threads
LightFM's lock-free (Hogwild) updates make runs differ slightly.
"""

from __future__ import annotations

import argparse
import os
import sys

import pandas as pd

from geo_index import LoadError, load_catalogue
from recommender import DataError, TrainConfig, interaction_weights, read_table, save, train
from recommender.served import fit_from_orders
from recommender.training import chosen_feature_weight


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="data/stores_helsinki.csv")
    parser.add_argument("--data", default="data/generated/helsinki", help="folder with orders.csv and reviews.csv")
    parser.add_argument("--orders", nargs="*", default=None)
    parser.add_argument("--reviews", nargs="*", default=None)
    parser.add_argument("--out", default="artifacts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=TrainConfig.max_epochs)
    parser.add_argument(
        "--min-epochs",
        type=int,
        default=TrainConfig.min_epochs,
        help="at least this many epochs in the final fit, whatever validation chose",
    )
    parser.add_argument("--components", type=int, default=TrainConfig.no_components)
    parser.add_argument("--strict", action="store_true", help="refuse files with any bad row")
    parser.add_argument(
        "--no-second-stage", action="store_true", help="LightFM only: the service ranks with the distance blend"
    )
    args = parser.parse_args(argv)
    if args.threads < 1 or args.max_epochs < 1 or args.components < 1:
        parser.error("--threads, --max-epochs and --components must be positive")
    try:
        stores, rep = load_catalogue(args.stores, strict=False, default_timezone="UTC")
        known = set(stores["store_id"])
        orders = _read_all(args.orders or [os.path.join(args.data, "orders.csv")], "orders", known, args.strict)
        reviews = _read_all(args.reviews or [os.path.join(args.data, "reviews.csv")], "reviews", known, args.strict)
    except (LoadError, DataError) as exc:
        print(exc, file=sys.stderr)
        return 2
    pairs = interaction_weights(orders, reviews)
    cfg = TrainConfig(
        seed=args.seed,
        threads=args.threads,
        max_epochs=args.max_epochs,
        min_epochs=args.min_epochs,
        no_components=args.components,
    )
    trained = train(stores, pairs, reviews, cfg)
    if not args.no_second_stage:
        trained.second_stage = fit_from_orders(stores, orders, reviews, chosen_feature_weight(cfg, trained))
    path = save(trained, args.out)
    print(path)
    return 0


def _read_all(paths, kind, known, strict) -> pd.DataFrame:
    frames = []
    for path in paths:
        frame, report = read_table(path, kind, strict=strict, known_stores=known)
        if not report.ok:
            print(report.summary(), file=sys.stderr)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


if __name__ == "__main__":
    sys.exit(main())
