"""Latency of /v1/map/stores on the synthetic catalogue at zooms 5, 11 and 16.

    python -m scripts.bench.map [--catalogue data/generated/synthetic_1m.parquet] [--reads 200]

Builds the app in this process on the catalogue (fresh embedded Redis), finds the
densest city of the catalogue, and times GeoJSON responses through the app for a
country-sized box at zoom 5, the whole city at zoom 11 and a neighbourhood at zoom 16,
each box moved a little between requests (a user panning). Medians and p99, in ms.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from scripts.common import emit_json

VIEWS = {5: 8.0, 11: 0.35, 16: 0.01}  # zoom -> half-height of the box in degrees


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", default="data/generated/synthetic_1m.parquet")
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if not os.path.exists(args.catalogue):
        parser.error(f"{args.catalogue} not found: python -m scripts.data.make_synthetic --n 1000000 first")
    from app import create_app

    t = time.perf_counter()
    app = create_app(
        {
            "CATALOGUE": os.path.abspath(args.catalogue),
            "DATA_DIR": tempfile.mkdtemp(),
            "RATE_LIMIT_ANON": 0,
            "CATALOGUE_STRICT": False,
            "DEALS": None,
            "BASE_ORDERS": None,
        }
    )
    startup = time.perf_counter() - t
    index = app.extensions["o2o"].index
    lat, lon = index.column("lat"), index.column("lon")
    # The densest 0.5-degree cell is the biggest city.
    cells = np.floor(lat / 0.5) * 1000 + np.floor(lon / 0.5)
    vals, counts = np.unique(cells, return_counts=True)
    best = vals[counts.argmax()]
    in_city = cells == best
    clat, clon = float(np.median(lat[in_city])), float(np.median(lon[in_city]))
    client = app.test_client()
    rng = np.random.default_rng(0)
    result = {
        "catalogue": os.path.basename(args.catalogue),
        "stores": len(index),
        "startup_s": round(startup, 1),
        "centre": [round(clat, 4), round(clon, 4)],
        "zooms": {},
    }
    for zoom, half in VIEWS.items():
        times, totals, features = [], [], []
        for _ in range(args.reads):
            dy, dx = rng.normal(0, half / 10, 2)
            bbox = (
                f"{clon + dx - 2 * half:.5f},{clat + dy - half:.5f},{clon + dx + 2 * half:.5f},{clat + dy + half:.5f}"
            )
            t = time.perf_counter()
            r = client.get("/v1/map/stores", query_string={"bbox": bbox, "zoom": zoom})
            times.append((time.perf_counter() - t) * 1e3)
            body = r.get_json()
            totals.append(body["total"])
            features.append(len(body["features"]))
        result["zooms"][str(zoom)] = {
            "p50_ms": round(float(np.median(times)), 2),
            "p99_ms": round(float(np.percentile(times, 99)), 2),
            "stores_in_box_median": int(np.median(totals)),
            "features_median": int(np.median(features)),
        }
        print(zoom, result["zooms"][str(zoom)], flush=True)
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
