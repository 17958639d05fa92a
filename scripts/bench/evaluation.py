"""Benchmark the whole offline evaluation at the size of the largest kept-back set.

    python -m scripts.bench.evaluation [--users 5000] [--stores 28000] [--visits-per-month 15]
                                       [--protocol new repeat] [--reuse] [--json FILE]

Writes a seeded synthetic world (``geo_index.synthetic`` stores in real cities, visits
from ``recommender.generator``: users who live somewhere and go to stores near home,
popular and of their taste), then runs ``python -m scripts.evaluate`` on it in a child
process per protocol, exactly as an operator would, and reports the wall time and the
peak resident memory of the whole process tree (sampled every 0.5 s). The targets: at
most 5 minutes and 8 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from geo_index.synthetic import synthetic_catalogue
from recommender.generator import BehaviourConfig, generate
from scripts.common import emit_json


def write_world(out: str, users: int, stores: int, per_month: float, seed: int = 0) -> dict:
    catalogue = synthetic_catalogue(stores, seed=seed).assign(tags="")
    b = generate(catalogue, BehaviourConfig(n_users=users, days=120, orders_per_user_month=per_month, seed=seed))
    os.makedirs(out, exist_ok=True)
    catalogue.to_csv(os.path.join(out, "stores.csv"), index=False)
    b.orders[["user_id", "store_id", "ts"]].to_csv(os.path.join(out, "interactions.csv"), index=False)
    return {"stores": stores, "users": int(b.orders["user_id"].nunique()), "visits": len(b.orders)}


def run(out: str, protocol: str) -> dict:
    cmd = [
        sys.executable, "-m", "scripts.evaluate",
        "--stores", os.path.join(out, "stores.csv"),
        "--interactions", os.path.join(out, "interactions.csv"),
        "--split", "per-user-time:0.8",
        "--protocol", protocol,
        "--json", os.path.join(out, f"eval-{protocol}.json"),
    ]  # fmt: skip
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:  # the whole tree: the evaluation and its LightFM process
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.5)
    if proc.returncode:
        raise SystemExit(f"evaluate failed with {proc.returncode}")
    seconds = time.perf_counter() - t
    peak_gb = peak / 2**30
    with open(os.path.join(out, f"eval-{protocol}.json")) as fh:
        models = json.load(fh)["models"]
    return {
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(peak_gb, 2),
        "ndcg": {name: m["ndcg"] for name, m in models.items()},
    }


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (Linux /proc), 0 once gone."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--stores", type=int, default=28000)
    parser.add_argument("--visits-per-month", type=float, default=15.0)
    parser.add_argument("--protocol", nargs="+", default=["new", "repeat"], choices=["new", "repeat"])
    parser.add_argument("--out", default="var/bench-evaluation")
    parser.add_argument("--reuse", action="store_true", help="keep the world already written to --out")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    t = time.perf_counter()
    if args.reuse and os.path.exists(os.path.join(args.out, "interactions.csv")):
        result: dict = {"world": {"reused": args.out}}
    else:
        result = {"world": write_world(args.out, args.users, args.stores, args.visits_per_month)}
        result["world"]["generate_s"] = round(time.perf_counter() - t, 1)
    print(result["world"], flush=True)
    for protocol in args.protocol:
        result[protocol] = run(args.out, protocol)
        print(protocol, result[protocol], flush=True)
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
