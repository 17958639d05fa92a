"""Start-up, memory and kNN speed of the prebuilt, memory-mapped index against building in memory.

    python -m scripts.bench.startup [--catalogue data/generated/synthetic_1m.parquet] [--queries 4000]

1. In process, on one catalogue: the in-memory build every start used to do, the first
   start (validate, build, save), a second start (map), and kNN (k=20, as nearby asks)
   p50/p99 on the same query points, the two indexes alternating in rounds.
2. Whole servers, gunicorn --preload with 2 workers: launched -> /readyz ready, for a second
   start on the saved index and for O2O_INDEX_CACHE=none (each start builds in memory);
   after 2,000 nearby requests, each worker's private memory (USS) and proportional share
   (PSS) from /proc/PID/smaps_rollup.

A temporary cache folder is used, so the first start really builds.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from app.storage.embedded import free_port
from geo_index import StoreIndex, load_catalogue
from geo_index.prebuilt import load_index
from scripts.bench.harness import cmdline, nearby_paths, run_load, server_pids, start_gunicorn
from scripts.common import emit_json


def memory_kb(pid: int) -> dict:
    """RSS, PSS, USS (private clean + dirty) and anonymous memory of a process, in MB.

    USS counts pages of a mapped file that only this process has touched so far (clean,
    droppable page cache); anonymous memory is what the process alone owns for good."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {
        "rss_mb": round(fields["Rss"] / 1024, 1),
        "pss_mb": round(fields["Pss"] / 1024, 1),
        "uss_mb": round(uss / 1024, 1),
        "anonymous_mb": round(fields.get("Anonymous", 0) / 1024, 1),
    }


def _query_points(lat, lon, n, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(lat), n)
    return np.column_stack([lat[pick] + rng.normal(0, 0.004, n), lon[pick] + rng.normal(0, 0.006, n)])


def in_process(path: str, cache: str, n_queries: int, rounds: int) -> dict:
    settings = {"strict": False, "default_timezone": "UTC"}
    t = time.perf_counter()
    frame, _ = load_catalogue(path, **settings)
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    memory = StoreIndex(frame)
    build_s = time.perf_counter() - t
    queries = _query_points(frame["lat"].to_numpy(), frame["lon"].to_numpy(), n_queries)
    del frame  # at 10M stores the frame and two indexes would not fit together
    gc.collect()
    t = time.perf_counter()
    first = load_index(path, cache_root=cache, **settings)
    first_s = time.perf_counter() - t
    del first
    gc.collect()
    t = time.perf_counter()
    second = load_index(path, cache_root=cache, **settings)
    second_s = time.perf_counter() - t
    assert second.source == "mapped"
    mapped = second.index
    same = all(
        np.array_equal(mapped.nearest(la, lo, 20).positions, memory.nearest(la, lo, 20).positions)
        for la, lo in queries[:500].tolist()
    )
    # Paired: each query point is asked of both indexes back to back (the order alternating),
    # so a noisy moment on this shared machine hits both; rounds repeat the whole set.
    p50 = {"memory": [], "mapped": []}
    p99 = {"memory": [], "mapped": []}
    for r in range(rounds):
        us = {"memory": np.empty(len(queries)), "mapped": np.empty(len(queries))}
        for i, (la, lo) in enumerate(queries.tolist()):
            pair = (("memory", memory), ("mapped", mapped)) if (i + r) % 2 else (("mapped", mapped), ("memory", memory))
            for name, index in pair:
                t = time.perf_counter()
                index.nearest(la, lo, 20)
                us[name][i] = (time.perf_counter() - t) * 1e6
        for name in us:
            p50[name].append(float(np.median(us[name])))
            p99[name].append(float(np.percentile(us[name], 99)))
    folder_mb = sum(os.path.getsize(os.path.join(second.folder, f)) for f in os.listdir(second.folder)) / 2**20
    med = {k: round(float(np.median(v)), 1) for k, v in p50.items()}
    return {
        "stores": len(mapped),
        "read_and_validate_s": round(read_s, 2),
        "memory_build_s": round(build_s, 2),
        "every_start_before_s": round(read_s + build_s, 2),
        "first_start_build_and_save_s": round(first_s, 2),
        "second_start_map_s": round(second_s, 3),
        "saved_folder_mb": round(folder_mb, 1),
        "knn20_p50_us": med,
        "knn20_p99_us": {k: round(float(np.median(v)), 1) for k, v in p99.items()},
        "knn20_p50_ratio_mapped_to_memory": round(med["mapped"] / med["memory"], 2),
        "rounds_p50_us": {k: [round(x, 1) for x in v] for k, v in p50.items()},
        "same_answers_500_queries": same,
    }


def servers(path: str, cache: str, requests: int, modes: tuple[str, ...]) -> dict:
    stores = pd.read_parquet(path, columns=["lat", "lon"]) if path.endswith("parquet") else pd.read_csv(path)
    points = _query_points(stores["lat"].to_numpy(), stores["lon"].to_numpy(), 2000, seed=5)
    out = {}
    for name, setting in (("mapped", cache), ("memory", "none")):
        if name not in modes:
            continue
        data_dir = tempfile.mkdtemp(prefix="o2o-bench-startup-")
        env = {
            "O2O_CATALOGUE": os.path.abspath(path),
            "O2O_CATALOGUE_STRICT": "0",
            "O2O_DEFAULT_TIMEZONE": "UTC",
            "O2O_INDEX_CACHE": setting,
            "O2O_DATA_DIR": data_dir,
        }
        port = free_port()
        # Building 10M stores in memory takes minutes: wait for it.
        proc, start_s = start_gunicorn(port, env, ready_path="/readyz", timeout_s=1200)
        try:
            pids = server_pids(proc, data_dir)
            workers = [p for p in pids if p != proc.pid and "gunicorn" in cmdline(p)]
            load = run_load(port, nearby_paths(points), seconds=max(2.0, requests / 400), clients=2)
            out[name] = {
                "launched_to_ready_s": round(start_s, 2),
                "nearby_rps": load["rps"],
                "errors": load["errors"],
                "master": memory_kb(proc.pid),
                "workers": [memory_kb(p) for p in workers],
            }
        finally:
            proc.terminate()
            proc.wait()
            shutil.rmtree(data_dir, ignore_errors=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", default="data/generated/synthetic_1m.parquet")
    parser.add_argument("--queries", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--skip-servers", action="store_true")
    parser.add_argument("--servers", default="mapped,memory", help="which servers to start: mapped, memory or both")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if not os.path.exists(args.catalogue):
        parser.error(f"{args.catalogue} missing: python -m scripts.data.make_synthetic --out {args.catalogue}")
    cache = tempfile.mkdtemp(prefix="o2o-index-bench-")
    try:
        result = {
            "catalogue": os.path.basename(args.catalogue),
            "in_process": in_process(args.catalogue, cache, args.queries, args.rounds),
        }
        print(json.dumps(result), flush=True)  # a server run that fails later must not lose these
        gc.collect()
        if not args.skip_servers:
            result["servers"] = servers(args.catalogue, cache, args.requests, tuple(args.servers.split(",")))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
