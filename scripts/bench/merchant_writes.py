"""Merchant writes: how soon every worker shows them, and what live edits cost the reads.

    python -m scripts.bench.merchant_writes [--writes 200] [--seconds 8] [--rounds 2]
                                            [--json bench-results/merchant-writes.json]

1. Write to visible: one redis-server (AOF) and two gunicorn instances of two workers each
   on it. Each write changes a store's phone through instance A; then both instances are
   probed in turn (a fresh connection each, so either worker may answer) until each has
   answered with the new phone 20 times in a row (a worker that had missed it would answer
   one of those with probability 1 - 2^-20). Visible = the first of those answers of the
   slower instance, from the write's answer. Median and p99 over the writes.
2. Reads with live edits: two instances, one on a Redis with no edits and one on a Redis
   holding 1,000 (the details of 500 stores and 500 of the deals file's deals, changed by
   their merchants through the platform's admin key), so both serve the same stores and
   deals; nearby and recommended deals, interleaved closed-loop runs, medians.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import redis

from app.storage.apikeys import create_key
from app.storage.embedded import free_port, start_on_port
from scripts.bench.harness import medians, nearby_paths, run_load, start_gunicorn
from scripts.common import emit_json

MERCHANT = "m-unicafe"


def _call(port: int, method: str, path: str, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data else None, dict(resp.getheaders())
    finally:
        conn.close()


ADMIN = "bench-admin-" + "x" * 32


def _instances(redis_port: int, secret: str, n: int = 2) -> list[tuple]:
    out = []
    for _ in range(n):
        port = free_port()
        env = {
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "O2O_SECRET_KEY": secret,
            "O2O_ADMIN_KEY": ADMIN,
            "O2O_DATA_DIR": tempfile.mkdtemp(prefix="o2o-bench-"),
        }
        out.append((start_gunicorn(port, env)[0], port))
    return out


def write_to_visible(ports: list[int], key: str, stores: list[str], writes: int) -> dict:
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    versions = {s: 0 for s in stores}
    seconds = []
    for i in range(writes):
        store = stores[i % len(stores)]
        phone = f"+358 {i:06d}"
        headers = {**auth, "If-Match": f'"{versions[store]}"'}
        status, body, _ = _call(
            ports[0], "PATCH", f"/v1/merchants/{MERCHANT}/stores/{store}", {"phone": phone}, headers
        )
        t0 = time.perf_counter()
        assert status == 200, body
        versions[store] = body["version"]
        streak = {p: 0 for p in ports}
        first_of_streak = {p: None for p in ports}
        while min(streak.values()) < 20:
            for p in ports:
                if streak[p] >= 20:
                    continue
                _status, shown, _ = _call(p, "GET", f"/v1/stores/{store}")
                if shown["phone"] == phone:
                    if streak[p] == 0:
                        first_of_streak[p] = time.perf_counter()
                    streak[p] += 1
                else:
                    streak[p] = 0
            if time.perf_counter() - t0 > 30:
                raise RuntimeError(f"write {i} not visible everywhere within 30 s")
        seconds.append(max(first_of_streak.values()) - t0)
    s = np.array(seconds)
    return {
        "writes": writes,
        "p50_s": round(float(np.median(s)), 3),
        "p99_s": round(float(np.percentile(s, 99)), 3),
        "max_s": round(float(s.max()), 3),
    }


def apply_edits(port: int, admin: str, catalogue: pd.DataFrame, deals: pd.DataFrame, n_store: int, n_deal: int):
    """Change 500 stores' details and 500 deals, each once, as their merchants would."""
    auth = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
    merchant_of = dict(zip(catalogue["store_id"], catalogue["merchant_id"]))
    for i, store in enumerate(catalogue["store_id"].head(n_store)):
        body = {"phone": f"+358 {i:06d}", "tags": ["edited", f"t{i % 7}"]}
        path = f"/v1/merchants/{merchant_of[store]}/stores/{store}"
        status, res, _ = _call(port, "PATCH", path, body, {**auth, "If-Match": '"0"'})
        assert status == 200, res
    for i, row in enumerate(deals.head(n_deal).itertuples()):
        body = {"title": f"Edited deal {i}", "discount_pct": 5 + i % 50}
        path = f"/v1/merchants/{merchant_of[row.store_id]}/deals/{row.deal_id}"
        status, res, _ = _call(port, "PATCH", path, body, {**auth, "If-Match": '"0"'})
        assert status == 200, res


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    catalogue = pd.read_csv("data/stores_helsinki.csv")
    stores = catalogue.loc[catalogue["merchant_id"] == MERCHANT, "store_id"].tolist()
    file_deals = pd.read_csv("data/generated/helsinki/deals.csv")
    secret = os.urandom(32).hex()
    procs: list = []
    try:
        # 1. Two instances of two workers on one Redis.
        rproc, rport = start_on_port(data_dir=tempfile.mkdtemp(prefix="bench-redis-"), appendonly=True)
        procs.append(rproc)
        key = create_key(redis.Redis(port=rport), MERCHANT)
        shared = _instances(rport, secret)
        procs += [p for p, _ in shared]
        for _p, port in shared:  # each worker's first request starts its change follower
            for _ in range(20):
                _call(port, "GET", "/livez")
        visible = write_to_visible([port for _, port in shared], key, stores, args.writes)
        for p, _ in shared:
            p.terminate()
            p.wait(10)
        # 2. Reads with and without 1,000 live edits.
        rng = np.random.default_rng(5)
        pick = rng.integers(0, len(catalogue), 1000)
        pts = np.column_stack(
            [
                catalogue["lat"].to_numpy()[pick] + rng.normal(0, 0.002, 1000),
                catalogue["lon"].to_numpy()[pick] + rng.normal(0, 0.004, 1000),
            ]
        )
        nearby = nearby_paths(pts)
        deals = [f"/v1/deals/recommended?lat={a:.5f}&lon={b:.5f}" for a, b in pts]
        servers = {}
        for name in ("none", "edited"):
            rp, port = start_on_port(data_dir=tempfile.mkdtemp(prefix="bench-redis-"), appendonly=True)
            procs.append(rp)
            ((gp, gport),) = _instances(port, secret, 1)
            procs.append(gp)
            if name == "edited":
                apply_edits(gport, ADMIN, catalogue, file_deals, 500, 500)
            servers[name] = gport
        runs: dict = {f"{what}_{name}": [] for what in ("nearby", "recommended") for name in servers}
        for _ in range(args.rounds):
            for what, paths in (("nearby", nearby), ("recommended", deals)):
                for name, port in servers.items():
                    runs[f"{what}_{name}"].append(run_load(port, paths, args.seconds, args.clients))
    finally:
        for p in reversed(procs):  # servers before their Redis
            p.terminate()
            p.wait(10)
    med = medians(runs, ("rps", "p50_ms", "p99_ms"))
    result = {
        "write_to_visible": visible,
        "reads": med,
        "nearby_edited_to_none": round(med["nearby_edited"]["rps"] / med["nearby_none"]["rps"], 3),
        "recommended_edited_to_none": round(med["recommended_edited"]["rps"] / med["recommended_none"]["rps"], 3),
        "errors": sum(r["errors"] for v in runs.values() for r in v),
        "runs": runs,
    }
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
