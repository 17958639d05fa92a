"""Faults under load: Redis killed and restarted, a gunicorn worker killed with -9.

    python -m scripts.bench.faults [--phase-s 5] [--json bench-results/faults.json]

A standalone redis-server (append-only file, fsync every second) and gunicorn (2 workers)
on loopback. Client threads search, ask for deals and post event batches throughout,
remembering every event id that got a 2xx. Phases: normal; Redis killed (SIGKILL);
Redis restarted on the same data; a worker killed with SIGKILL; normal. Each change
happens in a 'transition' phase, reported apart: a request counts toward a phase only if
it started and ended in it. At the end every
acknowledged event id must be in Redis (its dedupe key is written by the same script as
the event), and search must have kept answering.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime

import psutil
import redis

from app.storage import keys
from app.storage.embedded import free_port, start_on_port
from scripts.bench.harness import request, start_gunicorn
from scripts.common import emit_json


def _call(port, method, path, body=None, answer=False):
    try:
        status, data, _headers = request(port, method, path, body, timeout=10)
    except (OSError, http.client.HTTPException):
        status, data = 0, None  # refused, reset, or cut mid-response by a killed worker: the request failed
    return (status, data) if answer else status


#: Engagement types: one impression token may be used once for each.
_TYPES = ("click", "detail_view", "directions", "call", "website")


def engagement_batch(port: int, rank: int) -> tuple[str, list[dict]] | None:
    """A fresh impression (the ``rank``-th nearest store) and one event of each engagement
    type on its token: (store id, events); None when search did not answer."""
    status, shown = _call(port, "GET", f"/v1/stores/nearby?lat=60.1699&lon=24.9384&limit={rank}", answer=True)
    if status != 200:
        return None
    item = shown["stores"][-1]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    token = item["impression_token"]
    return item["id"], [{"event_id": uuid.uuid4().hex, "type": t, "ts": now, "impression_token": token} for t in _TYPES]


def acknowledged(store: str, status: int, body) -> list[tuple[str, str]]:
    """(store, event id) of each event a 2xx answer acknowledged (accepted now or already
    before); an event's claim lives in its store's slot."""
    if not 200 <= status < 300:
        return []
    return [(store, r["event_id"]) for r in body["results"] if r["status"] != "rejected"]


def run(phase_s: float = 5.0) -> dict:
    data_dir = tempfile.mkdtemp(prefix="o2o-faults-")
    rport = free_port()
    redis_proc, _ = start_on_port(rport, data_dir, appendonly=True)
    url = f"redis://127.0.0.1:{rport}/0"
    port = free_port()
    gunicorn, _ = start_gunicorn(port, {"REDIS_URL": url, "O2O_DATA_DIR": data_dir, "O2O_REDIS_TIMEOUT_S": "0.2"})
    stats = {"search": [], "events": [], "acked": [], "phase": "normal"}
    lock = threading.Lock()
    stop = threading.Event()

    def searcher(i):
        while not stop.is_set():
            path = (
                "/v1/stores/nearby?lat=60.1699&lon=24.9384"
                if i % 2
                else "/v1/deals/recommended?lat=60.1699&lon=24.9384"
            )
            start = stats["phase"]
            status = _call(port, "GET", path)
            with lock:
                stats["search"].append((_label(start, stats["phase"]), status))

    def poster():
        rank = 0
        while not stop.is_set():
            # Engagement proves an impression: take a fresh one (search still answers while
            # Redis is down), and use its token once for each engagement type.
            rank = rank % 20 + 1
            shown = engagement_batch(port, rank)
            if shown is None:
                time.sleep(0.02)
                continue
            store, batch = shown
            start = stats["phase"]
            status, body = _call(port, "POST", "/v1/events", {"events": batch}, answer=True)
            with lock:
                stats["events"].append((_label(start, stats["phase"]), status))
                stats["acked"] += acknowledged(store, status, body)
            time.sleep(0.02)

    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(4)] + [threading.Thread(target=poster)]
    for t in threads:
        t.start()
    try:
        time.sleep(phase_s)
        # Each change happens inside a 'transition' phase; a request counts toward a phase only
        # if it started and ended in it, so no request straddles a kill or a restart.
        stats["phase"] = "transition"
        redis_proc.send_signal(signal.SIGKILL)
        redis_proc.wait()
        stats["phase"] = "redis_down"
        time.sleep(phase_s)
        stats["phase"] = "transition"
        redis_proc, _ = start_on_port(rport, data_dir, appendonly=True)
        stats["phase"] = "redis_restarted"
        time.sleep(phase_s)
        stats["phase"] = "transition"
        workers = psutil.Process(gunicorn.pid).children()
        os.kill(workers[0].pid, signal.SIGKILL)
        time.sleep(0.5)  # requests in flight on the killed worker fail inside the transition
        stats["phase"] = "worker_killed"
        time.sleep(phase_s)
        workers_after = len(psutil.Process(gunicorn.pid).children())
        stats["phase"] = "normal_again"
        time.sleep(phase_s)
    finally:
        stop.set()
        for t in threads:
            t.join()
        gunicorn.terminate()
        gunicorn.wait(10)
    missing = count_missing(redis.Redis.from_url(url), stats["acked"])
    redis_proc.terminate()
    redis_proc.wait(5)
    return _summary(stats, missing, workers_after)


def _label(start: str, end: str) -> str:
    """The phase a request belongs to: the one it started and ended in, else 'transition'."""
    return start if start == end else "transition"


def count_missing(r, acked: list[tuple[str, str]]) -> int:
    """How many acknowledged (store, event id) pairs have no claim in Redis (one server or a cluster)."""
    missing = 0
    for i in range(0, len(acked), 500):
        pipe = r.pipeline(transaction=False)
        for store, event_id in acked[i : i + 500]:
            pipe.exists(keys.event_claim(store, event_id))
        missing += sum(1 for present in pipe.execute() if not present)
    return missing


def _summary(stats, missing, workers_after) -> dict:
    out = {
        "phases": {},
        "events_acknowledged": len(stats["acked"]),
        "acknowledged_missing_after_restart": missing,
        "workers_after_kill": workers_after,
    }
    for phase in ("normal", "transition", "redis_down", "redis_restarted", "worker_killed", "normal_again"):
        out["phases"][phase] = phase_counts(stats, phase)
    return out


def phase_counts(stats: dict, phase: str) -> dict:
    """Searches and event batches that started and ended in ``phase``, by outcome."""
    s = [st for p, st in stats["search"] if p == phase]
    e = [st for p, st in stats["events"] if p == phase]
    return {
        "search_requests": len(s),
        "search_failed": sum(1 for x in s if not 200 <= x < 300),
        "event_batches": len(e),
        "events_2xx": sum(1 for x in e if 200 <= x < 300),
        "events_503": sum(1 for x in e if x == 503),
        "events_other": sum(1 for x in e if x != 503 and not 200 <= x < 300),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase-s", type=float, default=5.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    result = run(args.phase_s)
    emit_json(result, args.json)
    ok = result["acknowledged_missing_after_restart"] == 0 and result["workers_after_kill"] == 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
