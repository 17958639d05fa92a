"""A small closed-loop HTTP load generator and a gunicorn launcher, for benchmarks.

Clients are processes (not threads) so that the client side is not serialised by the
GIL; each keeps issuing requests for a fixed time, and latencies are gathered at the end.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlencode

import numpy as np

from app.storage.embedded import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def request(port: int, method: str, path: str, body=None, headers: dict | None = None, timeout: float = 30):
    """One HTTP request to 127.0.0.1:port; returns (status, parsed JSON body or None, headers).

    Raises OSError when the connection fails.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(
            method,
            path,
            body=json.dumps(body) if body is not None else None,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        resp = conn.getresponse()
        data = resp.read()
        parsed = None
        if data and resp.getheader("Content-Type", "").split(";")[0].endswith("json"):
            parsed = json.loads(data)
        return resp.status, parsed, dict(resp.getheaders())
    finally:
        conn.close()


def start_gunicorn(
    port: int,
    env: dict | None = None,
    workers: int = 2,
    timeout_s: float = 180,
    ready_path: str = "/healthz",
    root: str = ROOT,
):
    """gunicorn --preload on 127.0.0.1:port, serving the tree at ``root`` (another commit's
    worktree, say); returns (process, seconds until ``ready_path`` answered 200)."""
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "gunicorn"),
        "--preload",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "wsgi:app",
    ]
    t0 = time.perf_counter()
    # Load generators come from one address: lift the per-address limit unless a run sets it.
    limits = {"O2O_RATE_LIMIT_ANON": "10000000", "O2O_RATE_LIMIT_KEY": "10000000"}
    proc = subprocess.Popen(cmd, cwd=root, env={**os.environ, **limits, **(env or {})})
    while time.perf_counter() - t0 < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", ready_path)
            if conn.getresponse().status == 200:
                return proc, time.perf_counter() - t0
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("gunicorn did not come up in time")


def _client(port, paths, seconds, seed, out):
    rng = np.random.default_rng(seed)
    lat, codes = [], []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        item = paths[rng.integers(len(paths))]
        path, headers = item if isinstance(item, tuple) else (item, {})
        t = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            code = resp.status
            conn.close()
        except OSError:
            code = 0
        lat.append(time.perf_counter() - t)
        codes.append(code)
    out.put((lat, codes))


@contextlib.contextmanager
def fresh_servers(envs: dict[str, dict], roots: dict[str, str] | None = None):
    """One gunicorn per name, started in ``envs``' order, each with a fresh data dir (so its
    own embedded Redis and secret) and serving ``roots[name]`` (default this tree); yields
    {name: (port, pids, env)}, ``env`` as the server got it (to mint its users' tokens),
    and stops every server however the block ends."""
    procs: list[subprocess.Popen] = []
    try:
        out = {}
        for name, env in envs.items():
            env = {**env, "O2O_DATA_DIR": tempfile.mkdtemp(prefix="o2o-bench-")}
            port = free_port()
            proc = start_gunicorn(port, env, root=(roots or {}).get(name, ROOT))[0]
            procs.append(proc)
            out[name] = (port, server_pids(proc, env["O2O_DATA_DIR"]), env)
        yield out
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def server_pids(gunicorn: subprocess.Popen, data_dir: str | None = None, workers: int = 2) -> list[int]:
    """The gunicorn master, its workers (waits until all are forked), and the embedded
    redis-server of ``data_dir``."""
    children: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{gunicorn.pid}/task/{gunicorn.pid}/children") as fh:
                children = [int(x) for x in fh.read().split()]
        except OSError:
            children = []
        if len([c for c in children if "gunicorn" in cmdline(c)]) >= workers:
            break
        time.sleep(0.1)
    pids = [gunicorn.pid, *children]
    if data_dir:
        try:
            with open(os.path.join(data_dir, "redis", "redis.pid")) as fh:
                pids.append(int(fh.read().strip()))
        except (OSError, ValueError):
            pass
    return sorted(set(pids))  # the redis-server may be the master's child too


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as fh:
            return fh.read()
    except OSError:
        return ""


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def run_clients(target, args: tuple, clients: int) -> tuple[list, float]:
    """Run ``target(*args, seed, queue)`` in ``clients`` processes at once; returns what each
    put on the queue and the wall time. Processes, not threads: the GIL would serialise them."""
    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=target, args=(*args, i, out)) for i in range(clients)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return results, time.perf_counter() - t0


def run_load(port: int, paths: list, seconds: float = 10, clients: int = 4, pids: list[int] | None = None) -> dict:
    """Closed-loop load: ``clients`` processes for ``seconds``; returns rps, p50/p99 ms, errors,
    and with ``pids`` (``server_pids``) the server's CPU time per request in microseconds:
    steadier than throughput on a shared machine, where the clients compete for the cores.

    ``paths``: request paths, or (path, headers) pairs (a signed-in user's token)."""
    cpu0 = cpu_seconds(pids) if pids else 0.0
    results, wall = run_clients(_client, (port, paths, seconds), clients)
    lat = np.concatenate([np.array(r[0]) for r in results]) * 1e3
    codes = np.concatenate([np.array(r[1]) for r in results])
    cpu = {"server_cpu_us": round((cpu_seconds(pids) - cpu0) / max(len(lat), 1) * 1e6, 1)} if pids else {}
    return {
        **cpu,
        "requests": int(len(lat)),
        "rps": round(len(lat) / wall, 1),
        "p50_ms": round(float(np.median(lat)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "errors": int(np.sum((codes == 0) | (codes >= 500))),
        "non_2xx": int(np.sum(codes >= 300)),
    }


def medians(runs: dict[str, list[dict]], metrics: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per name, the median of each of ``metrics`` over its runs (a metric its runs lack is left out)."""
    return {name: {m: float(np.median([r[m] for r in v])) for m in metrics if m in v[0]} for name, v in runs.items()}


def ratios_by_round(runs: dict[str, list[dict]], load: str, reference: str = "trivial") -> list[float]:
    """Round by round, ``load``'s throughput over ``reference``'s (runs of the same round, same server)."""
    return [round(r["rps"] / t["rps"], 3) for r, t in zip(runs[load], runs[reference])]


def nearby_paths(points: np.ndarray, extra: dict | None = None) -> list[str]:
    return [
        "/v1/stores/nearby?" + urlencode({"lat": round(la, 6), "lon": round(lo, 6), **(extra or {})})
        for la, lo in points
    ]
