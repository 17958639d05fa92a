"""Benchmark the store index on the synthetic catalogue against cKDTree and Redis GEOSEARCH.

    python -m scripts.bench.index [--n 1000000] [--queries 10000] [--json bench-results/index.json]

All three answer the same query points in the same process (Redis over loopback).
cKDTree on unit vectors is the fastest exact in-process reference; it gets the same
haversine + store_id tie-break post-processing as the index, so the ratio compares
like with like. Prints medians and p99 in microseconds.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import numpy as np
import psutil

from geo_index import StoreIndex, haversine_m, validate_stores
from geo_index.geodesy import chord_for_distance, to_unit_xyz
from geo_index.report import LoadReport
from geo_index.synthetic import synthetic_catalogue
from scripts.common import emit_json


def _rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def _timed(fn, queries) -> np.ndarray:
    out = np.empty(len(queries))
    for i, q in enumerate(queries):
        t = time.perf_counter()
        fn(q)
        out[i] = time.perf_counter() - t
    return out * 1e6


def _stats(us: np.ndarray) -> dict:
    return {"p50_us": round(float(np.median(us)), 1), "p99_us": round(float(np.percentile(us, 99)), 1)}


def query_points(frame, n, seed=1) -> np.ndarray:
    """Where users are: near stores (a random store, moved up to ~700 m)."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(frame), n)
    lat = frame["lat"].to_numpy()[pick] + rng.normal(0, 0.004, n)
    lon = frame["lon"].to_numpy()[pick] + rng.normal(0, 0.006, n)
    return np.column_stack([np.clip(lat, -90, 90), (lon + 180) % 360 - 180])


def run(n: int, n_queries: int, redis_on: bool = True) -> dict:
    t = time.perf_counter()
    frame = validate_stores(synthetic_catalogue(n, seed=0), LoadReport("synthetic"))
    gen_s = time.perf_counter() - t
    rss0 = _rss_mb()
    t = time.perf_counter()
    index = StoreIndex(frame)
    build_s = time.perf_counter() - t
    rss1 = _rss_mb()
    qs = query_points(frame, n_queries)
    lat_c, lon_c, ids = index.column("lat"), index.column("lon"), index.column("store_id")
    res = {
        "n_stores": n,
        "n_queries": n_queries,
        "generate_validate_s": round(gen_s, 2),
        "build_s": round(build_s, 2),
        "index_rss_mb": round(rss1 - rss0, 1),
    }

    from scipy.spatial import cKDTree

    t = time.perf_counter()
    kd = cKDTree(to_unit_xyz(lat_c, lon_c))
    res["ckdtree_build_s"] = round(time.perf_counter() - t, 2)

    def kd_knn(q, k=20, max_m=None):
        x = to_unit_xyz([q[0]], [q[1]])[0]
        ub = np.inf if max_m is None else chord_for_distance(max_m) * (1 + 1e-9)
        _, pos = kd.query(x, k=k + 1, distance_upper_bound=ub)
        pos = pos[pos < len(lat_c)]
        d = haversine_m(q[0], q[1], lat_c[pos], lon_c[pos])
        if max_m is not None:
            pos, d = pos[d <= max_m], d[d <= max_m]
        order = np.lexsort((ids[pos], d))[:k]
        return pos[order], d[order]

    res["knn20"] = {
        "index": _stats(_timed(lambda q: index.nearest(q[0], q[1], 20), qs)),
        "ckdtree": _stats(_timed(kd_knn, qs)),
        "ckdtree_raw": _stats(_timed(lambda q: kd.query(to_unit_xyz([q[0]], [q[1]])[0], k=20), qs)),
    }
    res["radius1km_max50"] = {
        "index": _stats(_timed(lambda q: index.nearest(q[0], q[1], 50, max_distance_m=1000), qs)),
        "ckdtree": _stats(_timed(lambda q: kd_knn(q, 50, 1000), qs)),
    }
    if redis_on:
        res["redis"] = _redis_bench(frame, qs)
        res["knn20"]["redis_geosearch"] = res["redis"].pop("knn20")
        res["radius1km_max50"]["redis_geosearch"] = res["redis"].pop("radius1km_max50")
    res["exact_vs_brute_force"] = _exactness(index, frame, qs[:200])
    for key in ("knn20", "radius1km_max50"):
        block = res[key]
        block["ratio_index_to_ckdtree_p50"] = round(block["index"]["p50_us"] / block["ckdtree"]["p50_us"], 2)
        if "redis_geosearch" in block:
            block["speedup_vs_redis_p50"] = round(block["redis_geosearch"]["p50_us"] / block["index"]["p50_us"], 1)
    return res


def _redis_bench(frame, qs) -> dict:
    import redis

    from app.storage.embedded import start_on_port

    proc, port = start_on_port()
    try:
        r = redis.Redis(host="127.0.0.1", port=port)
        t = time.perf_counter()
        # Plain floats: redis-py writes numpy scalars by repr ("np.float64(...)").
        lon, lat = frame["lon"].tolist(), np.clip(frame["lat"].to_numpy(), -85.05, 85.05).tolist()
        sid = frame["store_id"].tolist()
        # Redis GEO refuses latitudes beyond +-85.05 (Web Mercator); the benchmark stores are inside.
        for start_i in range(0, len(frame), 20_000):
            pipe = r.pipeline(transaction=False)
            chunk = slice(start_i, start_i + 20_000)
            flat = [v for triple in zip(lon[chunk], lat[chunk], sid[chunk]) for v in triple]
            pipe.geoadd("stores", flat)
            pipe.execute()
        load_s = time.perf_counter() - t

        def knn(q, k=20):
            radius = 1.0
            while True:
                got = r.geosearch(
                    "stores",
                    longitude=float(q[1]),
                    latitude=float(q[0]),
                    radius=radius,
                    unit="km",
                    sort="ASC",
                    count=k,
                    withdist=True,
                )
                if len(got) >= k or radius > 20_000:
                    return got
                radius *= 4

        def radius1km(q):
            return r.geosearch(
                "stores",
                longitude=float(q[1]),
                latitude=float(q[0]),
                radius=1,
                unit="km",
                sort="ASC",
                count=50,
                withdist=True,
            )

        return {
            "load_s": round(load_s, 1),
            "knn20": _stats(_timed(knn, qs)),
            "radius1km_max50": _stats(_timed(radius1km, qs)),
        }
    finally:
        proc.terminate()


def _exactness(index, frame, qs) -> dict:
    lat, lon, sid = frame["lat"].to_numpy(), frame["lon"].to_numpy(), frame["store_id"].to_numpy()
    mismatches = 0
    for q in qs:
        d = haversine_m(q[0], q[1], lat, lon)
        top = np.argpartition(d, 60)[:60]
        ref = top[np.lexsort((sid[top], d[top]))][:20]
        got = index.nearest(q[0], q[1], 20).positions
        mismatches += int(list(sid[ref]) != list(index.column("store_id")[got]))
        within = np.flatnonzero(d <= 1000)
        ref_w = within[np.lexsort((sid[within], d[within]))][:50]
        got_w = index.nearest(q[0], q[1], 50, max_distance_m=1000).positions
        mismatches += int(list(sid[ref_w]) != list(index.column("store_id")[got_w]))
    return {"queries": len(qs) * 2, "mismatches": mismatches}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    res = run(args.n, args.queries, redis_on=not args.no_redis)
    emit_json(res, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
