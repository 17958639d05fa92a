"""Compare recommenders offline on any stores + interactions files.

    python -m scripts.evaluate --stores STORES.csv --train TRAIN.csv --test TEST.csv [--k 10] [--json OUT.json]
    python -m scripts.evaluate --stores STORES.csv --interactions ALL.csv --split per-user-time:0.8 [...]
    python -m scripts.evaluate ... --protocol repeat    # known stores are candidates too
    python -m scripts.evaluate ... --ablation           # served without each feature group

STORES: store_id,lat,lon[,category,tags,price_level,rating]. TRAIN/TEST/ALL:
user_id,store_id[,weight,rating,ts]. For each user with test items, every store not in
that user's training set is ranked; relevance is binary. Prints a table and writes JSON
{"k", "served", "models": {name: {precision, recall, ndcg, cold_ndcg, coverage, ...}}}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from recommender.compare import PROTOCOLS, compare
from recommender.data import DataError, every_row_timed, read_table
from recommender.training import TrainConfig, split_per_user
from scripts.common import split_share

METRICS = ("precision", "recall", "ndcg", "cold_ndcg", "coverage")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", required=True)
    parser.add_argument("--train")
    parser.add_argument("--test")
    parser.add_argument("--interactions")
    parser.add_argument("--split", default=None, help="per-user-time:FRACTION (train share), e.g. per-user-time:0.8")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="new",
        help="new: rank the stores each user has not been to; repeat: all stores, known ones included "
        "(adds most_frequent and most_recent)",
    )
    parser.add_argument("--json", default=None)
    parser.add_argument("--ablation", action="store_true", help="also served without each feature group (served-GROUP)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--components", type=int, default=TrainConfig.no_components)
    parser.add_argument("--max-epochs", type=int, default=TrainConfig.max_epochs)
    parser.add_argument(
        "--min-epochs",
        type=int,
        default=TrainConfig.min_epochs,
        help="at least this many epochs in the final fit, whatever validation chose",
    )
    parser.add_argument("--strict", action="store_true", help="refuse files with any bad row")
    args = parser.parse_args(argv)
    if bool(args.interactions) == bool(args.train or args.test) or (args.train is None) != (args.test is None):
        parser.error("give --train and --test, or --interactions with --split")
    if not 1 <= args.k <= 1000:
        parser.error("--k must be between 1 and 1000")
    try:
        stores, train, test, split = _load(args, parser)
    except DataError as exc:
        print(exc, file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    cfg = TrainConfig(
        threads=args.threads,
        seed=args.seed,
        no_components=args.components,
        max_epochs=args.max_epochs,
        min_epochs=args.min_epochs,
    )
    result = compare(
        stores,
        train,
        test,
        k=args.k,
        config=cfg,
        log=lambda m: print(m, file=sys.stderr),
        protocol=args.protocol,
        ablation=args.ablation,
    )
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if split is not None:
        result["split"] = split
    print(table(result))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


def _load(args, parser):
    stores, rep = read_table(args.stores, "stores", strict=args.strict)
    _usable(stores, rep)
    _say(rep)
    known = set(stores["store_id"])
    if args.interactions:
        allp, rep = read_table(args.interactions, "interactions", strict=args.strict, known_stores=known)
        _usable(allp, rep)
        _say(rep)
        _kind, share = split_share(parser, args.split, ("per-user-time",))
        train, test = split_per_user(allp, 1 - share, seed=args.seed, min_items=2)
        if train.empty or test.empty:
            raise DataError(f"{rep.file}: no user has two or more stores to split between train and test", rep)
        return stores, train, test, _split_kind(allp, share, rep.file)
    train, rep = read_table(args.train, "interactions", strict=args.strict, known_stores=known)
    _usable(train, rep)
    _say(rep)
    test, rep = read_table(args.test, "interactions", strict=args.strict, known_stores=known)
    _usable(test, rep)
    _say(rep)
    return stores, train, test, None


def _split_kind(rows, share: float, name: str) -> dict:
    """How ``split_per_user`` cut: in time only when every row has a ``ts``, else at random.
    Said on stderr and kept in the JSON, since the two are different protocols."""
    timed = every_row_timed(rows)
    if not timed:
        why = f"{int(rows['ts'].isna().sum())} of {len(rows)} rows have no ts" if "ts" in rows else "no ts column"
        print(f"{name}: {why}, so each user's test share is drawn at random, not the latest", file=sys.stderr)
    return {"kind": "per-user-time", "train_share": share, "by": "ts" if timed else "random"}


def _usable(frame, report) -> None:
    """A file with no row left to use stops here, with its report (the error prints it), not
    deep in a fit."""
    if frame.empty:
        raise DataError(f"{report.file}: no usable rows (read {report.rows_read})", report)


def _say(report) -> None:
    if not report.ok:
        print(report.summary(), file=sys.stderr)


def table(result: dict) -> str:
    k = result["k"]
    w = max(16, *(len(name) + 3 for name in result["models"]))  # room for the longest name and " *"
    head = f"{'model':<{w}}" + "".join(f"{m + '@' + str(k) if m not in ('coverage',) else m:>14}" for m in METRICS)
    lines = [head, "-" * len(head)]
    for name, m in result["models"].items():
        mark = " *" if name == result["served"] else ""
        cells = "".join(f"{(m.get(x) if m.get(x) is not None else float('nan')):>14.4f}" for x in METRICS)
        lines.append(f"{name + mark:<{w}}{cells}")
    d = result["data"]
    lines.append(
        f"(* served ranker; protocol {result['protocol']}; {d['users']} users, {d['stores']} stores, "
        f"{d['train_pairs']} train / "
        f"{d['test_pairs']} test pairs; cold = users with <= 5 training stores)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
