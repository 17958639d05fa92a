"""Events per second through the service on one Redis and on a three-primary Redis Cluster.

    python -m scripts.bench.cluster [--seconds 10] [--rounds 2] [--json bench-results/cluster.json]

Both Redis set-ups run side by side (append-only files on); one gunicorn (2 workers) is
started on each. Client processes loop: a nearby search (20 stores, each with its
impression token), then one POST /v1/events of 100 engagement events proving those tokens
(click, detail_view, directions, call, website). Interleaved runs, medians; accepted events
per second, and the server's CPU per accepted event (workers and redis-servers).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
import uuid

import numpy as np
import pandas as pd

from app.storage.embedded import free_port, start_cluster, start_on_port
from scripts.bench.harness import cpu_seconds, medians, run_clients, server_pids, start_gunicorn
from scripts.common import emit_json

KINDS = ("click", "detail_view", "directions", "call", "website")


def _client(port, points, seconds, seed, out):
    rng = np.random.default_rng(seed)
    accepted = posted = errors = 0
    end = time.perf_counter() + seconds
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    while time.perf_counter() < end:
        lat, lon = points[rng.integers(len(points))]
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", f"/v1/stores/nearby?lat={lat:.5f}&lon={lon:.5f}&limit=20")
            stores = json.loads(conn.getresponse().read())["stores"]
            events = [
                {
                    "event_id": uuid.uuid4().hex,
                    "type": kind,
                    "ts": now,
                    "store_id": s["id"],
                    "impression_token": s["impression_token"],
                }
                for s in stores
                for kind in KINDS
            ]
            conn.request(
                "POST", "/v1/events", body=json.dumps({"events": events}), headers={"Content-Type": "application/json"}
            )
            resp = conn.getresponse()
            body = json.loads(resp.read())
            conn.close()
            posted += len(events)
            if resp.status == 200:
                accepted += body["accepted"]
            else:
                errors += 1
        except (OSError, ValueError, KeyError):
            errors += 1
    out.put((accepted, posted, errors))


def run(port: int, points, seconds: float, clients: int, pids: list[int]) -> dict:
    cpu0 = cpu_seconds(pids)
    results, wall = run_clients(_client, (port, points, seconds), clients)
    accepted = sum(r[0] for r in results)
    return {
        "events_per_s": round(accepted / wall, 1),
        "accepted": accepted,
        "posted": sum(r[1] for r in results),
        "errors": sum(r[2] for r in results),
        "server_cpu_us_per_event": round((cpu_seconds(pids) - cpu0) / max(accepted, 1) * 1e6, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    stores = pd.read_csv("data/stores_helsinki.csv", usecols=["lat", "lon"])
    points = stores[["lat", "lon"]].to_numpy()
    procs: list = []
    servers = {}
    try:
        single, sport = start_on_port(data_dir=tempfile.mkdtemp(prefix="bench-redis-"), appendonly=True)
        procs.append(single)
        nodes, cports = start_cluster(3)
        procs += nodes
        for name, url, redis_pids in (
            ("one_redis", f"redis://127.0.0.1:{sport}/0", [single.pid]),
            ("cluster_3_primaries", f"redis://127.0.0.1:{cports[0]}/0", [p.pid for p in nodes]),
        ):
            port = free_port()
            env = {
                "REDIS_URL": url,
                "O2O_DATA_DIR": tempfile.mkdtemp(prefix="o2o-bench-"),
                "O2O_SECRET_KEY": os.urandom(32).hex(),
            }
            gunicorn, _ = start_gunicorn(port, env)
            procs.append(gunicorn)
            servers[name] = (port, server_pids(gunicorn) + redis_pids)
        runs: dict = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, (port, pids) in servers.items():
                runs[name].append(run(port, points, args.seconds, args.clients, pids))
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(10)
    med = medians(runs, ("events_per_s", "server_cpu_us_per_event"))
    result = {
        "median": med,
        "cluster_to_one": round(med["cluster_3_primaries"]["events_per_s"] / med["one_redis"]["events_per_s"], 3),
        "errors": sum(r["errors"] for v in runs.values() for r in v),
        "runs": runs,
    }
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
