"""Benchmark the served ranker in process: 200 candidates for one user, as a request has them.

    python -m scripts.bench.ranker [--artifact artifacts/VERSION] [--calls 2000] [--json FILE]

For a random known user, a cold user and the known user with the most past stores (the
history features cost most for them), the medians and 99th percentiles of: the blend (LightFM
scores and distance, the fallback), the second stage's features, its LightGBM scores,
and both together, with the ratio of the whole second stage to the blend in the same run.
Candidates are the 200 catalogue stores nearest a random store of the model, as the deals
endpoint takes them.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from recommender import Scorer, versions
from recommender.geo import pairwise_m
from scripts.common import emit_json


def _timed(fn, calls: int) -> dict:
    out = np.empty(calls)
    for i in range(calls):
        t = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t
    return {"p50_us": round(float(np.median(out) * 1e6), 1), "p99_us": round(float(np.percentile(out, 99) * 1e6), 1)}


def _one_user(scorer, user, cand, dist, plat, plon, calls: int) -> dict:
    stage = scorer.second_stage
    state, rows = scorer.user_state(user), scorer.rows_for(cand)
    pref = scorer.score_rows(state, rows)
    feats = stage.features(user, cand, pref, plat, plon)

    def blend():
        return scorer.blend.combine(scorer.score_rows(state, rows), dist)

    def whole():
        return stage.score(stage.features(user, cand, scorer.score_rows(state, rows), plat, plon))

    r = {
        "blend": _timed(blend, calls),
        "features": _timed(lambda: stage.features(user, cand, pref, plat, plon), calls),
        "lightgbm": _timed(lambda: stage.score(feats), calls),
        "second_stage": _timed(whole, calls),
    }
    r["second_stage_over_blend_p50"] = round(r["second_stage"]["p50_us"] / r["blend"]["p50_us"], 1)
    return r


def run(path: str, calls: int, n_candidates: int = 200, seed: int = 0) -> dict:
    scorer = Scorer.load(path)
    stage = scorer.second_stage
    if stage is None:
        raise SystemExit(f"{path} has no second stage: train it with python -m scripts.train")
    rng = np.random.default_rng(seed)
    ids = list(stage.items)
    lat, lon = stage.sources.stores.lat, stage.sources.stores.lon
    past = np.diff(stage.sources.window.x.indptr)  # stores per user row
    known_users = [u for u, r in stage.users.items() if past[r] > 0]
    result: dict = {"artifact": path, "candidates": n_candidates, "calls": calls}
    heaviest = max(stage.users, key=lambda u: past[stage.users[u]])
    picks = (("known", known_users[rng.integers(len(known_users))]), ("cold", "nobody-yet"), ("heaviest", heaviest))
    for kind, user in picks:
        at = rng.integers(len(ids))
        d = pairwise_m(lat[at : at + 1], lon[at : at + 1], lat, lon)[0]
        near = np.argsort(d, kind="stable")[:n_candidates]
        r = _one_user(scorer, user, [ids[i] for i in near], d[near], float(lat[at]), float(lon[at]), calls)
        if user in stage.users:
            r["past_stores"] = int(past[stage.users[user]])
        result[kind] = r
        print(kind, r, flush=True)
    result["trees"] = int(stage.ranker.booster_.num_trees())
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", default=None, help="a model folder; default: the newest under artifacts/")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    path = args.artifact
    if path is None:
        found = versions("artifacts")
        if not found:
            parser.error("no model under artifacts/: run python -m scripts.train first")
        path = f"artifacts/{found[-1]}"
    emit_json(run(path, args.calls), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
