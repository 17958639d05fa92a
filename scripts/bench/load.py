"""A saturation run: a mix of every kind of traffic for a fixed time, per-endpoint latency,
errors, and each worker's memory at the start and the end.

    python -m scripts.bench.load [--minutes 10] [--clients 6] [--json bench-results/load.json]

gunicorn (2 workers, --preload) on loopback with the bundled data, the newest model and a
fresh embedded Redis; the mix: nearby 35 %, recommended deals 25 %, map 15 %, events 15 %
(batches of 5), merchant stats 10 %.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime

import numpy as np
import psutil
import redis

from app.storage import keys
from app.storage.embedded import free_port
from scripts.bench.harness import start_gunicorn
from scripts.common import emit_json
from scripts.users import token

TYPES = ("click", "detail_view", "directions", "call", "website")
MIX = (("nearby", 0.35), ("recommended", 0.25), ("map", 0.15), ("events", 0.15), ("stats", 0.10))


def _client(port, seconds, seed, key, users, out):
    rng = np.random.default_rng(seed)
    names = [m[0] for m in MIX]
    probs = [m[1] for m in MIX]
    rows = []
    shown: list[str] = []  # impression tokens of stores this client was shown
    end = time.perf_counter() + seconds
    today = datetime.now(UTC).date().isoformat()
    while time.perf_counter() < end:
        kind = names[rng.choice(len(names), p=probs)]
        lat, lon = 60.1699 + rng.normal(0, 0.004), 24.9384 + rng.normal(0, 0.008)
        body, headers, method = None, {}, "GET"
        if kind == "nearby":
            path = f"/v1/stores/nearby?lat={lat:.5f}&lon={lon:.5f}&limit=20"
        elif kind == "recommended":
            path = f"/v1/deals/recommended?lat={lat:.5f}&lon={lon:.5f}"
            headers = {"Authorization": "Bearer " + users[rng.integers(len(users))]}
        elif kind == "map":
            path = f"/v1/map/stores?bbox={lon - 0.02:.5f},{lat - 0.01:.5f},{lon + 0.02:.5f},{lat + 0.01:.5f}&zoom=15"
        elif kind == "events" and shown:
            # Engagement with something this client was shown: each of the five types once
            # on one impression token (a token counts once per type).
            method, path = "POST", "/v1/events"
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            token = shown.pop()
            body = json.dumps(
                {
                    "events": [
                        {"event_id": uuid.uuid4().hex, "type": t, "ts": now, "impression_token": token} for t in TYPES
                    ]
                }
            )
            headers = {"Content-Type": "application/json"}
        elif kind == "events":  # nothing shown yet: look first
            kind, path = "nearby", f"/v1/stores/nearby?lat={lat:.5f}&lon={lon:.5f}&limit=20"
        else:
            path = f"/v1/merchants/m-unicafe/stats?from={today}&to={today}"
            headers = {"Authorization": f"Bearer {key}"}
        t = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
            if kind == "nearby" and status == 200 and len(shown) < 1000:
                shown.extend(s["impression_token"] for s in json.loads(data)["stores"][:3])
            conn.close()
        except OSError:
            status = 0
        rows.append((kind, time.perf_counter() - t, status))
    out.put(rows)


def _rss(children) -> dict:
    """RSS in MB by process ("worker <pid>"; the embedded redis-server is a child of the master too)."""
    out = {}
    for p in children:
        label = ("redis-server " if "redis" in p.name() else "worker ") + str(p.pid)
        out[label] = round(p.memory_info().rss / 2**20, 1)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    port = free_port()
    env = {"O2O_DATA_DIR": tempfile.mkdtemp(prefix="o2o-load-"), "O2O_ADMIN_KEY": "load-admin"}
    proc, startup = start_gunicorn(port, env)
    users = [token(f"u{i:06d}", environ={**os.environ, **env}) for i in range(0, 3000, 15)]  # 200 signed-in users
    try:
        deadline = time.monotonic() + 30  # the second worker boots just after the first answers
        while (
            time.monotonic() < deadline
            and sum("redis" not in p.name() for p in psutil.Process(proc.pid).children()) < 2
        ):
            time.sleep(0.2)
        workers = psutil.Process(proc.pid).children()
        rss_start = _rss(workers)
        out = mp.Queue()
        clients = [
            mp.Process(target=_client, args=(port, args.minutes * 60, i, "load-admin", users, out))
            for i in range(args.clients)
        ]
        t0 = time.perf_counter()
        for c in clients:
            c.start()
        timeline, sampling = [], threading.Event()

        def sample():  # worker memory once a minute: is it level, or still climbing?
            while not sampling.wait(60):
                timeline.append(_rss(psutil.Process(proc.pid).children()))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rows = [r for _ in clients for r in out.get()]
        # Accepted events (the tokened engagement the clients sent) in the service's Redis.
        r = redis.Redis.from_url(f"unix://{env['O2O_DATA_DIR']}/redis/redis.sock")
        events_stored = int(r.xlen(keys.EVENTS))
        sampling.set()
        for c in clients:
            c.join()
        wall = time.perf_counter() - t0
        rss_end = _rss(psutil.Process(proc.pid).children())
    finally:
        proc.terminate()
        proc.wait(10)
    result = {
        "minutes": args.minutes,
        "clients": args.clients,
        "startup_s": round(startup, 1),
        "requests": len(rows),
        "rps": round(len(rows) / wall, 1),
        "endpoints": {},
        "errors": sum(1 for _k, _t, s in rows if s == 0 or s >= 500),
        "events_stored": events_stored,
        "worker_rss_mb_start": rss_start,
        "worker_rss_mb_end": rss_end,
        "rss_mb_each_minute": timeline,
    }
    for kind, _p in MIX:
        lat = np.array([t for k, t, _s in rows if k == kind]) * 1e3
        statuses = [s for k, _t, s in rows if k == kind]
        result["endpoints"][kind] = {
            "requests": len(lat),
            "p50_ms": round(float(np.median(lat)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "non_2xx": sum(1 for s in statuses if not 200 <= s < 300),
        }
    emit_json(result, args.json)
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
