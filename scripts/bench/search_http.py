"""HTTP throughput of /v1/stores/nearby against a trivial JSON endpoint of the same app.

    python -m scripts.bench.search_http [--catalogue PATH] [--seconds 15] [--clients 4]

Starts gunicorn (2 workers, --preload, 127.0.0.1 only), reports its start-up time, then
runs the same closed-loop load on /healthz and on nearby queries at random points near
stores. Runs are interleaved (trivial, nearby, trivial, nearby) and the medians compared.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pandas as pd

from app.storage.embedded import free_port
from scripts.bench.harness import medians, nearby_paths, run_load, start_gunicorn
from scripts.common import emit_json


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", default=None, help="store file (default: bundled Helsinki)")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    env = {"O2O_CATALOGUE": os.path.abspath(args.catalogue)} if args.catalogue else {}
    path = args.catalogue or os.path.join(os.path.dirname(__file__), "..", "..", "data", "stores_helsinki.csv")
    stores = (
        pd.read_parquet(path, columns=["lat", "lon"])
        if path.endswith("parquet")
        else pd.read_csv(path, usecols=["lat", "lon"])
    )
    rng = np.random.default_rng(5)
    pick = rng.integers(0, len(stores), 2000)
    points = np.column_stack(
        [
            stores["lat"].to_numpy()[pick] + rng.normal(0, 0.003, 2000),
            stores["lon"].to_numpy()[pick] + rng.normal(0, 0.005, 2000),
        ]
    )
    port = free_port()
    proc, startup_s = start_gunicorn(port, env)
    try:
        runs = {"trivial": [], "nearby": [], "nearby_radius_filtered": []}
        for _ in range(args.rounds):
            runs["trivial"].append(run_load(port, ["/livez"], args.seconds, args.clients))
            runs["nearby"].append(run_load(port, nearby_paths(points), args.seconds, args.clients))
            runs["nearby_radius_filtered"].append(
                run_load(
                    port,
                    nearby_paths(points, {"radius_m": 1000, "category": "cafe,restaurant", "open_now": "true"}),
                    args.seconds,
                    args.clients,
                )
            )
    finally:
        proc.terminate()
        proc.wait()
    med = medians(runs, ("rps", "p50_ms", "p99_ms"))
    result = {
        "catalogue": os.path.basename(path),
        "startup_s": round(startup_s, 2),
        "runs": runs,
        "median": med,
        "errors": sum(r["errors"] for v in runs.values() for r in v),
        "ratio_nearby_to_trivial_rps": round(med["nearby"]["rps"] / med["trivial"]["rps"], 2),
        "ratio_filtered_to_trivial_rps": round(med["nearby_radius_filtered"]["rps"] / med["trivial"]["rps"], 2),
    }
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
