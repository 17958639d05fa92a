"""Benchmark serving and training of the recommender.

    python -m scripts.bench.recommender [--orders 1000000] [--threads 1 2] [--json bench-results/recommender.json]

1. ``Scorer.score`` over 200 candidates against ``LightFM.predict`` on the same user,
   candidates and feature matrices (same model, same process), medians of 2,000 calls.
2. Training time (``recommender.train``: early-stopped fit, blend tuning, final refit) on
   about ``--orders`` generated orders on the bundled catalogue.
3. Artifact save and load time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from geo_index import load_catalogue
from recommender import Scorer, TrainConfig, interaction_weights, save, train
from recommender.artifact import load
from recommender.generator import BehaviourConfig, generate
from scripts.common import emit_json


def _median_us(fn, n=2000) -> float:
    out = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t
    return float(np.median(out) * 1e6)


def scoring(trained, n_candidates=200) -> dict:
    scorer = Scorer(trained)
    space = trained.space
    rng = np.random.default_rng(0)
    user = space.user_ids_[0]
    cand_rows = rng.choice(len(space.item_ids_), n_candidates, replace=False).astype(np.int32)
    cand_ids = [space.item_ids_[i] for i in cand_rows]
    uf, itf = space.user_matrix(), space.item_matrix()
    uidx = np.full(n_candidates, space.user_index_[user], dtype=np.int32)
    lf = trained.lightfm
    np.testing.assert_allclose(
        scorer.score(user, cand_ids),
        lf.predict(uidx, cand_rows, item_features=itf, user_features=uf),
        rtol=1e-4,
        atol=1e-4,
    )
    state, rows = scorer.user_state(user), scorer.rows_for(cand_ids)
    res = {
        "candidates": n_candidates,
        "lightfm_predict_us": _median_us(lambda: lf.predict(uidx, cand_rows, item_features=itf, user_features=uf)),
        "scorer_score_ids_us": _median_us(lambda: scorer.score(user, cand_ids)),
        "scorer_score_rows_us": _median_us(lambda: scorer.score_rows(state, rows)),
    }
    res["speedup_ids"] = round(res["lightfm_predict_us"] / res["scorer_score_ids_us"], 1)
    res["speedup_rows"] = round(res["lightfm_predict_us"] / res["scorer_score_rows_us"], 1)
    return res


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    stores, _ = load_catalogue("data/stores_helsinki.csv")
    users = max(50, args.orders // 24)  # ~24 orders per user over 120 days
    t = time.perf_counter()
    b = generate(stores, BehaviourConfig(n_users=users, days=120, seed=0))
    gen_s = time.perf_counter() - t
    pairs = interaction_weights(b.orders, b.reviews)
    result = {
        "orders": len(b.orders),
        "reviews": len(b.reviews),
        "users": users,
        "weighted_pairs": len(pairs),
        "generate_s": round(gen_s, 1),
        "training": {},
    }
    print(json.dumps({k: v for k, v in result.items() if k != "training"}), flush=True)
    trained = None
    for threads in args.threads:
        t = time.perf_counter()
        trained = train(stores, pairs, b.reviews, TrainConfig(threads=threads), log=lambda m: None)
        result["training"][f"threads={threads}"] = {
            "seconds": round(time.perf_counter() - t, 1),
            "best_epoch": trained.meta["best_epoch"],
        }
        print(threads, result["training"][f"threads={threads}"], flush=True)
    result["scoring"] = scoring(trained)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        path = save(trained, d)
        result["artifact_save_s"] = round(time.perf_counter() - t, 3)
        loads = []
        for _ in range(5):
            t = time.perf_counter()
            Scorer(load(path))
            loads.append(time.perf_counter() - t)
        result["artifact_load_and_precompute_s_median"] = round(float(np.median(loads)), 3)
        result["artifact_mb"] = round(sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) / 2**20, 1)
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
